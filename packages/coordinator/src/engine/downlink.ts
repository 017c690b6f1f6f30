/**
 * The coordinator's side of compressed model downloads (proto codec/downlink.ts): publishes each new version as its
 * predecessor plus the decoded delta, keeps the last few deltas, and answers "I hold v (sha256), send v'" with the
 * chain from v when it is smaller than the full model. A fresh agent, an unknown or evicted v, or a chain that is not
 * smaller gets the full model.
 */
import { chainEncoding, encodeChain, parsePipeline, publishDelta, type Pipeline } from '@fedge/proto';
import type { GlobalModel } from './global-model.js';

/** Deltas kept: enough for an agent that skipped a few rounds; older holders get the full model. */
export const KEEP_DELTAS = 8;

export class DownlinkDeltas {
  private readonly p: Pipeline;
  /** Delta payload into version v (from v - 1), with the sha256 of v - 1 it applies to. */
  private readonly deltas = new Map<number, { fromSha: string; payload: Uint8Array }>();

  constructor(spec: string) {
    this.p = parsePipeline(spec, 'downlink');
  }

  /** The weights to publish as version prev.version + 1 (what agents reconstruct), keeping the delta. */
  publish(prev: GlobalModel, weights: Float32Array): Float32Array {
    const { weights: published, payload } = publishDelta(prev.blob.weights, weights, this.p);
    const v = prev.version + 1;
    this.deltas.set(v, { fromSha: prev.sha256, payload });
    for (const k of this.deltas.keys()) if (k <= v - KEEP_DELTAS) this.deltas.delete(k);
    return published;
  }

  /** The chain from the held version to `want`, when every link is kept, starts at exactly the held bytes, and is smaller. */
  chain(haveVersion: number, haveSha: string, want: GlobalModel): { encoding: string; payload: Uint8Array } | undefined {
    if (!haveSha || haveVersion >= want.version) return undefined;
    const links: Uint8Array[] = [];
    for (let v = haveVersion + 1; v <= want.version; v++) {
      const d = this.deltas.get(v);
      if (!d) return undefined;
      if (v === haveVersion + 1 && d.fromSha !== haveSha) return undefined;
      links.push(d.payload);
    }
    const payload = encodeChain(links);
    return payload.byteLength < want.bytes.byteLength ? { encoding: chainEncoding(this.p), payload } : undefined;
  }
}
