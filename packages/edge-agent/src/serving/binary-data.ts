/**
 * Raw tensor bytes as the KServe v2 binary tensor data extension (HTTP) and the gRPC raw_input_contents /
 * raw_output_contents carry them: row-major, little-endian; BYTES elements each prefixed with a 4-byte little-endian
 * length. fedge models take FP32 and BYTES inputs and produce FP32 outputs.
 */
import { ServingError } from './infer-core.js';

/** `bytes` as the values of a `datatype` tensor of `count` elements; `where` names it in errors. */
export function decodeRaw(bytes: Uint8Array, datatype: string, count: number, where: string): Float32Array | string[] {
  if (datatype === 'FP32') {
    if (bytes.byteLength !== count * 4)
      throw new ServingError(400, `${where}: ${bytes.byteLength} bytes for ${count} FP32 values (needs ${count * 4}: 4 little-endian bytes each)`);
    // Copied: the request buffer's offset need not be 4-byte aligned.
    const out = new Float32Array(count);
    new Uint8Array(out.buffer).set(bytes);
    return out;
  }
  if (datatype === 'BYTES') {
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const out: string[] = [];
    let at = 0;
    while (at < bytes.byteLength) {
      if (at + 4 > bytes.byteLength) throw new ServingError(400, `${where}: BYTES element ${out.length} has a truncated 4-byte length prefix`);
      const len = view.getUint32(at, true);
      at += 4;
      if (at + len > bytes.byteLength) throw new ServingError(400, `${where}: BYTES element ${out.length} declares ${len} bytes but only ${bytes.byteLength - at} remain`);
      out.push(Buffer.from(bytes.buffer, bytes.byteOffset + at, len).toString('utf8'));
      at += len;
    }
    if (out.length !== count) throw new ServingError(400, `${where}: ${out.length} BYTES elements for ${count} expected by the shape`);
    return out;
  }
  throw new ServingError(400, `${where}: datatype ${datatype} is not supported in binary form (fedge models take FP32 and BYTES)`);
}

/** The little-endian bytes of an FP32 output (a view, no copy, on little-endian hosts). */
export function encodeFp32(data: Float32Array): Buffer {
  return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}

/** The element count of `shape`, refusing shapes whose product is not a safe count. */
export function elementCount(shape: number[], where: string): number {
  let n = 1;
  for (const d of shape) n *= d;
  if (!Number.isSafeInteger(n)) throw new ServingError(400, `${where}: shape ${JSON.stringify(shape)} is too large`);
  return n;
}
