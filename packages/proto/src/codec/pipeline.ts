/**
 * A compression pipeline end to end: encode a float32 vector to a payload, check a payload's size before reading it,
 * and decode it (chunk by chunk, as it arrives) into the receiver's memory with every field validated, so a malformed
 * payload of any codec is a RejectedUpdateError, never a crash or a NaN in the model.
 *
 * Layout: dense = the value section of all n values; with top-k = [index section (sparse.ts)][value section of the
 * kept values]. Encodings on the wire: "float32-delta" and "int8-delta" (the same bytes as before pipelines existed),
 * otherwise "pipe:" + the canonical spec, so the receiver knows the exact pipeline from the header.
 */
import { RejectedUpdateError } from '../errors.js';
import { ByteReader, ByteWriter, type UpdateDecoder } from './bytes.js';
import { maxIndexBytes, topkCount, readIndices, topkIndices, writeIndices } from './sparse.js';
import { parsePipeline, type Direction, type Pipeline } from './spec.js';
import { valueCodec, type EncodeOptions } from './values.js';

export const PIPE_PREFIX = 'pipe:';

/** The wire encoding of a pipeline. */
export function pipelineEncoding(p: Pipeline): string {
  if (p.spec === 'float32') return 'float32-delta';
  if (p.spec === 'int8') return 'int8-delta';
  return PIPE_PREFIX + p.spec;
}

/** The pipeline an encoding names (undefined: not a pipeline encoding); a bad spec inside is a rejection. */
export function pipelineOfEncoding(encoding: string): Pipeline | undefined {
  if (encoding === 'float32-delta') return parsePipeline('float32');
  if (encoding === 'int8-delta') return parsePipeline('int8');
  if (!encoding.startsWith(PIPE_PREFIX)) return undefined;
  const spec = encoding.slice(PIPE_PREFIX.length);
  // Which direction is allowed is the header check's business (it compares with the task's encoding).
  const direction: Direction = spec.startsWith('delta') ? 'downlink' : 'uplink';
  try {
    return parsePipeline(spec, direction, 'encoding');
  } catch (err) {
    throw new RejectedUpdateError('bad_encoding', (err as Error).message);
  }
}

/** The largest payload for n values (exact for dense pipelines). */
export function maxPipelineBytes(p: Pipeline, n: number): number {
  const vc = valueCodec(p.values);
  return p.topk === undefined ? vc.bytes(n) : maxIndexBytes(n) + vc.bytes(topkCount(n, p.topk));
}

/** Throws unless `total` is a size this pipeline can have for n values. */
export function checkPipelineSize(p: Pipeline, total: number, n: number): void {
  const max = maxPipelineBytes(p, n);
  if (p.topk === undefined ? total !== max : total < 9 || total > max)
    throw new RejectedUpdateError('size_mismatch', `total_bytes: ${p.topk === undefined ? `expected ${max}` : `at most ${max}`} for ${p.spec} of ${n} params, got ${total}`);
}

export interface PipelineOptions {
  maxNorm?: number;
  rng?: () => number;
}

/** Encodes x. With maxNorm, the decoded vector's L2 norm is <= maxNorm (top-k only drops values; value codecs keep the bound). */
export function encodePipeline(x: Float32Array, p: Pipeline, o: PipelineOptions = {}): Uint8Array {
  const vc = valueCodec(p.values);
  const eo: EncodeOptions = { rng: o.rng ?? Math.random, ...(o.maxNorm !== undefined && o.maxNorm > 0 ? { maxNorm: o.maxNorm } : {}) };
  if (p.topk === undefined) {
    const w = new ByteWriter(vc.bytes(x.length));
    vc.encode(x, w, eo);
    return w.result();
  }
  const idx = topkIndices(x, topkCount(x.length, p.topk));
  const kept = new Float32Array(idx.length);
  for (let j = 0; j < idx.length; j++) kept[j] = x[idx[j]!]!;
  const w = new ByteWriter(maxPipelineBytes(p, x.length));
  writeIndices(idx, x.length, w);
  vc.encode(kept, w, eo);
  return w.result();
}

/** Decodes a complete payload into out (n = out.length); validates indices, sizes, scales and values. */
export function decodePipeline(bytes: Uint8Array, p: Pipeline, out: Float32Array): void {
  const vc = valueCodec(p.values);
  const r = new ByteReader(bytes, p.spec);
  if (p.topk === undefined) {
    vc.decode(r, out);
    r.end();
    checkFinite(out, p.spec, (j) => j);
    return;
  }
  const idx = readIndices(r, out.length, topkCount(out.length, p.topk), p.spec);
  const kept = new Float32Array(idx.length);
  vc.decode(r, kept);
  r.end();
  checkFinite(kept, p.spec, (j) => idx[j]!);
  // Values top-k did not send are zero; the receiver's memory may hold a previous payload.
  out.fill(0);
  for (let j = 0; j < idx.length; j++) out[idx[j]!] = kept[j]!;
}

function checkFinite(v: Float32Array, what: string, at: (j: number) => number): void {
  for (let j = 0; j < v.length; j++)
    if (!Number.isFinite(v[j]!)) throw new RejectedUpdateError('non_finite', `${what}: value at index ${at(j)} is ${v[j]}`);
}

/**
 * Takes a payload in chunks of any size and decodes it at end(). It holds at most maxPipelineBytes (checked before
 * the first byte, and per chunk), which for every pipeline is below the float32 model it decodes into.
 */
export class PipelineDecoder implements UpdateDecoder {
  private readonly buf: Uint8Array;
  private len = 0;

  constructor(private readonly p: Pipeline, total: number, private readonly out: Float32Array) {
    checkPipelineSize(p, total, out.length);
    this.buf = new Uint8Array(total);
  }

  write(data: Uint8Array): void {
    if (this.len + data.length > this.buf.length)
      throw new RejectedUpdateError('oversized', `${this.p.spec}: more than the ${this.buf.length} bytes declared`);
    this.buf.set(data, this.len);
    this.len += data.length;
  }

  end(): void {
    if (this.len !== this.buf.length) throw new RejectedUpdateError('truncated', `${this.p.spec}: payload ended after ${this.len} of ${this.buf.length} bytes`);
    decodePipeline(this.buf, this.p, this.out);
  }
}
