/**
 * Top-k selection and compact index coding. Kept indices travel as whichever is smaller for this update: gaps as
 * varints (about 1-2 bytes per index at low density) or a bitmap of n bits (smaller above ~1/8 density). The form is
 * a flag byte in the payload; both decode to strictly increasing indices below n, which the decoder checks.
 */
import { RejectedUpdateError } from '../errors.js';
import { ByteReader, ByteWriter, varintSize } from './bytes.js';

/** Number of values top-k keeps of n. */
export function topkCount(n: number, fraction: number): number {
  return Math.min(n, Math.max(1, Math.ceil(n * fraction)));
}

/** The k-th largest |x| (1-based), by iterative quickselect with median-of-three pivots on a copy: O(n) expected. */
export function kthLargestAbs(x: Float32Array, k: number): number {
  const a = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) a[i] = Math.abs(x[i]!);
  // k-th largest = element at index n - k in ascending order.
  const target = a.length - k;
  let lo = 0;
  let hi = a.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    const p = median3(a[lo]!, a[mid]!, a[hi]!);
    let i = lo;
    let j = hi;
    while (i <= j) {
      while (a[i]! < p) i++;
      while (a[j]! > p) j--;
      if (i <= j) {
        const t = a[i]!;
        a[i] = a[j]!;
        a[j] = t;
        i++;
        j--;
      }
    }
    if (target <= j) hi = j;
    else if (target >= i) lo = i;
    else return a[target]!;
  }
  return a[target]!;
}

const median3 = (a: number, b: number, c: number): number => Math.max(Math.min(a, b), Math.min(Math.max(a, b), c));

export const INDEX_VARINT = 0;
export const INDEX_BITMAP = 1;

/** Indices (increasing) of the k largest |x|; ties at the threshold are kept in index order until k are kept. */
export function topkIndices(x: Float32Array, k: number): Uint32Array {
  const n = x.length;
  const out = new Uint32Array(k);
  if (k === 0) return out;
  const threshold = kthLargestAbs(x, k);
  let above = 0;
  for (let i = 0; i < n; i++) if (Math.abs(x[i]!) > threshold) above++;
  let ties = k - above;
  let c = 0;
  for (let i = 0; i < n && c < k; i++) {
    const a = Math.abs(x[i]!);
    if (a > threshold || (a === threshold && ties-- > 0)) out[c++] = i;
  }
  return out;
}

export function varintIndexBytes(idx: Uint32Array): number {
  let bytes = 0;
  let prev = -1;
  for (let j = 0; j < idx.length; j++) {
    bytes += varintSize(idx[j]! - prev - 1);
    prev = idx[j]!;
  }
  return bytes;
}

export const bitmapBytes = (n: number): number => Math.ceil(n / 8);

/** Writes [u8 form][u32 count][u32 index bytes][indices]: the smaller form (varint on a tie). */
export function writeIndices(idx: Uint32Array, n: number, w: ByteWriter): number {
  const vb = varintIndexBytes(idx);
  const bb = bitmapBytes(n);
  const form = vb <= bb ? INDEX_VARINT : INDEX_BITMAP;
  w.u8(form);
  w.u32(idx.length);
  w.u32(form === INDEX_VARINT ? vb : bb);
  if (form === INDEX_VARINT) {
    let prev = -1;
    for (let j = 0; j < idx.length; j++) {
      w.varint(idx[j]! - prev - 1);
      prev = idx[j]!;
    }
  } else {
    const bm = w.reserve(bb);
    for (let j = 0; j < idx.length; j++) bm[idx[j]! >>> 3]! |= 1 << (idx[j]! & 7);
  }
  return form;
}

/** Reads and checks the index section: count <= maxCount, every index < n, strictly increasing, sizes exact. */
export function readIndices(r: ByteReader, n: number, maxCount: number, what: string): Uint32Array {
  const form = r.u8('index form');
  if (form !== INDEX_VARINT && form !== INDEX_BITMAP)
    throw new RejectedUpdateError('malformed', `${what}: index form ${form} is neither 0 (varint gaps) nor 1 (bitmap)`);
  const count = r.u32('count');
  if (count > maxCount) throw new RejectedUpdateError('oversized', `${what}: ${count} values kept, the spec allows at most ${maxCount} of ${n}`);
  const size = r.u32('index bytes');
  const sec = new ByteReader(r.take(size, 'index section'), `${what} indices`);
  const idx = new Uint32Array(count);
  if (form === INDEX_VARINT) {
    let prev = -1;
    for (let j = 0; j < count; j++) {
      const i = prev + 1 + sec.varint(`gap ${j}`);
      if (i >= n) throw new RejectedUpdateError('bad_index', `${what}: index ${j} is ${i}; indices must be < ${n}`);
      idx[j] = prev = i;
    }
    sec.end();
    return idx;
  }
  if (size !== bitmapBytes(n)) throw new RejectedUpdateError('size_mismatch', `${what}: a bitmap of ${n} params is ${bitmapBytes(n)} bytes, got ${size}`);
  let c = 0;
  const bm = sec.buf;
  for (let b = 0; b < bm.length; b++) {
    let byte = bm[b]!;
    while (byte) {
      const bit = 31 - Math.clz32(byte & -byte);
      byte &= byte - 1;
      const i = b * 8 + bit;
      if (i >= n) throw new RejectedUpdateError('bad_index', `${what}: bitmap sets index ${i}; indices must be < ${n}`);
      if (c >= count) throw new RejectedUpdateError('size_mismatch', `${what}: bitmap sets more than the ${count} indices declared`);
      idx[c++] = i;
    }
  }
  if (c !== count) throw new RejectedUpdateError('size_mismatch', `${what}: bitmap sets ${c} indices, ${count} declared`);
  return idx;
}

/** Largest index section for k of n values (the encoder never picks the larger form). */
export function maxIndexBytes(n: number): number {
  return 9 + bitmapBytes(n);
}
