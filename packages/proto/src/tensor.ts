/** Tensor and model encodings both ends agree on: named float32 tensors packed into one flat little-endian buffer. */
import { z } from 'zod';
import { ValidationError } from './errors.js';

export const DTYPES = ['float32'] as const;
export type DType = (typeof DTYPES)[number];

export interface TensorSpec {
  name: string;
  dtype: DType;
  shape: number[];
}

/** A model as it travels and is stored: tfjs LayersModel topology plus weights in `tensors` order. */
export interface ModelBlob {
  /** tfjs `model.toJSON(null, false)` modelTopology object. */
  topology: unknown;
  tensors: TensorSpec[];
  /** All tensors concatenated in `tensors` order, float32. */
  weights: Float32Array;
}

export const MAX_TENSORS = 4096;
export const MAX_PARAMS = 1 << 30; // 4 GiB of float32: far beyond any edge model, small enough to stay addressable

export const tensorSpecSchema = z.strictObject({
  name: z.string().min(1).max(512),
  dtype: z.enum(DTYPES),
  shape: z.array(z.number().int().nonnegative().max(MAX_PARAMS)).max(8),
});

export const tensorSpecsSchema = z.array(tensorSpecSchema).min(1).max(MAX_TENSORS);

export function tensorSize(spec: Pick<TensorSpec, 'shape'>): number {
  return spec.shape.reduce((a, b) => a * b, 1);
}

/** Total number of float32 parameters described by `specs`; rejects totals that overflow MAX_PARAMS. */
export function totalParams(specs: readonly TensorSpec[]): number {
  let n = 0;
  for (const s of specs) n += tensorSize(s);
  if (n > MAX_PARAMS) throw new ValidationError(`tensors: ${n} parameters exceed the limit of ${MAX_PARAMS}`);
  return n;
}

/** True when two spec lists describe the same tensors (name, dtype, shape) in the same order. */
export function sameSpecs(a: readonly TensorSpec[], b: readonly TensorSpec[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!, y = b[i]!;
    if (x.name !== y.name || x.dtype !== y.dtype || x.shape.length !== y.shape.length) return false;
    for (let j = 0; j < x.shape.length; j++) if (x.shape[j] !== y.shape[j]) return false;
  }
  return true;
}

/** Describes the first mismatch between expected and actual specs, naming the tensor, for rejection messages. */
export function describeSpecMismatch(expected: readonly TensorSpec[], actual: readonly TensorSpec[]): string | undefined {
  if (expected.length !== actual.length) return `expected ${expected.length} tensors, got ${actual.length}`;
  for (let i = 0; i < expected.length; i++) {
    const e = expected[i]!, a = actual[i]!;
    if (e.name !== a.name) return `tensors[${i}].name: expected "${e.name}", got "${a.name}"`;
    if (e.dtype !== a.dtype) return `tensors[${i}] (${e.name}).dtype: expected ${e.dtype}, got ${a.dtype}`;
    if (e.shape.join('x') !== a.shape.join('x'))
      return `tensors[${i}] (${e.name}).shape: expected [${e.shape.join(',')}], got [${a.shape.join(',')}]`;
  }
  return undefined;
}

/** Index of the first non-finite value, or -1. */
export function firstNonFinite(x: Float32Array): number {
  for (let i = 0; i < x.length; i++) if (!Number.isFinite(x[i]!)) return i;
  return -1;
}

/** View bytes (little-endian float32) as a Float32Array, copying only when unaligned. */
export function bytesToFloat32(bytes: Uint8Array): Float32Array {
  if (bytes.byteLength % 4 !== 0) throw new ValidationError(`payload: ${bytes.byteLength} bytes is not a whole number of float32 values`);
  if (bytes.byteOffset % 4 === 0) return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
  const copy = new Uint8Array(bytes.byteLength);
  copy.set(bytes);
  return new Float32Array(copy.buffer);
}

export function float32ToBytes(x: Float32Array): Uint8Array {
  return new Uint8Array(x.buffer, x.byteOffset, x.byteLength);
}
