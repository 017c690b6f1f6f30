/** Adding and removing masks in the ring: the hot path, on the caller's thread or split over worker threads. */
import { createCipheriv } from 'node:crypto';
import { Worker } from 'node:worker_threads';
import { PRG_ALGORITHM, PRG_CHUNK, prgStream, type MaskTerm, type PrgAlgorithm } from './prg.js';

export interface ApplyMasksOptions {
  algorithm?: PrgAlgorithm;
  /** Threads to split the range over (the caller's included); default 1. */
  threads?: number;
  /** Below this many keystream values in all (terms x length) one thread is used: a worker costs ~50-100 ms to start. */
  minParallelWork?: number;
}

/**
 * acc += sum of sign * PRG(seed) over all terms, mod 2^32 (reduce mod 2^bits once at the end: 2^bits divides 2^32).
 * With `threads` > 1 and enough work, the range is split across worker threads (the coordinator's unmask); the
 * result is bit-identical to the single-thread one.
 */
export function applyMasks(acc: Uint32Array, terms: readonly MaskTerm[], opts: ApplyMasksOptions = {}): void {
  if (terms.length === 0) return;
  const algorithm = opts.algorithm ?? PRG_ALGORITHM;
  const threads = opts.threads ?? 1;
  if (algorithm === 'xsalsa20-tweetnacl') {
    // Measured alternative only: tweetnacl's stream cannot start mid-stream, so it runs serially, term by term.
    for (const t of terms) {
      const s = prgStream(t.seed, algorithm);
      for (let o = 0; o < acc.length; o += PRG_CHUNK) {
        const len = Math.min(PRG_CHUNK, acc.length - o);
        const ks = s.next(len);
        for (let i = 0; i < len; i++) acc[o + i] = (acc[o + i]! + t.sign * ks[i]!) >>> 0;
      }
    }
    return;
  }
  const seeds = terms.map((t) => t.seed);
  const signs = terms.map((t) => t.sign);
  const parts = terms.length * acc.length >= (opts.minParallelWork ?? 200_000_000) ? Math.max(1, Math.min(threads, 8)) : 1;
  if (parts === 1) {
    maskRange(createCipheriv, new Int32Array(acc.buffer, acc.byteOffset, acc.length), 0, acc.length, seeds, signs, algorithm, PRG_CHUNK);
    return;
  }
  // Workers write into shared memory: copy acc into a SharedArrayBuffer unless it already is one.
  const shared = acc.buffer instanceof SharedArrayBuffer ? acc : new Uint32Array(new SharedArrayBuffer(acc.byteLength));
  if (shared !== acc) shared.set(acc);
  // Split points on 16-element boundaries: one ChaCha20 block (64 bytes) and four AES blocks.
  const per = Math.ceil(acc.length / parts / 16) * 16;
  const flags = new Int32Array(new SharedArrayBuffer(8 * parts));
  const workers: Worker[] = [];
  for (let p = 1; p < parts; p++) {
    const start = Math.min(acc.length, p * per);
    const end = Math.min(acc.length, start + per);
    workers.push(
      new Worker(WORKER_SOURCE, {
        eval: true,
        workerData: { buffer: shared.buffer, byteOffset: shared.byteOffset, length: shared.length, start, end, seeds, signs, algorithm, chunk: PRG_CHUNK, flags: flags.buffer, slot: p, source: maskRange.toString() },
      }),
    );
  }
  try {
    maskRange(createCipheriv, new Int32Array(shared.buffer, shared.byteOffset, shared.length), 0, Math.min(acc.length, per), seeds, signs, algorithm, PRG_CHUNK);
    // Block until every worker has finished its range (the coordinator's finalize is synchronous by design).
    for (let p = 1; p < parts; p++) {
      while (Atomics.load(flags, 2 * p) === 0) Atomics.wait(flags, 2 * p, 0, 1000);
      if (flags[2 * p + 1] !== 1) throw new Error(`secagg applyMasks: worker ${p} failed`);
    }
  } finally {
    for (const w of workers) void w.terminate();
  }
  if (shared !== acc) acc.set(shared);
}

/**
 * applyMasks with every range on a worker thread, so the caller's event loop keeps running (the coordinator keeps
 * serving other calls while it unmasks). Same result, bit for bit. `threads` defaults to 1 worker.
 */
export async function applyMasksAsync(acc: Uint32Array, terms: readonly MaskTerm[], opts: Omit<ApplyMasksOptions, 'minParallelWork'> = {}): Promise<void> {
  const algorithm = opts.algorithm ?? PRG_ALGORITHM;
  if (terms.length === 0) return;
  if (algorithm === 'xsalsa20-tweetnacl') return applyMasks(acc, terms, { algorithm });
  const parts = Math.max(1, Math.min(opts.threads ?? 1, 8));
  const shared = acc.buffer instanceof SharedArrayBuffer ? acc : new Uint32Array(new SharedArrayBuffer(acc.byteLength));
  if (shared !== acc) shared.set(acc);
  const per = Math.ceil(acc.length / parts / 16) * 16;
  const flags = new Int32Array(new SharedArrayBuffer(8 * parts));
  const seeds = terms.map((t) => t.seed);
  const signs = terms.map((t) => t.sign);
  await Promise.all(
    Array.from({ length: parts }, (_, p) => {
      const start = Math.min(acc.length, p * per);
      const end = Math.min(acc.length, start + per);
      return new Promise<void>((resolve, reject) => {
        const w = new Worker(WORKER_SOURCE, {
          eval: true,
          workerData: { buffer: shared.buffer, byteOffset: shared.byteOffset, length: shared.length, start, end, seeds, signs, algorithm, chunk: PRG_CHUNK, flags: flags.buffer, slot: p, source: maskRange.toString() },
        });
        w.once('error', reject);
        w.once('exit', () => (flags[2 * p + 1] === 1 ? resolve() : reject(new Error(`secagg applyMasksAsync: worker ${p} failed`))));
      });
    }),
  );
  if (shared !== acc) acc.set(shared);
}

// The worker evaluates maskRange from its source text (so the same code runs in vitest, from TypeScript, and from
// dist), then flags done (slot 2p = 1) and success (slot 2p + 1 = 1).
const WORKER_SOURCE = `
const { workerData: d } = require('node:worker_threads');
const { createCipheriv } = require('node:crypto');
const flags = new Int32Array(d.flags);
try {
  const maskRange = (0, eval)('(' + d.source + ')');
  maskRange(createCipheriv, new Int32Array(d.buffer, d.byteOffset, d.length), d.start, d.end, d.seeds, d.signs, d.algorithm, d.chunk);
  flags[2 * d.slot + 1] = 1;
} catch (e) {
  flags[2 * d.slot + 1] = 2;
} finally {
  Atomics.store(flags, 2 * d.slot, 1);
  Atomics.notify(flags, 2 * d.slot);
}`;

/**
 * acc[start..end) += sum of signs[j] * PRG(seeds[j]) over that range, mod 2^32. Self-contained (no imports, no
 * outer names) because worker threads run it from its source text. Chunk by chunk, so each chunk of acc stays in
 * cache while every keystream is added to it; same-sign keystreams are added eight at a time, so acc is loaded and
 * stored once per eight masks. Int32 views and |0 keep the JIT on 32-bit integer adds, which wrap mod 2^32 (the
 * ring operation itself); sums of up to four int32 are exact in a double before |0.
 */
function maskRange(
  cipheriv: typeof createCipheriv,
  acc: Int32Array,
  start: number,
  end: number,
  seeds: readonly Uint8Array[],
  signs: readonly number[],
  algorithm: string,
  chunk: number,
): void {
  if (start >= end) return;
  // Position every keystream at element `start` (a multiple of 16): ChaCha20's IV starts with a 32-bit little-endian
  // block counter (64-byte blocks); AES-CTR's IV is a 128-bit big-endian counter of 16-byte blocks.
  const iv = Buffer.alloc(16);
  if (algorithm === 'chacha20') iv.writeUInt32LE(start / 16, 0);
  else iv.writeUInt32BE(start / 4, 12);
  const open = (seed: Uint8Array) =>
    algorithm === 'chacha20' ? cipheriv('chacha20', seed, iv) : algorithm === 'aes-256-ctr' ? cipheriv('aes-256-ctr', seed, iv) : cipheriv('aes-128-ctr', seed.subarray(0, 16), iv);
  const order = [...seeds.keys()].sort((x, y) => signs[y]! - signs[x]!);
  const groups: { sign: number; idx: number[] }[] = [];
  for (const j of order) {
    const last = groups[groups.length - 1];
    if (last && last.sign === signs[j] && last.idx.length < 8) last.idx.push(j);
    else groups.push({ sign: signs[j]!, idx: [j] });
  }
  const streams = seeds.map(open);
  const zero = Buffer.alloc(chunk * 4);
  const next = (j: number, len: number): Int32Array => {
    const out = streams[j]!.update(len === chunk ? zero : zero.subarray(0, len * 4));
    return out.byteOffset % 4 === 0 ? new Int32Array(out.buffer, out.byteOffset, len) : new Int32Array(Uint8Array.from(out).buffer, 0, len);
  };
  for (let o = start; o < end; o += chunk) {
    const len = Math.min(chunk, end - o);
    const a = acc.subarray(o, o + len);
    for (const g of groups) {
      if (g.idx.length === 8) {
        const [k0, k1, k2, k3, k4, k5, k6, k7] = g.idx.map((j) => next(j, len)) as [Int32Array, Int32Array, Int32Array, Int32Array, Int32Array, Int32Array, Int32Array, Int32Array];
        if (g.sign > 0) for (let i = 0; i < len; i++) a[i] = (a[i]! + ((k0[i]! + k1[i]! + k2[i]! + k3[i]!) | 0) + ((k4[i]! + k5[i]! + k6[i]! + k7[i]!) | 0)) | 0;
        else for (let i = 0; i < len; i++) a[i] = (a[i]! - ((k0[i]! + k1[i]! + k2[i]! + k3[i]!) | 0) - ((k4[i]! + k5[i]! + k6[i]! + k7[i]!) | 0)) | 0;
      } else {
        for (const j of g.idx) {
          const k = next(j, len);
          if (g.sign > 0) for (let i = 0; i < len; i++) a[i] = (a[i]! + k[i]!) | 0;
          else for (let i = 0; i < len; i++) a[i] = (a[i]! - k[i]!) | 0;
        }
      }
    }
  }
}
