/** Writes a chunked payload to a gRPC stream, honouring backpressure so memory stays bounded. */
import type { Writable } from 'node:stream';
import { CHUNK_BYTES, chunkBytes, type ChunkMsg, type ModelHeaderMsg } from '@fedge/proto';

export async function writeModelStream(call: Writable, header: ModelHeaderMsg, bytes: Uint8Array, isCancelled: () => boolean): Promise<number> {
  let sent = 0;
  const first: ChunkMsg = { header, offset: 0, data: Buffer.alloc(0) };
  if (!call.write(first)) await drained(call);
  for (const { offset, data } of chunkBytes(bytes, CHUNK_BYTES)) {
    if (isCancelled()) return sent;
    const msg: ChunkMsg = { offset, data: Buffer.from(data.buffer, data.byteOffset, data.byteLength) };
    sent += data.byteLength;
    if (!call.write(msg)) await drained(call);
  }
  return sent;
}

function drained(s: Writable): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      s.off('drain', done);
      s.off('close', done);
      s.off('error', done);
      resolve();
    };
    s.on('drain', done);
    s.on('close', done);
    s.on('error', done);
  });
}
