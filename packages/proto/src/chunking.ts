/** Splits payloads into ordered chunks and reassembles them with gap, overflow and truncation checks. */
import { createHash, type Hash } from 'node:crypto';
import { RejectedUpdateError } from './errors.js';
import type { ModelBlob, TensorSpec } from './tensor.js';
import { CHUNK_BYTES } from './grpc-loader.js';

/** Yields views (no copies) of `bytes` in order, each at most `size` bytes. An empty payload yields nothing. */
export function* chunkBytes(bytes: Uint8Array, size = CHUNK_BYTES): Generator<{ offset: number; data: Uint8Array }> {
  for (let off = 0; off < bytes.byteLength; off += size) {
    yield { offset: off, data: bytes.subarray(off, Math.min(off + size, bytes.byteLength)) };
  }
}

/** Checks, without touching the bytes, that chunks of a payload of known size arrive in order, no gap, overlap or excess. */
export class ChunkSequence {
  private received = 0;
  constructor(readonly totalBytes: number) {}
  /** Accepts the next chunk's position and length, or throws (bad_offset, oversized). */
  next(offset: number, length: number): void {
    if (offset !== this.received)
      throw new RejectedUpdateError('bad_offset', `chunk.offset: expected ${this.received}, got ${offset}`);
    if (this.received + length > this.totalBytes)
      throw new RejectedUpdateError('oversized', `payload exceeds the declared total_bytes ${this.totalBytes}`);
    this.received += length;
  }
  get bytesReceived(): number {
    return this.received;
  }
  /** Throws (truncated) unless every declared byte arrived. */
  end(): void {
    if (this.received !== this.totalBytes)
      throw new RejectedUpdateError('truncated', `payload truncated: received ${this.received} of ${this.totalBytes} bytes`);
  }
}

/** Receives chunks of a payload of known size into a caller-provided buffer (or one it allocates). */
export class ChunkAssembler {
  private readonly seq: ChunkSequence;
  readonly buffer: Uint8Array;
  constructor(readonly totalBytes: number, buffer?: Uint8Array) {
    this.buffer = buffer ?? new Uint8Array(totalBytes);
    if (this.buffer.byteLength < totalBytes) throw new RangeError('buffer smaller than payload');
    this.seq = new ChunkSequence(totalBytes);
  }
  /** Accepts the next chunk; chunks must arrive in order with no gap or overlap. */
  push(offset: number, data: Uint8Array): void {
    this.seq.next(offset, data.byteLength);
    this.buffer.set(data, offset);
  }
  get bytesReceived(): number {
    return this.seq.bytesReceived;
  }
  /** Throws unless every declared byte arrived. */
  finish(): Uint8Array {
    this.seq.end();
    return this.buffer.subarray(0, this.totalBytes);
  }
}

/** What modelDigest hashes before the weight bytes: topology and tensor specs (name, dtype, shape). */
export function modelDigestPrefix(topologyJson: string, tensors: readonly TensorSpec[]): string {
  return `${topologyJson}\n${JSON.stringify(tensors.map((t) => [t.name, t.dtype, t.shape]))}\n`;
}

/**
 * sha256 of a model's topology and tensor specs, ready for its weight bytes: a receiver feeds each chunk as it
 * arrives, so the digest is done when the last chunk is, instead of another pass over the assembled payload.
 */
export function modelHasher(topologyJson: string, tensors: readonly TensorSpec[]): Hash {
  return createHash('sha256').update(modelDigestPrefix(topologyJson, tensors));
}

/** Content digest of a model: topology, tensor specs and weight bytes, so any change to either changes it. */
export function modelDigest(topologyJson: string, tensors: readonly TensorSpec[], weights: Uint8Array): string {
  return modelHasher(topologyJson, tensors).update(weights).digest('hex');
}

export function blobDigest(blob: ModelBlob): string {
  return modelDigest(
    JSON.stringify(blob.topology),
    blob.tensors,
    new Uint8Array(blob.weights.buffer, blob.weights.byteOffset, blob.weights.byteLength),
  );
}
