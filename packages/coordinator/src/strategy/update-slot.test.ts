/** Tests for the ingest path of StreamingFedAvg (both kernels): the NaN/±Inf check write() makes as it copies, and foldPieces (spooled updates) against folding a slot. */

import { describe, expect, it } from 'vitest';
import { createRng } from '@fedge/proto';
import { SCRATCH_BYTES, StreamingFedAvg, type KernelKind, type UpdateSlot } from './aggregate.js';
import { simdSupported } from './simd.js';
import { INGEST_PIECE_BYTES } from './update-slot.js';

const KERNELS: KernelKind[] = simdSupported() ? ['wasm-simd', 'js'] : ['js'];

function randomParams(n: number, r: () => number): Float32Array {
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = (r() * 2 - 1) * (r() < 0.1 ? 1e4 : 1);
  return x;
}

const bytesOf = (x: Float32Array): Uint8Array => new Uint8Array(x.buffer, x.byteOffset, x.byteLength);
const bitsOf = (x: Float32Array): number[] => Array.from(new Uint32Array(x.buffer, x.byteOffset, x.length));

/** Uneven chunks (most not a multiple of 4 bytes, some larger than a piece), as the network delivers them. */
function writeChunked(slot: UpdateSlot, x: Float32Array, r: () => number, upTo = x.byteLength): void {
  const bytes = bytesOf(x);
  for (let off = 0; off < upTo; ) {
    const len = Math.min(upTo - off, r() < 0.1 ? INGEST_PIECE_BYTES + 1 + Math.floor(r() * 9000) : 1 + Math.floor(r() * 4099));
    slot.write(off, bytes.subarray(off, off + len));
    off += len;
  }
}

describe.each(KERNELS)('StreamingFedAvg ingest (%s)', (kernel) => {
  const N = 70_001; // > 2 pieces, not a multiple of 16

  it('write() finds the first non-finite value as it copies, at any position, whatever the chunking', async () => {
    const r = createRng(3);
    const agg = StreamingFedAvg.create(N, { kernel });
    const clean = randomParams(N, r);
    for (const p of [0, 1, 15, 16, 4095, 32768, 32769, N - 17, N - 2, N - 1]) {
      for (const bad of [NaN, Infinity, -Infinity]) {
        const slot = await agg.acquire();
        const x = clean.slice();
        x[p] = bad;
        if (p + 3 < N) x[p + 3] = NaN; // a later one must not mask the first
        writeChunked(slot, x, r);
        expect(agg.firstNonFinite(slot)).toBe(p);
        agg.release(slot);
      }
    }
    const slot = await agg.acquire();
    writeChunked(slot, clean, r);
    expect(agg.firstNonFinite(slot)).toBe(-1);
    agg.dispose();
  });

  it('out-of-order writes and slots filled through the view are scanned whole', async () => {
    const r = createRng(4);
    const agg = StreamingFedAvg.create(N, { kernel });
    const x = randomParams(N, r);
    x[N - 1] = NaN;
    const slot = await agg.acquire();
    const b = bytesOf(x);
    slot.write(4000, b.subarray(4000)); // tail first
    slot.write(0, b.subarray(0, 4000));
    expect(agg.firstNonFinite(slot)).toBe(N - 1);
    agg.release(slot);
    const viaView = await agg.acquire();
    viaView.view.set(x);
    expect(agg.firstNonFinite(viaView)).toBe(N - 1);
    agg.release(viaView);
    // In order but incomplete: the checked prefix does not cover the slot, which is scanned (stale NaN included).
    const partial = await agg.acquire();
    partial.view[N - 1] = NaN;
    writeChunked(partial, randomParams(N, r), r, 40_001);
    expect(agg.firstNonFinite(partial)).toBe(N - 1);
    agg.dispose();
  });

  it('a slot write() covered in order is not scanned again (what the engine relies on for speed)', async () => {
    const r = createRng(6);
    const agg = StreamingFedAvg.create(N, { kernel });
    const slot = await agg.acquire();
    writeChunked(slot, randomParams(N, r), r);
    // Changed behind write()'s back: firstNonFinite answers from the check made during the copy.
    slot.view[N - 1] = NaN;
    expect(agg.firstNonFinite(slot)).toBe(-1);
    agg.dispose();
  });

  it('the result is bit-identical to folding the same updates written through the view', async () => {
    const r = createRng(5);
    const updates = Array.from({ length: 5 }, () => ({ x: randomParams(N, r), w: 1 + Math.floor(r() * 5000) }));
    const run = async (viaWrite: boolean): Promise<number[]> => {
      const agg = StreamingFedAvg.create(N, { kernel });
      for (const u of updates) {
        const slot = await agg.acquire();
        if (viaWrite) writeChunked(slot, u.x, r);
        else slot.view.set(u.x);
        expect(agg.firstNonFinite(slot)).toBe(-1);
        agg.fold(slot, u.w);
        agg.release(slot);
      }
      const out = bitsOf(agg.result());
      agg.dispose();
      return out;
    };
    expect(await run(true)).toEqual(await run(false));
  });
});

describe.each(KERNELS)('StreamingFedAvg foldPieces (spooled updates) vs slots, and rejected updates (%s)', (kernel) => {
  const FLOATS_PER_CHECK = INGEST_PIECE_BYTES / 4;
  const FLOATS_PER_SCRATCH = SCRATCH_BYTES / 4;
  // 1 float, under one SIMD vector, a scratch + 3 floats, 2 scratches + an odd tail: none a multiple of a piece or vector
  const SIZES = [1, 5, 17, FLOATS_PER_SCRATCH + 3, 2 * FLOATS_PER_SCRATCH + 4097];

  it.each(SIZES)('folding an update piece by piece through the scratch gives the exact accumulator of folding it from a slot (%i params)', async (n) => {
    const r = createRng(11 + n);
    const updates = Array.from({ length: 4 }, () => ({ x: randomParams(n, r), w: 1 + Math.floor(r() * 5000) + r() }));
    const run = async (how: 'slot' | 'pieces'): Promise<number[]> => {
      const agg = StreamingFedAvg.create(n, { kernel });
      for (const u of updates) {
        if (how === 'pieces') {
          const src = bytesOf(u.x);
          let next = 0; // pieces come in order, whole floats, at most a scratch each
          agg.foldPieces(u.w, (piece, off) => {
            expect(off).toBe(next);
            expect(piece.byteLength % 4).toBe(0);
            expect(piece.byteLength).toBeLessThanOrEqual(SCRATCH_BYTES);
            next += piece.byteLength;
            piece.set(src.subarray(off, off + piece.byteLength));
          });
          expect(next).toBe(n * 4);
          continue;
        }
        const slot = await agg.acquire();
        writeChunked(slot, u.x, r);
        expect(agg.firstNonFinite(slot)).toBe(-1);
        agg.fold(slot, u.w);
        agg.release(slot);
      }
      const out = bitsOf(agg.accumulatorView());
      expect(agg.count).toBe(updates.length);
      agg.dispose();
      return out;
    };
    expect(await run('pieces')).toEqual(await run('slot'));
  });

  it('NaN/±Inf anywhere (first and last float, either side of check-piece boundaries, last piece) is found and leaves the accumulator as it was', async () => {
    const n = 3 * FLOATS_PER_CHECK + 4097;
    const r = createRng(12);
    const agg = StreamingFedAvg.create(n, { kernel });
    const first = await agg.acquire();
    writeChunked(first, randomParams(n, r), r);
    agg.fold(first, 3);
    agg.release(first);
    const before = bitsOf(agg.accumulatorView());
    const positions = [0, 1, 3, 4, FLOATS_PER_CHECK - 1, FLOATS_PER_CHECK, FLOATS_PER_CHECK + 1, 2 * FLOATS_PER_CHECK, 3 * FLOATS_PER_CHECK - 1, 3 * FLOATS_PER_CHECK, n - 5, n - 1];
    for (const p of positions) {
      for (const bad of [NaN, Infinity, -Infinity]) {
        const x = randomParams(n, r);
        x[p] = bad;
        const slot = await agg.acquire();
        writeChunked(slot, x, r);
        expect(agg.firstNonFinite(slot)).toBe(p);
        agg.release(slot); // rejected: the engine releases without folding
        expect(bitsOf(agg.accumulatorView())).toEqual(before);
      }
    }
    expect(agg.count).toBe(1);
    agg.dispose();
  });
});
