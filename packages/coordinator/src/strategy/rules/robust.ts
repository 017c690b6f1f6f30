/** Robust aggregation over K spooled updates read in chunks (memory O(K × chunk + n)): coordinate-wise median, trimmed mean (Yin et al. 2018), Krum / Multi-Krum (Blanchard et al. 2017), and norm bounding (Sun et al. 2019). */

// Why chunks: sync rounds spool every update to disk, and K full updates of a 1.6M-param model
// are K × 6.6 MB. Coordinate-wise statistics only ever need the K values of one coordinate, and
// Krum only needs K × K squared distances, which add up over disjoint coordinate ranges. So every
// function here walks the parameters in ranges of `chunk`, copies the K slices of one range into
// one K × chunk buffer, and keeps nothing else per update. Extra memory is that buffer, the output
// (n float32), K-sized scratch and, for Krum, the K × K distance matrix: nothing of size K × n.
//
// Arithmetic runs in float64 per coordinate (sums, means, distances) and the output is rounded
// to float32 once, so results do not depend on the chunk size beyond float64 summation order.

/**
 * Reads `length` params of update `k` starting at param `offset`. The returned array must hold
 * exactly `length` values; it is copied before the next call, so an accessor may reuse one buffer.
 */
export type ReadChunk = (k: number, offset: number, length: number) => Float32Array;

export interface UpdateSource {
  /** K, the number of updates. */
  readonly count: number;
  /** n, params per update. */
  readonly numParams: number;
  readonly read: ReadChunk;
  /** Per-update weights (e.g. example counts). Used only by weightedMean and multiKrum({ weighted: true }). */
  readonly weights?: ArrayLike<number>;
}

export interface ChunkOptions {
  /** Params per pass; the working buffer is 4 × K × chunk bytes. Default DEFAULT_CHUNK. */
  chunk?: number;
}

/** 65,536 params = 256 KiB per update per pass (26 MB of buffer for 100 updates). */
export const DEFAULT_CHUNK = 65_536;

export interface RobustResult {
  /** The aggregated update, n float32 values. */
  aggregate: Float32Array;
}

export interface TrimmedMeanResult extends RobustResult {
  /** ⌊βK⌋, values dropped at EACH end per coordinate. 0 means this round had too few updates for beta to trim anything. */
  trimmedPerSide: number;
}

export interface KrumResult extends RobustResult {
  /** Indices of the chosen updates, best score first (one for Krum, m for Multi-Krum). */
  selected: number[];
  /** Krum score of every update: sum of squared distances to its K − f − 2 nearest others. */
  scores: Float64Array;
}

export interface NormBoundResult {
  /** L2 norm of each update (float64). */
  norms: Float64Array;
  /** Factor per update: 1 when within the bound, else just under maxNorm / norm. */
  scales: Float64Array;
}

// ---------------------------------------------------------------------------------------

function checkSource(src: UpdateSource, who: string): void {
  if (!Number.isSafeInteger(src.count) || src.count < 1) throw new RangeError(`${who}: needs at least one update, got count ${src.count}`);
  if (!Number.isSafeInteger(src.numParams) || src.numParams < 0) throw new RangeError(`${who}: numParams must be a non-negative integer, got ${src.numParams}`);
}

function chunkSize(opts: ChunkOptions | undefined, who: string): number {
  const c = opts?.chunk ?? DEFAULT_CHUNK;
  if (!Number.isSafeInteger(c) || c < 1) throw new RangeError(`${who}: option chunk must be a positive integer, got ${c}`);
  return c;
}

/**
 * Calls `fn(offset, len, buf)` for each range of params, with buf[k * len + j] = update k's param
 * offset + j for the `ks` updates listed (all K by default). One buffer serves every range.
 */
function forEachChunk(
  src: UpdateSource,
  chunk: number,
  who: string,
  fn: (offset: number, len: number, buf: Float32Array) => void,
  ks: readonly number[] = Array.from({ length: src.count }, (_, k) => k),
): void {
  const n = src.numParams;
  const buf = new Float32Array(ks.length * Math.min(chunk, n));
  for (let offset = 0; offset < n; offset += chunk) {
    const len = Math.min(chunk, n - offset);
    for (let r = 0; r < ks.length; r++) {
      const k = ks[r]!;
      const part = src.read(k, offset, len);
      if (part.length !== len) throw new RangeError(`${who}: read(${k}, ${offset}, ${len}) returned ${part.length} values`);
      // A NaN would sort to an arbitrary place and poison every mean it enters; name the culprit.
      for (let j = 0; j < len; j++) {
        if (!Number.isFinite(part[j]!)) throw new RangeError(`${who}: update ${k} has ${part[j]} at param ${offset + j}`);
      }
      buf.set(part, r * len);
    }
    fn(offset, len, buf);
  }
}

/** Coordinate-wise median (mean of the two middle values when K is even). Unweighted: a weighted median would let one agent claiming many examples pick the value. */
export function coordinateMedian(src: UpdateSource, opts?: ChunkOptions): RobustResult {
  checkSource(src, 'median');
  const K = src.count;
  const out = new Float32Array(src.numParams);
  const col = new Float32Array(K);
  const lo = (K - 1) >> 1;
  const hi = K >> 1;
  forEachChunk(src, chunkSize(opts, 'median'), 'median', (offset, len, buf) => {
    for (let j = 0; j < len; j++) {
      for (let k = 0; k < K; k++) col[k] = buf[k * len + j]!;
      col.sort();
      out[offset + j] = (col[lo]! + col[hi]!) / 2;
    }
  });
  return { aggregate: out };
}

/**
 * Coordinate-wise β-trimmed mean (Yin et al. 2018): per coordinate drop the ⌊βK⌋ largest and
 * ⌊βK⌋ smallest values and average the rest, unweighted as in the paper. β in [0, 0.5).
 */
export function trimmedMean(src: UpdateSource, beta: number, opts?: ChunkOptions): TrimmedMeanResult {
  checkSource(src, 'trimmed-mean');
  if (!(typeof beta === 'number' && beta >= 0 && beta < 0.5)) {
    throw new RangeError(`trimmed-mean: option beta must be in [0, 0.5) (the share trimmed at EACH end), got ${beta}`);
  }
  const K = src.count;
  const b = Math.floor(beta * K); // β < 0.5 ⇒ 2b < K: at least one value always remains
  const kept = K - 2 * b;
  const out = new Float32Array(src.numParams);
  const col = new Float32Array(K);
  forEachChunk(src, chunkSize(opts, 'trimmed-mean'), 'trimmed-mean', (offset, len, buf) => {
    for (let j = 0; j < len; j++) {
      for (let k = 0; k < K; k++) col[k] = buf[k * len + j]!;
      col.sort();
      let s = 0;
      for (let k = b; k < K - b; k++) s += col[k]!;
      out[offset + j] = s / kept;
    }
  });
  return { aggregate: out, trimmedPerSide: b };
}

/** Squared L2 distance between every pair of updates (K × K, row-major, float64), accumulated range by range. */
export function pairwiseSquaredDistances(src: UpdateSource, opts?: ChunkOptions): Float64Array {
  checkSource(src, 'pairwise distances');
  const K = src.count;
  const d = new Float64Array(K * K);
  forEachChunk(src, chunkSize(opts, 'pairwise distances'), 'pairwise distances', (_offset, len, buf) => {
    for (let a = 0; a < K; a++) {
      for (let c = a + 1; c < K; c++) {
        let s = 0;
        for (let j = 0, ia = a * len, ic = c * len; j < len; j++) {
          const x = buf[ia + j]! - buf[ic + j]!;
          s += x * x;
        }
        d[a * K + c] += s;
      }
    }
  });
  for (let a = 0; a < K; a++) for (let c = a + 1; c < K; c++) d[c * K + a] = d[a * K + c]!;
  return d;
}

function checkKrum(who: string, K: number, f: number): void {
  if (!Number.isSafeInteger(f) || f < 0) throw new RangeError(`${who}: option f (Byzantine updates tolerated) must be a non-negative integer, got ${f}`);
  if (K <= 2 * f + 2) {
    const fix = K >= 3 ? `lower f to at most ${Math.floor((K - 3) / 2)}` : 'Krum needs at least 3 updates';
    throw new RangeError(`${who}: f=${f} needs more than 2f+2 = ${2 * f + 2} updates, got ${K}; ${fix} or wait for more updates per round`);
  }
}

/**
 * Multi-Krum (Blanchard et al. 2017): score every update by the sum of squared distances to its
 * K − f − 2 nearest others, keep the m best (ties: lower index) and average them. Scores are
 * computed once, as in the paper (not re-scored after each pick, as Bulyan does). m defaults to
 * K − f; weighted: true averages with src.weights instead of equally (the paper averages equally,
 * and weights are the agents' own claims).
 */
export function multiKrum(src: UpdateSource, f: number, m?: number, opts?: ChunkOptions & { weighted?: boolean }): KrumResult {
  const who = m === 1 ? 'krum' : 'multi-krum';
  checkSource(src, who);
  const K = src.count;
  checkKrum(who, K, f);
  const mm = m ?? K - f;
  if (!Number.isSafeInteger(mm) || mm < 1 || mm > K - f) {
    throw new RangeError(`${who}: option m must be an integer in [1, K − f] = [1, ${K - f}] (averaging more than K − f always admits a possible attacker), got ${mm}`);
  }
  const chunk = chunkSize(opts, who);
  const d = pairwiseSquaredDistances(src, { chunk });
  const near = K - f - 2;
  const scores = new Float64Array(K);
  const row = new Float64Array(K - 1);
  for (let a = 0; a < K; a++) {
    for (let c = 0, r = 0; c < K; c++) if (c !== a) row[r++] = d[a * K + c]!;
    row.sort();
    let s = 0;
    for (let r = 0; r < near; r++) s += row[r]!;
    scores[a] = s;
  }
  const order = Array.from({ length: K }, (_, k) => k).sort((x, y) => scores[x]! - scores[y]! || x - y);
  const selected = order.slice(0, mm);
  const w = selected.map((k) => (opts?.weighted ? checkedWeight(src, k, who) : 1));
  const total = w.reduce((s, x) => s + x, 0);
  if (!(total > 0)) throw new RangeError(`${who}: the selected updates' weights sum to ${total}`);
  // Second pass over only the selected updates (memory m × chunk ≤ K × chunk).
  const out = new Float32Array(src.numParams);
  forEachChunk(
    src,
    chunk,
    who,
    (offset, len, buf) => {
      for (let j = 0; j < len; j++) {
        let s = 0;
        for (let r = 0; r < mm; r++) s += w[r]! * buf[r * len + j]!;
        out[offset + j] = s / total;
      }
    },
    selected,
  );
  return { aggregate: out, selected, scores };
}

/** Krum (Blanchard et al. 2017): the single update with the best score. Needs K > 2f + 2. */
export function krum(src: UpdateSource, f: number, opts?: ChunkOptions): KrumResult {
  return multiKrum(src, f, 1, opts);
}

function checkedWeight(src: UpdateSource, k: number, who: string): number {
  if (!src.weights || src.weights.length !== src.count) throw new RangeError(`${who}: weights must have one entry per update (${src.count}), got ${src.weights?.length ?? 'none'}`);
  const x = src.weights[k]!;
  if (!(Number.isFinite(x) && x >= 0)) throw new RangeError(`${who}: weight of update ${k} must be a finite non-negative number, got ${x}`);
  return x;
}

/**
 * Norm bounding (Sun et al. 2019): per update, the factor that brings its L2 norm to at most
 * maxNorm. Like clipToNorm in @fedge/proto the factor is shaded down by 1e-6 so float32 rounding
 * of the scaled values cannot end above the bound. Apply with scaleSource() before any aggregator.
 */
export function normBound(src: UpdateSource, maxNorm: number, opts?: ChunkOptions): NormBoundResult {
  checkSource(src, 'norm-bound');
  if (!(Number.isFinite(maxNorm) && maxNorm > 0)) throw new RangeError(`norm-bound: option maxNorm must be a positive finite number, got ${maxNorm}`);
  const K = src.count;
  const sq = new Float64Array(K);
  forEachChunk(src, chunkSize(opts, 'norm-bound'), 'norm-bound', (_offset, len, buf) => {
    for (let k = 0; k < K; k++) {
      let s = 0;
      for (let j = k * len, e = j + len; j < e; j++) s += buf[j]! * buf[j]!;
      sq[k] += s;
    }
  });
  const norms = sq.map(Math.sqrt);
  const scales = norms.map((x) => (x > maxNorm ? (maxNorm / x) * (1 - 1e-6) : 1));
  return { norms, scales };
}

/** A view of `src` with update k multiplied by scales[k] (float32 products, as the clipped updates would be stored). Reuses one scratch buffer. */
export function scaleSource(src: UpdateSource, scales: ArrayLike<number>): UpdateSource {
  if (scales.length !== src.count) throw new RangeError(`scaleSource: ${scales.length} scales for ${src.count} updates`);
  let scratch = new Float32Array(0);
  const read: ReadChunk = (k, offset, length) => {
    const part = src.read(k, offset, length);
    if (scratch.length < length) scratch = new Float32Array(length);
    const out = scratch.subarray(0, length);
    const s = scales[k]!;
    for (let j = 0; j < length && j < part.length; j++) out[j] = part[j]! * s;
    return part.length === length ? out : part; // a short read is reported by the consumer as is
  };
  return src.weights === undefined
    ? { count: src.count, numParams: src.numParams, read }
    : { count: src.count, numParams: src.numParams, read, weights: src.weights };
}

/** Σ w_k u_k / Σ w_k over chunks (weights default to 1): FedAvg over a spool, e.g. after normBound. */
export function weightedMean(src: UpdateSource, opts?: ChunkOptions): RobustResult {
  checkSource(src, 'mean');
  const K = src.count;
  const w = Array.from({ length: K }, (_, k) => (src.weights ? checkedWeight(src, k, 'mean') : 1));
  const total = w.reduce((s, x) => s + x, 0);
  if (!(total > 0)) throw new RangeError(`mean: weights sum to ${total}`);
  const out = new Float32Array(src.numParams);
  forEachChunk(src, chunkSize(opts, 'mean'), 'mean', (offset, len, buf) => {
    for (let j = 0; j < len; j++) {
      let s = 0;
      for (let k = 0; k < K; k++) s += w[k]! * buf[k * len + j]!;
      out[offset + j] = s / total;
    }
  });
  return { aggregate: out };
}
