/** A numbered global model version, held with the header and bytes agents download. */
import { modelDigest, type ModelBlob, type ModelHeaderMsg } from '@fedge/proto';

export interface GlobalModel {
  version: number;
  sha256: string;
  blob: ModelBlob;
  header: ModelHeaderMsg;
  /** The weight payload as sent in chunks (a view of blob.weights). */
  bytes: Uint8Array;
}

export function makeGlobalModel(runId: string, version: number, blob: ModelBlob): GlobalModel {
  const topologyJson = JSON.stringify(blob.topology);
  const bytes = new Uint8Array(blob.weights.buffer, blob.weights.byteOffset, blob.weights.byteLength);
  const sha256 = modelDigest(topologyJson, blob.tensors, bytes);
  return {
    version,
    sha256,
    blob,
    bytes,
    header: {
      runId,
      modelVersion: version,
      topologyJson,
      tensors: blob.tensors.map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape.slice() })),
      totalBytes: bytes.byteLength,
      sha256,
    },
  };
}
