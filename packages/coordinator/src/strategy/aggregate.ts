/** Streaming weighted FedAvg (fold each validated update into one float32 accumulator as it arrives) plus pure reference aggregators. */

import { instantiateSimdKernels, simdSupported, wasmApi, WASM_MAX_PAGES, WASM_PAGE_BYTES, type SimdKernels, type WasmMemory } from './simd.js';
import { firstNonFiniteJs, SlotLease, type UpdateSlot } from './update-slot.js';

export type { UpdateSlot } from './update-slot.js';

// Memory model. The accumulator and a fixed number of staging slots live in ONE memory
// allocated up front: [acc | slot 0 | slot 1 | ... | scratch], each region 64-byte aligned.
//  - An upload streams into a slot and touches the accumulator only when complete and
//    validated, so an agent dying mid-upload or a NaN in the last chunk leaves no trace.
//  - Coordinator memory is (1 + slots) model sizes whatever the number of agents; uploads
//    beyond `slots` wait in acquire() (FIFO), which is the backpressure on the network.
//  - The memory never grows, so Float32Array views on it never detach, and the SIMD
//    kernel reads slots in place (no copy between "received" and "folded").
//  - write() checks each piece for NaN/±Inf as it lands, while it is in cache
//    (update-slot.ts), so validating a complete update does not read it again.
//  - The scratch is where foldPieces() folds an update from a source wasm cannot read (a
//    spooled file) piece by piece, instead of reading it whole into a slot first.
//
// Why uploads still go through a slot rather than being kept in the chunks the transport
// delivered and folded through the scratch (one write and one read of the update less):
// measured in bench/aggregate's size sweep (AMD EPYC, 1-128 MiB) that path was 18-26% slower
// at every size. Its fold alternates a copy into the scratch (one memory stream) with the axpy
// (another); a single core gets far less bandwidth from one stream at a time than from the
// axpy's concurrent ones, so folding from kept chunks ran at ~0.65x folding a slot.

/** Scratch bytes: a spooled update is read and folded this much at a time (1 MiB: 20% faster than 64 KiB, fewer reads). */
export const SCRATCH_BYTES = 1 << 20;

export type KernelKind = 'wasm-simd' | 'js';

export interface StreamingFedAvgOptions {
  /** Staging slots = uploads in flight at once (default 2). */
  slots?: number;
  /** Default: wasm-simd when WebAssembly SIMD validates, else js. */
  kernel?: KernelKind;
}

/** Region alignment: a cache line, so vector loads never straddle lines at region starts. */
const REGION_ALIGN = 64;

const alignUp = (n: number, a: number): number => Math.ceil(n / a) * a;

interface Waiter {
  resolve(slot: UpdateSlot): void;
  reject(reason: unknown): void;
  cleanup(): void;
}

/** Weighted FedAvg over a stream of updates, memory flat in the number of agents. */
export class StreamingFedAvg {
  readonly kernel: KernelKind;
  readonly numParams: number;
  /** Number of staging slots (uploads that can be in flight at once). */
  readonly slots: number;

  #count = 0;
  #totalWeight = 0; // float64: sums of many example counts must stay exact
  #acc: Float32Array;
  #slotViews: Float32Array[];
  #slotPtrs: number[];
  /** SCRATCH_BYTES after the slots: where foldPieces() folds from. */
  #scratch: { ptr: number; bytes: Uint8Array };
  #leases: Array<SlotLease | null>; // live lease per slot, null when free
  #waiters: Waiter[] = [];
  #simd: SimdKernels | null;
  #disposed = false;

  private constructor(numParams: number, slots: number, kernel: KernelKind) {
    this.numParams = numParams;
    this.slots = slots;
    this.kernel = kernel;
    const regionBytes = alignUp(numParams * 4, REGION_ALIGN);
    const totalBytes = regionBytes * (1 + slots) + SCRATCH_BYTES;
    const pages = Math.ceil(totalBytes / WASM_PAGE_BYTES);
    let buffer: ArrayBuffer;
    let memory: WasmMemory | null = null;
    if (wasmApi !== undefined) {
      if (pages > WASM_MAX_PAGES) {
        throw new RangeError(`StreamingFedAvg: ${numParams} params x ${1 + slots} regions need ${totalBytes} bytes, over the ${WASM_MAX_PAGES * WASM_PAGE_BYTES}-byte wasm32 limit; use fewer slots`);
      }
      // initial == maximum: the memory can never grow, so views never detach.
      memory = new wasmApi.Memory({ initial: pages, maximum: pages });
      buffer = memory.buffer;
    } else {
      buffer = new ArrayBuffer(pages * WASM_PAGE_BYTES); // no WebAssembly at all: same layout, JS kernel
    }
    this.#acc = new Float32Array(buffer, 0, numParams);
    this.#slotPtrs = Array.from({ length: slots }, (_, i) => regionBytes * (1 + i));
    this.#slotViews = this.#slotPtrs.map((ptr) => new Float32Array(buffer, ptr, numParams));
    const scratchPtr = regionBytes * (1 + slots);
    this.#scratch = { ptr: scratchPtr, bytes: new Uint8Array(buffer, scratchPtr, SCRATCH_BYTES) };
    this.#leases = new Array<SlotLease | null>(slots).fill(null);
    this.#simd = kernel === 'wasm-simd' && memory !== null ? instantiateSimdKernels(memory) : null;
  }

  /** Allocates all memory up front: (1 + slots) x numParams float32 (+ alignment). */
  static create(numParams: number, opts: StreamingFedAvgOptions = {}): StreamingFedAvg {
    if (!Number.isSafeInteger(numParams) || numParams < 1) throw new RangeError(`StreamingFedAvg: numParams must be a positive integer, got ${numParams}`);
    const slots = opts.slots ?? 2;
    if (!Number.isSafeInteger(slots) || slots < 1) throw new RangeError(`StreamingFedAvg: slots must be a positive integer, got ${slots}`);
    const kernel = opts.kernel ?? (simdSupported() ? 'wasm-simd' : 'js');
    if (kernel !== 'wasm-simd' && kernel !== 'js') throw new RangeError(`StreamingFedAvg: unknown kernel ${String(kernel)}`);
    if (kernel === 'wasm-simd' && !simdSupported()) throw new Error('StreamingFedAvg: kernel wasm-simd requested but WebAssembly SIMD is not available');
    return new StreamingFedAvg(numParams, slots, kernel);
  }

  get count(): number {
    return this.#count;
  }

  get totalWeight(): number {
    return this.#totalWeight;
  }

  /** Lease a free slot; when all are busy, wait (FIFO) for a release. Rejects with signal.reason on abort. */
  acquire(signal?: AbortSignal): Promise<UpdateSlot> {
    if (this.#disposed) return Promise.reject(new Error('StreamingFedAvg: disposed'));
    if (signal?.aborted) return Promise.reject(signal.reason);
    // A free slot with nobody queued (release hands slots straight to waiters, so a free
    // slot and a non-empty queue never coexist; checking both keeps FIFO obvious).
    const free = this.#leases.indexOf(null);
    if (free >= 0 && this.#waiters.length === 0) return Promise.resolve(this.#lease(free));
    return new Promise<UpdateSlot>((resolve, reject) => {
      const onAbort = (): void => {
        const i = this.#waiters.indexOf(waiter);
        if (i >= 0) this.#waiters.splice(i, 1);
        reject(signal?.reason);
      };
      const waiter: Waiter = { resolve, reject, cleanup: () => signal?.removeEventListener('abort', onAbort) };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#waiters.push(waiter);
    });
  }

  /** Return a slot. Idempotent; its contents are left as-is and never reach the accumulator unless folded. */
  release(slot: UpdateSlot): void {
    const lease = this.#own(slot, 'release', false);
    if (!lease.live) return;
    lease.live = false;
    this.#leases[lease.index] = null;
    const next = this.#waiters.shift();
    if (next !== undefined) {
      next.cleanup();
      next.resolve(this.#lease(lease.index));
    }
  }

  /** Index of the first NaN/±Inf in the slot, or -1: what write() found as it copied the update in, else a scan of the slot. */
  firstNonFinite(slot: UpdateSlot): number {
    const lease = this.#own(slot, 'firstNonFinite', true);
    const checked = lease.checkedFirstNonFinite();
    if (checked !== undefined) return checked;
    if (this.#simd !== null) return this.#simd.firstNonFinite(lease.ptr, this.numParams);
    return firstNonFiniteJs(lease.view, 0, this.numParams);
  }

  /** acc += weight * slot (float32), count++, totalWeight += weight. weight must be finite and > 0. */
  fold(slot: UpdateSlot, weight: number): void {
    const lease = this.#own(slot, 'fold', true);
    this.#checkWeight('fold', weight);
    if (this.#simd !== null) {
      // weight is rounded to f32 at the call boundary (<= 2^-24 relative, covered by the error bound in the tests)
      this.#simd.axpy(0, lease.ptr, this.numParams, weight);
    } else {
      const acc = this.#acc;
      const x = lease.view;
      for (let i = 0; i < acc.length; i++) acc[i] += weight * x[i]!;
    }
    this.#count += 1;
    this.#totalWeight += weight;
  }

  /**
   * acc += weight * update, where `fill(piece, byteOffset)` writes the update's bytes [byteOffset, byteOffset +
   * piece.byteLength) into `piece` (a region of the scratch, at most SCRATCH_BYTES, whole floats): a spooled
   * update is read from its file straight into the scratch and folded from there, never whole into a slot. The
   * update is not checked: it was when it was admitted. If fill throws part of the update is folded already, so a
   * caller that can fail midway must reset and fold again (the round's spooled fold does). Same f32 operations per
   * element as fold().
   */
  foldPieces(weight: number, fill: (piece: Uint8Array, byteOffset: number) => void): void {
    this.#assertLive('foldPieces');
    this.#checkWeight('foldPieces', weight);
    const { ptr, bytes } = this.#scratch;
    const total = this.numParams * 4;
    const x = new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength >>> 2);
    const acc = this.#acc;
    for (let off = 0; off < total; off += SCRATCH_BYTES) {
      const len = Math.min(SCRATCH_BYTES, total - off);
      fill(bytes.subarray(0, len), off);
      if (this.#simd !== null) this.#simd.axpy(off, ptr, len >>> 2, weight);
      else for (let i = 0, a = off >>> 2; i < len >>> 2; i++, a++) acc[a] += weight * x[i]!;
    }
    this.#count += 1;
    this.#totalWeight += weight;
  }

  /** A new array: acc / totalWeight. Throws if nothing was folded. */
  result(): Float32Array {
    const out = new Float32Array(this.numParams);
    this.resultInto(out);
    return out;
  }

  resultInto(out: Float32Array): void {
    this.#assertLive('resultInto');
    if (this.#count === 0) throw new Error('StreamingFedAvg: no update folded yet');
    if (out.length !== this.numParams) throw new RangeError(`StreamingFedAvg.resultInto: out has ${out.length} elements, want ${this.numParams}`);
    // Divide in float64 (single rounding to f32) rather than multiply by an f32
    // reciprocal: once per round, so precision is worth more than the ~ms it costs.
    const acc = this.#acc;
    const tw = this.#totalWeight;
    for (let i = 0; i < out.length; i++) out[i] = acc[i]! / tw;
  }

  /** Zero the accumulator and counters (slots and their leases are untouched). */
  reset(): void {
    this.#assertLive('reset');
    this.#acc.fill(0);
    this.#count = 0;
    this.#totalWeight = 0;
  }

  /**
   * Restore a partially aggregated state (resume after a coordinator crash). Validated
   * before anything is written, so a corrupt snapshot leaves the current state untouched.
   */
  loadAccumulator(acc: Float32Array, count: number, totalWeight: number): void {
    this.#assertLive('loadAccumulator');
    if (acc.length !== this.numParams) throw new RangeError(`StreamingFedAvg.loadAccumulator: ${acc.length} elements, want ${this.numParams}`);
    if (!Number.isSafeInteger(count) || count < 0) throw new RangeError(`StreamingFedAvg.loadAccumulator: bad count ${count}`);
    if (!Number.isFinite(totalWeight) || totalWeight < 0 || (count === 0) !== (totalWeight === 0)) {
      throw new RangeError(`StreamingFedAvg.loadAccumulator: bad totalWeight ${totalWeight} for count ${count}`);
    }
    for (let i = 0; i < acc.length; i++) {
      if (!Number.isFinite(acc[i])) throw new RangeError(`StreamingFedAvg.loadAccumulator: non-finite value at ${i}`);
    }
    this.#acc.set(acc);
    this.#count = count;
    this.#totalWeight = totalWeight;
  }

  /** The live accumulator (sum of weight * update, not yet divided). Read-only use, e.g. a snapshot for persistence. */
  accumulatorView(): Float32Array {
    this.#assertLive('accumulatorView');
    return this.#acc;
  }

  /** Invalidate every lease, reject queued acquires, drop the memory (reclaimed by GC). */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    for (const lease of this.#leases) if (lease !== null) lease.live = false;
    this.#leases.fill(null);
    for (const waiter of this.#waiters.splice(0)) {
      waiter.cleanup();
      waiter.reject(new Error('StreamingFedAvg: disposed'));
    }
    this.#acc = new Float32Array(0);
    this.#slotViews = [];
    this.#simd = null;
  }

  #lease(index: number): SlotLease {
    const lease = new SlotLease(this, index, this.#slotPtrs[index]!, this.numParams, this.#slotViews[index]!, this.#simd);
    this.#leases[index] = lease;
    return lease;
  }

  #own(slot: UpdateSlot, op: string, mustBeLive: boolean): SlotLease {
    if (!(slot instanceof SlotLease) || slot.owner !== this) throw new TypeError(`StreamingFedAvg.${op}: slot does not belong to this aggregator`);
    if (mustBeLive) {
      this.#assertLive(op);
      if (!slot.live) throw new Error(`StreamingFedAvg.${op}: slot was released`);
    }
    return slot;
  }

  #checkWeight(op: string, weight: number): void {
    if (!(Number.isFinite(weight) && weight > 0)) throw new RangeError(`StreamingFedAvg.${op}: weight must be finite and > 0, got ${weight}`);
  }

  #assertLive(op: string): void {
    if (this.#disposed) throw new Error(`StreamingFedAvg.${op}: disposed`);
  }
}

// ---------------------------------------------------------------------------------------
// Pure reference functions (Flower's aggregate.py style): simple, exact-ish, not streaming.

/** Weighted mean of same-length parameter vectors; float64 internally, float32 out. Weights finite >= 0 with a positive sum. */
export function weightedAverage(updates: ReadonlyArray<{ params: Float32Array; weight: number }>): Float32Array {
  if (updates.length === 0) throw new RangeError('weightedAverage: no updates');
  const n = updates[0]!.params.length;
  let total = 0;
  for (const { params, weight } of updates) {
    if (params.length !== n) throw new RangeError(`weightedAverage: length ${params.length} differs from ${n}`);
    if (!Number.isFinite(weight) || weight < 0) throw new RangeError(`weightedAverage: bad weight ${weight}`);
    total += weight;
  }
  if (!(total > 0)) throw new RangeError('weightedAverage: total weight is 0');
  const sum = new Float64Array(n);
  for (const { params, weight } of updates) {
    for (let i = 0; i < n; i++) sum[i] += weight * params[i]!;
  }
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = sum[i]! / total;
  return out;
}
