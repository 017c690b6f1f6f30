/** The masking PRG: fixed output for a seed (known answer, chunking, another process), reduction mod 2^bits. */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { applyMasks, prgExpand, PRG_ALGORITHMS, PRG_CHUNK, prgStream } from './prg.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const seed = (s: string) => new Uint8Array(createHash('sha256').update(s).digest());
const digest = (a: Uint32Array) => createHash('sha256').update(new Uint8Array(a.buffer, a.byteOffset, a.byteLength)).digest('hex');

describe('prg', () => {
  it('is AES-128-CTR keyed by the first 16 seed bytes (FIPS-197 known answer: AES_0(0) = 66e94bd4...)', () => {
    expect(Array.from(prgExpand(new Uint8Array(32), 4), (v) => v.toString(16))).toEqual(['d44be966', '3b2c8aef', '59fa4c88', '2e2b34ca']);
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
