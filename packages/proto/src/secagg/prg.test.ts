/** The masking PRG: fixed output for a seed (known answer, chunking, another process), reduction mod 2^bits. */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { applyMasks, applyMasksAsync } from './mask.js';
import { prgExpand, PRG_ALGORITHMS, PRG_CHUNK, prgStream } from './prg.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const seed = (s: string) => new Uint8Array(createHash('sha256').update(s).digest());
const digest = (a: Uint32Array) => createHash('sha256').update(new Uint8Array(a.buffer, a.byteOffset, a.byteLength)).digest('hex');

describe('prg', () => {
  it('is ChaCha20 keyed by the seed, nonce and counter 0 (RFC 8439 A.1 test vector 1: 76b8e0ad...)', () => {
    expect(Array.from(prgExpand(new Uint8Array(32), 4), (v) => v.toString(16))).toEqual(['ade0b876', '903df1a0', 'e56a5d40', '28bd8653']);
    // AES-128-CTR, kept as a measured alternative: FIPS-197 AES_0(0) = 66e94bd4...
    expect(Array.from(prgExpand(new Uint8Array(32), 4, 32, 'aes-128-ctr'), (v) => v.toString(16))).toEqual(['d44be966', '3b2c8aef', '59fa4c88', '2e2b34ca']);
  });

  it('gives the same values whatever the chunking, and reduces mod 2^bits', () => {
    const n = PRG_CHUNK * 2 + 123;
    const full = prgExpand(seed('a'), n);
    const s = prgStream(seed('a'));
    const parts = new Uint32Array(n);
    let o = 0;
    for (const len of [5, PRG_CHUNK, 1000, n]) {
      const take = Math.min(len, n - o);
      parts.set(s.next(take), o);
      o += take;
      if (o === n) break;
    }
    expect(digest(parts)).toBe(digest(full));
    const b12 = prgExpand(seed('a'), n, 12);
    expect(b12.every((v, i) => v === (full[i]! & 0xfff))).toBe(true);
    for (const alg of PRG_ALGORITHMS) {
      const a = prgExpand(seed('b'), 5000, 32, alg);
      expect(digest(prgExpand(seed('b'), 5000, 32, alg))).toBe(digest(a));
      expect(new Set(a).size).toBeGreaterThan(4990);
    }
  });

  it('applyMasks adds and subtracts keystreams mod 2^32, so +PRG then -PRG is the identity', () => {
    const n = PRG_CHUNK + 77;
    const acc = Uint32Array.from({ length: n }, (_, i) => i * 2654435761);
    const before = digest(acc);
    applyMasks(acc, [{ seed: seed('x'), sign: 1 }, { seed: seed('y'), sign: 1 }]);
    const x = prgExpand(seed('x'), n);
    const y = prgExpand(seed('y'), n);
    expect(acc[n - 1]).toBe(((n - 1) * 2654435761 + x[n - 1]! + y[n - 1]!) % 2 ** 32);
    applyMasks(acc, [{ seed: seed('y'), sign: -1 }, { seed: seed('x'), sign: -1 }]);
    expect(digest(acc)).toBe(before);
  });

  it('split over worker threads gives the same sum as one thread, for every OpenSSL algorithm', () => {
    for (const algorithm of ['chacha20', 'aes-128-ctr', 'aes-256-ctr'] as const) {
      const n = 100_003; // not a multiple of 16: the last range is short; 9 negative and 18 positive terms: full groups of 8 of each sign
      const terms = Array.from({ length: 27 }, (_, j) => ({ seed: seed(`t${j}`), sign: (j % 3 === 0 ? -1 : 1) as 1 | -1 }));
      const one = Uint32Array.from({ length: n }, (_, i) => i);
      const three = Uint32Array.from({ length: n }, (_, i) => i);
      applyMasks(one, terms, { algorithm });
      applyMasks(three, terms, { algorithm, threads: 3, minParallelWork: 0 });
      expect(digest(three)).toBe(digest(one));
      // and equal to expanding each seed from the start
      const e = prgExpand(terms[1]!.seed, n, 32, algorithm);
      const zero = new Uint32Array(n);
      applyMasks(zero, [terms[1]!], { algorithm, threads: 2, minParallelWork: 0 });
      expect(digest(zero)).toBe(digest(e));
    }
  });

  it('applyMasksAsync (every range on a worker, the event loop free) gives the same sum', async () => {
    const n = 70_001;
    const terms = Array.from({ length: 11 }, (_, j) => ({ seed: seed(`a${j}`), sign: (j % 2 ? -1 : 1) as 1 | -1 }));
    const sync = Uint32Array.from({ length: n }, (_, i) => i * 7);
    applyMasks(sync, terms);
    for (const threads of [1, 3]) {
      const async = Uint32Array.from({ length: n }, (_, i) => i * 7);
      let ticks = 0;
      const timer = setInterval(() => ticks++, 0);
      await applyMasksAsync(async, terms, { threads });
      clearInterval(timer);
      expect(digest(async)).toBe(digest(sync));
      expect(ticks, 'the event loop ran while the workers worked').toBeGreaterThan(0);
    }
  });

  it('is identical in another process', () => {
    const n = 300_000;
    const dir = mkdtempSync(path.join(tmpdir(), 'fedge-prg-'));
    try {
      const script = path.join(dir, 'child.ts');
      writeFileSync(
        script,
        `import { createHash } from 'node:crypto';\nimport { prgExpand } from ${JSON.stringify(path.join(here, 'prg.ts'))};\n` +
          `const y = prgExpand(new Uint8Array(createHash('sha256').update('cross').digest()), ${n});\n` +
          `process.stdout.write('DIGEST ' + createHash('sha256').update(new Uint8Array(y.buffer)).digest('hex'));\n`,
      );
      const viteNode = path.resolve(here, '../../../../node_modules/.bin/vite-node');
      const r = spawnSync(viteNode, [script], { encoding: 'utf8', timeout: 60_000 });
      expect(r.status, r.stderr).toBe(0);
      const got = /DIGEST ([0-9a-f]{64})/.exec(r.stdout)?.[1];
      expect(got).toBe(digest(prgExpand(seed('cross'), n)));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
