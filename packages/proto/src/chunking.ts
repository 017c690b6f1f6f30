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

/** Receives chunks of a payload of known size into a caller-provided buffer (or one it allocates). */
export class ChunkAssembler {
  private received = 0;
  readonly buffer: Uint8Array;
  constructor(readonly totalBytes: number, buffer?: Uint8Array) {
    this.buffer = buffer ?? new Uint8Array(totalBytes);
    if (this.buffer.byteLength < totalBytes) throw new RangeError('buffer smaller than payload');
  }
  /** Accepts the next chunk; chunks must arrive in order with no gap or overlap. */
  push(offset: number, data: Uint8Array): void {
    if (offset !== this.received)
      throw new RejectedUpdateError('bad_offset', `chunk.offset: expected ${this.received}, got ${offset}`);
    if (this.received + data.byteLength > this.totalBytes)
      throw new RejectedUpdateError('oversized', `payload exceeds the declared total_bytes ${this.totalBytes}`);
    this.buffer.set(data, offset);
    this.received += data.byteLength;
  }
  get bytesReceived(): number {
    return this.received;
  }
  /** Throws unless every declared byte arrived. */
  finish(): Uint8Array {
    if (this.received !== this.totalBytes)
      throw new RejectedUpdateError('truncated', `payload truncated: received ${this.received} of ${this.totalBytes} bytes`);
    return this.buffer.subarray(0, this.totalBytes);
  }
}

/**
 * sha256 of a model's topology and tensor specs, ready for its weight bytes: a receiver feeds each chunk as it
 * arrives, so the digest is done when the last chunk is, instead of another pass over the assembled payload.
 */
export function modelHasher(topologyJson: string, tensors: readonly TensorSpec[]): Hash {
  const h = createHash('sha256');
  h.update(topologyJson);
  h.update('\n');
  h.update(JSON.stringify(tensors.map((t) => [t.name, t.dtype, t.shape])));
  h.update('\n');
  return h;
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
