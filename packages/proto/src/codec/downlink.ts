/**
 * Compressed downlink: an agent holding version v gets version v' as the chain of per-version deltas v -> v+1 -> ...
 * -> v' when that is smaller than the model. Lossy deltas (fp16, q8) stay bit-exact because the coordinator publishes
 * the reconstruction itself: version v+1 IS v + decode(encode(w - v)) computed in float32, so the agent that applies
 * the same decoded delta to the same v gets the same bytes, and the signed sha256 of v+1 verifies them. (The
 * alternative, signing a per-agent reconstruction, would make every agent hold a different model.) The price: the
 * global model moves by the quantized step, an unbiased (q8) or ~1e-3 relative (fp16) error of each update.
 *
 * Payload of a delta download (encoding "chain:" + the pipeline's encoding): [u32 links] then per link [u32 bytes][a
 * pipeline payload of the model's n values], applied in order.
 */
import { RejectedUpdateError } from '../errors.js';
import { ByteReader, ByteWriter } from './bytes.js';
import { decodePipeline, encodePipeline, pipelineEncoding, pipelineOfEncoding } from './pipeline.js';
import type { Pipeline } from './spec.js';

export const CHAIN_PREFIX = 'chain:';
/** Longest chain an agent accepts (a coordinator keeps fewer versions' deltas than this). */
export const MAX_CHAIN = 16;

/** The version after `prev` as agents will reconstruct it, and the delta payload that takes them there. */
export function publishDelta(prev: Float32Array, next: Float32Array, p: Pipeline, rng?: () => number): { weights: Float32Array; payload: Uint8Array } {
  const d = new Float32Array(next.length);
  for (let i = 0; i < d.length; i++) d[i] = next[i]! - prev[i]!;
  const payload = encodePipeline(d, p, rng ? { rng } : {});
  const weights = new Float32Array(next.length);
  applyDelta(prev, payload, p, weights);
  return { weights, payload };
}

/** out = base + decode(payload), in float32 (bit-exact on both ends); throws RejectedUpdateError on a malformed delta. */
export function applyDelta(base: Float32Array, payload: Uint8Array, p: Pipeline, out: Float32Array): void {
  const d = new Float32Array(base.length);
  decodePipeline(payload, p, d);
  for (let i = 0; i < d.length; i++) out[i] = base[i]! + d[i]!;
}

export function chainEncoding(p: Pipeline): string {
  return CHAIN_PREFIX + pipelineEncoding(p);
}

export function encodeChain(links: Uint8Array[]): Uint8Array {
  const w = new ByteWriter(4 + links.reduce((s, l) => s + 4 + l.length, 0));
  w.u32(links.length);
  for (const l of links) {
    w.u32(l.length);
    w.bytes(l);
  }
  return w.result();
}

/** Applies a chain download to the held weights; every link is validated like an update. */
export function applyChain(held: Float32Array, encoding: string, payload: Uint8Array): Float32Array {
  if (!encoding.startsWith(CHAIN_PREFIX)) throw new RejectedUpdateError('bad_encoding', `model download encoding "${encoding}" is not a delta chain`);
  const p = pipelineOfEncoding(encoding.slice(CHAIN_PREFIX.length));
  if (!p?.delta) throw new RejectedUpdateError('bad_encoding', `model download encoding "${encoding}": not a delta pipeline`);
  const r = new ByteReader(payload, 'delta chain');
  const links = r.u32('link count');
  if (links < 1 || links > MAX_CHAIN) throw new RejectedUpdateError('malformed', `delta chain: ${links} links, expected 1 to ${MAX_CHAIN}`);
  let cur = held;
  for (let k = 0; k < links; k++) {
    const next = new Float32Array(held.length);
    applyDelta(cur, r.take(r.u32(`link ${k} size`), `link ${k}`), p, next);
    cur = next;
  }
  r.end();
  return cur;
}
