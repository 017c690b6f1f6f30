/** A leased staging slot of StreamingFedAvg: takes an update's chunks, checks each piece for NaN/±Inf while it is in cache, folds it piecewise. */

import type { SimdKernels } from './simd.js';

// Why chunks are kept instead of copied into the slot: the wasm kernels cannot read the JS buffers a
// transport delivers, and copying the whole update into the slot, then folding the slot, moves about
// 6 bytes of memory traffic per byte of update (read chunk, write slot with its read-for-ownership,
// read slot, read and write the accumulator) against memcpy's 3. A slot that only gets folded keeps
// references to the chunks instead: each piece is copied into a small scratch region of the
// aggregator's memory (L1/L2-resident) and checked as it arrives, and fold() copies the chunks piece
// by piece into the scratch again and folds from there: ~4 bytes of traffic per byte, and the
// accumulator is touched only once the whole update is known to be finite, so a rejected or
// abandoned upload never reaches it. Anything that needs the update whole (a decoder, a norm, the
// spool) reads `view`, which copies the chunks into the slot first: the path as it was.
//
// Why the check happens in write(): a scan after the last chunk re-reads the update from memory;
// checking each piece right after it lands reads it from L1/L2 (bench/README.md, aggregate).

/** A leased staging buffer for one in-progress update. Invalid after release(). */
export interface UpdateSlot {
  readonly numParams: number;
  /**
   * The slot's float32 params (length numParams), inside the aggregator's memory. Reading it makes the slot copy
   * the chunks written so far into it (later writes are copied too). Values changed through the view after write()
   * are not re-checked by firstNonFinite; a slot filled only through the view (decoders do that) or written out of
   * order is scanned whole.
   */
  readonly view: Float32Array;
  /**
   * Takes a chunk at byteOffset; throws RangeError if it would overflow, Error if the slot was released. The slot may
   * keep a reference to `bytes` until it is released: the caller must not change them afterwards (transports hand
   * over a fresh buffer per message).
   */
  write(byteOffset: number, bytes: Uint8Array): void;
}

/**
 * Bytes checked (and folded) at a time through the scratch: small enough to stay in L1/L2 between the copy and the
 * kernel. bench/aggregate's size sweep measured 16-256 KiB alike within noise; 64 KiB is the middle.
 */
export const INGEST_PIECE_BYTES = 64 * 1024;

/** The aggregator's scratch region (INGEST_PIECE_BYTES, in the kernels' memory): shared by every lease, used synchronously. */
export interface Scratch {
  readonly ptr: number;
  readonly bytes: Uint8Array;
}

/** Sequential reader over a list of chunks: copies the next `len` bytes into `dst`, across chunk boundaries. */
class ChunkReader {
  #i = 0;
  #at = 0;
  constructor(private readonly chunks: readonly Uint8Array[]) {}

  read(dst: Uint8Array, len: number): void {
    for (let got = 0; got < len; ) {
      const c = this.chunks[this.#i]!;
      const take = Math.min(len - got, c.byteLength - this.#at);
      dst.set(take === c.byteLength ? c : c.subarray(this.#at, this.#at + take), got);
      got += take;
      this.#at += take;
      if (this.#at === c.byteLength) {
        this.#i++;
        this.#at = 0;
      }
    }
  }
}

/** One lease of a slot. A fresh object per acquire(), so a stale handle held by a dead upload cannot write into the next upload. */
export class SlotLease implements UpdateSlot {
  live = true;
  readonly #view: Float32Array;
  readonly #bytes: Uint8Array;
  /** Chunks taken in order and not copied into the slot; null once the slot holds the bytes (or never keeps chunks). */
  #chunks: Uint8Array[] | null;
  /** Reads #chunks for the check as bytes arrive. */
  #checkReader: ChunkReader | null;
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
    view: Float32Array,
    private readonly simd: SimdKernels | null,
    /** With the wasm kernels: chunks are kept and checked through it instead of copied into the slot. */
    private readonly scratch: Scratch | null,
  ) {
    this.#view = view;
    this.#bytes = new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
    this.#chunks = scratch !== null && simd !== null ? [] : null;
    this.#checkReader = this.#chunks !== null ? new ChunkReader(this.#chunks) : null;
  }

  get view(): Float32Array {
    this.#materialize();
    return this.#view;
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
      this.#materialize();
      this.#inOrder = false; // firstNonFinite will scan the whole slot
      this.#bytes.set(bytes, byteOffset);
      return;
    }
    if (this.#chunks !== null) {
      if (bytes.byteLength === 0) return;
      this.#chunks.push(bytes);
      this.#ingested += bytes.byteLength;
      this.#checkChunks();
      return;
    }
    for (let p = 0; p < bytes.byteLength; p += INGEST_PIECE_BYTES) {
      const piece = bytes.byteLength <= INGEST_PIECE_BYTES ? bytes : bytes.subarray(p, p + INGEST_PIECE_BYTES);
      this.#bytes.set(piece, this.#ingested);
      this.#ingested += piece.byteLength;
      this.#checkSlot();
    }
  }

  /**
   * acc += w * update from the kept chunks, piece by piece through the scratch; false when the slot holds the bytes
   * itself (or is incomplete), for the caller to fold the slot. Same f32 operations per element as folding the slot.
   */
  foldKept(accPtr: number, w: number): boolean {
    if (this.#chunks === null || this.#ingested !== this.#bytes.byteLength) return false;
    const { ptr, bytes } = this.scratch!;
    const reader = new ChunkReader(this.#chunks);
    const total = this.#ingested; // numParams * 4: every piece is whole floats
    for (let off = 0; off < total; off += INGEST_PIECE_BYTES) {
      const len = Math.min(INGEST_PIECE_BYTES, total - off);
      reader.read(bytes, len);
      this.simd!.axpy(accPtr + off, ptr, len >>> 2, w);
    }
    return true;
  }

  /** Drops the kept chunks (the slot was released). */
  drop(): void {
    this.#chunks = null;
    this.#checkReader = null;
  }

  /** Checks the floats completed by the kept chunks, piece by piece through the scratch (a float may straddle chunks). */
  #checkChunks(): void {
    const upto = this.#ingested >>> 2;
    if (this.#bad >= 0) {
      this.#checked = upto;
      return;
    }
    const { ptr, bytes } = this.scratch!;
    const maxFloats = INGEST_PIECE_BYTES >>> 2;
    while (this.#checked < upto) {
      const from = this.#checked;
      const n = Math.min(maxFloats, upto - from);
      this.#checkReader!.read(bytes, n * 4);
      this.#checked = from + n;
      const r = this.simd!.firstNonFinite(ptr, n);
      if (r >= 0) {
        this.#bad = from + r;
        this.#checked = upto;
        return;
      }
    }
  }

  /** Copies the kept chunks into the slot: from here on the slot holds the bytes (the checks made so far still hold). */
  #materialize(): void {
    const chunks = this.#chunks;
    if (chunks === null) return;
    this.drop();
    if (!this.live) return; // a released lease's slot may be another upload's by now
    let off = 0;
    for (const c of chunks) {
      this.#bytes.set(c, off);
      off += c.byteLength;
    }
  }

  /** Checks the floats completed by the bytes copied into the slot so far (a float may straddle two chunks). */
  #checkSlot(): void {
    const upto = this.#ingested >>> 2;
    const from = this.#checked;
    this.#checked = upto;
    if (upto <= from || this.#bad >= 0) return;
    const r = this.simd !== null ? this.simd.firstNonFinite(this.ptr + 4 * from, upto - from) : firstNonFiniteJs(this.#view, from, upto);
    if (r >= 0) this.#bad = from + r;
  }
}

/** Exponent-bits test on the raw words: one AND + compare, no float compares. Index relative to `from`, or -1. */
export function firstNonFiniteJs(view: Float32Array, from: number, upto: number): number {
  const bits = new Int32Array(view.buffer, view.byteOffset, view.length);
  for (let i = from; i < upto; i++) if ((bits[i]! & 0x7f800000) === 0x7f800000) return i - from;
  return -1;
}
