/** Content-addressed model files: round trip, digest checks on write and read, atomic writes. */
import { afterEach, describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { blobDigest, FedgeError, type ModelBlob } from '@fedge/proto';
import { ModelStore, writeFileAtomic } from './model-store.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
function tempDir(): string {
  const d = mkdtempSync(path.join(tmpdir(), 'fedge-models-'));
  dirs.push(d);
  return d;
}

function model(n: number, seed = 1): ModelBlob {
  const weights = new Float32Array(n);
  for (let i = 0; i < n; i++) weights[i] = Math.sin(i * seed) * 0.1;
  weights[0] = -0;
  return {
    topology: { class_name: 'Sequential', config: { name: `m${seed}`, layers: [{ class_name: 'Dense', config: { units: n } }] } },
    tensors: [{ name: 'dense/kernel', dtype: 'float32', shape: [n] }],
    weights,
  };
}

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(FedgeError);
    return (err as FedgeError).code;
  }
  throw new Error('expected a rejection');
}

describe('ModelStore', () => {
  it('stores a model under its sha256 and reads back the same bytes', async () => {
    const s = new ModelStore(tempDir());
    const m = model(1001);
    const sha = blobDigest(m);
    expect(await s.get(sha)).toBeUndefined();
    await s.put(sha, m);
    expect(readdirSync(s.dir).sort()).toEqual([`${sha}.bin`, `${sha}.json`]);
    expect(statSync(s.paths(sha).weights).size).toBe(1001 * 4);
    const back = (await s.get(sha))!;
    expect(back.tensors).toEqual(m.tensors);
    expect(back.topology).toEqual(m.topology);
    expect(Buffer.from(back.weights.buffer, back.weights.byteOffset, back.weights.byteLength)).toEqual(Buffer.from(m.weights.buffer));
    expect(blobDigest(back)).toBe(sha);
    // Idempotent: a second put of the same content changes nothing.
    const mtime = statSync(s.paths(sha).weights).mtimeMs;
    await s.put(sha, m);
    expect(statSync(s.paths(sha).weights).mtimeMs).toBe(mtime);
    // A small model read from the shared buffer pool still yields an aligned Float32Array.
    const tiny = model(3, 2);
    await s.put(blobDigest(tiny), tiny);
    expect(Array.from((await s.get(blobDigest(tiny)))!.weights)).toEqual(Array.from(tiny.weights));
  });

  it('refuses a model whose digest is not the name given, and names that are not digests', async () => {
    const s = new ModelStore(tempDir());
    const m = model(10);
    expect(await codeOf(s.put('0'.repeat(64), m))).toBe('E_MODEL_DIGEST');
    expect(readdirSync(s.dir)).toEqual([]);
    expect(await codeOf(s.get('../../etc/passwd'))).toBe('E_VALIDATION');
  });

  it('detects damaged weights, a damaged header, truncation and a missing header', async () => {
    const s = new ModelStore(tempDir());
    const m = model(256);
    const sha = blobDigest(m);
    await s.put(sha, m);
    const p = s.paths(sha);
    const good = readFileSync(p.weights);
    const goodHeader = readFileSync(p.header, 'utf8');

    const flipped = Buffer.from(good);
    flipped[100] = flipped[100]! ^ 0x01;
    writeFileSync(p.weights, flipped);
    expect(await codeOf(s.get(sha))).toBe('E_MODEL_CORRUPT');

    writeFileSync(p.weights, good.subarray(0, good.length - 4));
    expect(await codeOf(s.get(sha))).toBe('E_MODEL_CORRUPT');

    writeFileSync(p.weights, good);
    writeFileSync(p.header, goodHeader.replace('"shape":[256]', '"shape":[16,16]'));
    expect(await codeOf(s.get(sha))).toBe('E_MODEL_CORRUPT');

    rmSync(p.header);
    expect(await codeOf(s.get(sha))).toBe('E_MODEL_CORRUPT');

    writeFileSync(p.header, goodHeader);
    expect(blobDigest((await s.get(sha))!)).toBe(sha);
  });

  it('never shows a partially written model file', async () => {
    const s = new ModelStore(tempDir());
    const m = model(8 << 20, 3); // 32 MiB of weights: the write takes many event-loop turns
    const sha = blobDigest(m);
    const target = s.paths(sha).weights;
    const sizes = new Set<number>();
    let writing = true;
    const watcher = (async () => {
      while (writing) {
        if (existsSync(target)) sizes.add(statSync(target).size);
        await new Promise((r) => setImmediate(r));
      }
    })();
    await s.put(sha, m);
    writing = false;
    await watcher;
    // Whenever the file was visible it was complete.
    for (const size of sizes) expect(size).toBe(m.weights.byteLength);
    expect(readdirSync(s.dir).filter((f) => f.includes('.tmp-'))).toEqual([]);
  });

  it('a write interrupted before its rename leaves no model, and its temporary file is cleaned up', async () => {
    const s = new ModelStore(tempDir());
    const m = model(64);
    const sha = blobDigest(m);
    // What a crash between write and rename leaves: the header and a temporary weights file.
    await writeFileAtomic(s.paths(sha).header, JSON.stringify({ format: 'fedge-model/1', sha256: sha, topology: m.topology, tensors: m.tensors, byteLength: 256 }));
    writeFileSync(path.join(s.dir, `.${sha}.bin.tmp-999-abcd`), Buffer.alloc(100));
    expect(await s.get(sha)).toBeUndefined();
    expect(await s.has(sha)).toBe(false);
    expect(s.removeTemporaryFiles()).toBe(1);
    await s.put(sha, m);
    expect(blobDigest((await s.get(sha))!)).toBe(sha);
  });
});
