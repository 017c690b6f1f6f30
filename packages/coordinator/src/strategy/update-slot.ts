/** A leased staging slot of StreamingFedAvg: copies an update's chunks in and checks each piece for NaN/±Inf while it is still in cache. */

import type { SimdKernels } from './simd.js';

// Why the check happens in write(): a scan of the whole slot after the last chunk re-reads the
// update from memory, and beyond the caches that pass costs about what the fold itself costs.
// Checking each piece right after it is copied reads it from L1/L2 instead. A large chunk is
// copied and checked piece by piece for the same reason: the full path of a 16-128 MiB update
// gained ~20% (bench/README.md, aggregate, size sweep). Pieces of 32 KiB-1 MiB measured alike
// within noise, 128-512 KiB best; 32 KiB and 1 MiB lost up to 15% at 4-16 MiB.

/** A leased staging buffer for one in-progress update. Invalid after release(). */
export interface UpdateSlot {
  readonly numParams: number;
  /**
   * The slot's float32 params (length numParams), inside the aggregator's memory. Values changed through
   * the view after write() are not re-checked by firstNonFinite; a slot filled only through the view
   * (decoders do that) or written out of order is scanned whole.
   */
  readonly view: Float32Array;
  /** Copies a chunk in at byteOffset; throws RangeError if it would overflow, Error if the slot was released. */
  write(byteOffset: number, bytes: Uint8Array): void;
}

/** Bytes copied and checked at a time: small enough to be checked from L2 right after the copy. */
export const INGEST_PIECE_BYTES = 128 * 1024;

/** One lease of a slot. A fresh object per acquire(), so a stale handle held by a dead upload cannot write into the next upload. */
export class SlotLease implements UpdateSlot {
  live = true;
  readonly #bytes: Uint8Array;
  /** Bytes taken in order from offset 0 by write(). */
  #ingested = 0;
  #inOrder = true;
  /** Floats checked so far: a prefix of the slot. */
  #checked = 0;
  #bad = -1;

  constructor(
    readonly owner: object,
    readonly index: number,
    /** Byte address of the slot in the memory (what the wasm kernels take). */
    readonly ptr: number,
    readonly numParams: number,
    readonly view: Float32Array,
    private readonly simd: SimdKernels | null,
  ) {
    this.#bytes = new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
  }

  /** What write() found as it copied, when it covers the slot; undefined when the slot must be scanned. */
  checkedFirstNonFinite(): number | undefined {
    if (!this.#inOrder) return undefined;
    if (this.#bad >= 0) return this.#bad; // the prefix before it is clean: a scan would find the same
    return this.#checked === this.numParams ? -1 : undefined;
  }

  write(byteOffset: number, bytes: Uint8Array): void {
    if (!this.live) throw new Error('UpdateSlot.write: slot was released');
    if (!Number.isSafeInteger(byteOffset) || byteOffset < 0 || byteOffset + bytes.byteLength > this.#bytes.byteLength) {
      throw new RangeError(`UpdateSlot.write: ${bytes.byteLength} bytes at offset ${byteOffset} overflow a ${this.#bytes.byteLength}-byte slot`);
    }
    if (!this.#inOrder || byteOffset !== this.#ingested) {
      this.#inOrder = false; // firstNonFinite will scan the whole slot
      this.#bytes.set(bytes, byteOffset);
      return;
    }
    for (let p = 0; p < bytes.byteLength; p += INGEST_PIECE_BYTES) {
      const piece = bytes.byteLength <= INGEST_PIECE_BYTES ? bytes : bytes.subarray(p, p + INGEST_PIECE_BYTES);
      this.#bytes.set(piece, this.#ingested);
      this.#ingested += piece.byteLength;
      this.#check();
    }
  }

  /** Checks the floats completed by the bytes taken so far (a float may straddle two chunks). */
  #check(): void {
    const upto = this.#ingested >>> 2;
    const from = this.#checked;
    this.#checked = upto;
    if (upto <= from || this.#bad >= 0) return;
    const r = this.simd !== null ? this.simd.firstNonFinite(this.ptr + 4 * from, upto - from) : firstNonFiniteJs(this.view, from, upto);
    if (r >= 0) this.#bad = from + r;
  }
}

/** Exponent-bits test on the raw words: one AND + compare, no float compares. Index relative to `from`, or -1. */
export function firstNonFiniteJs(view: Float32Array, from: number, upto: number): number {
  const bits = new Int32Array(view.buffer, view.byteOffset, view.length);
  for (let i = from; i < upto; i++) if ((bits[i]! & 0x7f800000) === 0x7f800000) return i - from;
  return -1;
}
