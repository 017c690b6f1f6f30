/**
 * A sliding window over the last N served examples: per feature, the histogram of what the window holds, kept exact
 * by subtracting each example's contribution when it leaves (a ring of contributions, not of raw rows).
 */
import { binner, categoryBin, binsOf, predictedClass, type DriftFeature } from '@fedge/proto';

/**
 * How one example's value(s) of a feature are read from a request: a number, a category, or a block of numbers
 * (a range of the request's values, so a row of pixels is never copied; non-numbers in it are skipped).
 */
export type ExampleValue = number | string | null | { data: ArrayLike<unknown>; from: number; to: number };

/** One feature's window: scalar features keep one bin per example; raw blocks keep a small count vector per example. */
class FeatureWindow {
  readonly counts: number[];
  private readonly bins: number;
  private readonly scalar: Int32Array | undefined;
  private readonly block: Uint32Array | undefined;
  private readonly index: Map<string, number> | undefined;
  private readonly bin: ((v: number) => number) | undefined;

  constructor(readonly f: DriftFeature, size: number) {
    this.bins = binsOf(f);
    this.counts = new Array<number>(this.bins).fill(0);
    if (f.kind === 'raw') this.block = new Uint32Array(size * this.bins);
    else this.scalar = new Int32Array(size).fill(-1);
    if (f.kind === 'categorical') this.index = new Map(f.values.map((v, i) => [v, i]));
    else this.bin = binner(f.edges);
  }

  /** Replaces slot `slot`'s contribution with `v`'s (`evict`: the slot held an example that now leaves). */
  put(slot: number, v: ExampleValue, evict: boolean): void {
    if (this.block) {
      const base = slot * this.bins;
      if (evict) for (let b = 0; b < this.bins; b++) this.counts[b]! -= this.block[base + b]!;
      this.block.fill(0, base, base + this.bins);
      if (v !== null && typeof v === 'object') {
        const bin = this.bin!;
        const d = v.data;
        for (let k = v.from; k < v.to; k++) {
          const x = d[k];
          const b = typeof x === 'number' ? bin(x) : -1;
          if (b >= 0) this.block[base + b]!++;
        }
        for (let b = 0; b < this.bins; b++) this.counts[b]! += this.block[base + b]!;
      }
      return;
    }
    const s = this.scalar!;
    if (evict && s[slot]! >= 0) this.counts[s[slot]!]!--;
    const b = this.index ? categoryBin(this.index, typeof v === 'string' ? v : null) : typeof v === 'number' ? this.bin!(v) : -1;
    s[slot] = b;
    if (b >= 0) this.counts[b]!++;
  }

  /** Bytes this feature's window holds (the benchmark's memory per tracked feature). */
  get bytes(): number {
    return (this.scalar?.byteLength ?? 0) + (this.block?.byteLength ?? 0) + this.counts.length * 8;
  }
}

export class LiveWindow {
  private readonly features: FeatureWindow[];
  private readonly predictions: FeatureWindow | undefined;
  private pos = 0;
  /** Examples seen since the window started (the window holds min(seen, size)). */
  seen = 0;

  constructor(features: readonly DriftFeature[], readonly size: number, classes?: number, private readonly binary = false) {
    this.features = features.map((f) => new FeatureWindow(f, size));
    // Predicted classes: a categorical-like window whose bins are the classes (bin = class + 1; bin 0 never used).
    this.predictions = classes ? new FeatureWindow({ feature: '', kind: 'numeric', edges: Array.from({ length: classes - 1 }, (_, i) => i + 0.5) }, size) : undefined;
  }

  /** Adds one example: `values[i]` for feature i, and its model output row (for the predicted class). */
  add(values: readonly ExampleValue[], output?: ArrayLike<number>): void {
    const slot = this.pos;
    const evict = this.seen >= this.size;
    for (let i = 0; i < this.features.length; i++) this.features[i]!.put(slot, values[i] ?? null, evict);
    this.predictions?.put(slot, output ? predictedClass(output, this.binary) : null, evict);
    this.pos = (this.pos + 1) % this.size;
    this.seen++;
  }

  get examples(): number {
    return Math.min(this.seen, this.size);
  }

  counts(): { feature: string; counts: readonly number[] }[] {
    return this.features.map((w) => ({ feature: w.f.feature, counts: w.counts }));
  }

  predictionCounts(): readonly number[] | undefined {
    return this.predictions?.counts;
  }

  get bytes(): number {
    return this.features.reduce((s, w) => s + w.bytes, 0) + (this.predictions?.bytes ?? 0);
  }

  /** Bytes per tracked feature (mean). */
  get bytesPerFeature(): number {
    return this.features.length ? this.features.reduce((s, w) => s + w.bytes, 0) / this.features.length : 0;
  }
}
