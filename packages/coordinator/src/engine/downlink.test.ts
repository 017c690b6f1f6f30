import { describe, expect, it } from 'vitest';
import { applyChain, modelDigest, type ModelBlob } from '@fedge/proto';
import { DownlinkDeltas, KEEP_DELTAS } from './downlink.js';
import { makeGlobalModel, type GlobalModel } from './global-model.js';

const blob = (weights: Float32Array): ModelBlob => ({ topology: { layers: [] }, tensors: [{ name: 'w', dtype: 'float32', shape: [weights.length] }], weights }) as unknown as ModelBlob;

describe('DownlinkDeltas', () => {
  const history = (spec: string, n: number, steps: number): { d: DownlinkDeltas; versions: GlobalModel[] } => {
    const d = new DownlinkDeltas(spec);
    let g: GlobalModel = makeGlobalModel('r', 0, blob(new Float32Array(n).map((_, i) => Math.sin(i))));
    const versions = [g];
    for (let v = 1; v <= steps; v++) {
      const trained = g.blob.weights.map((x, i) => x + 0.01 * Math.cos(i * v));
      g = makeGlobalModel('r', v, blob(d.publish(g, trained)));
      versions.push(g);
    }
    return { d, versions };
  };

  it('publishes versions agents rebuild from any kept version (sha256 matches); unknown, evicted or mismatching holders get none', () => {
    const d = new DownlinkDeltas('delta+q4');
    const n = 4000;
    let g: GlobalModel = makeGlobalModel('r', 0, blob(new Float32Array(n).map((_, i) => Math.sin(i))));
    const versions = [g];
    for (let v = 1; v <= KEEP_DELTAS + 3; v++) {
      const trained = g.blob.weights.map((x, i) => x + 0.01 * Math.cos(i * v));
      g = makeGlobalModel('r', v, blob(d.publish(g, trained)));
      versions.push(g);
    }
    const last = versions.at(-1)!;
    for (const have of [last.version - 1, last.version - 3, last.version - KEEP_DELTAS + 1]) {
      const held = versions[have]!;
      const c = d.chain(have, held.sha256, last)!;
      expect(c.encoding).toBe('chain:pipe:delta+q4');
      const w = applyChain(held.blob.weights, c.encoding, c.payload);
      const bytes = new Uint8Array(w.buffer);
      expect(modelDigest(last.header.topologyJson, last.blob.tensors, bytes)).toBe(last.sha256);
    }
    // Evicted, wrong sha, no holder, not older: full model.
    expect(d.chain(last.version - KEEP_DELTAS - 1, versions[last.version - KEEP_DELTAS - 1]!.sha256, last)).toBeUndefined();
    expect(d.chain(last.version - 1, 'f'.repeat(64), last)).toBeUndefined();
    expect(d.chain(0, '', last)).toBeUndefined();
    expect(d.chain(last.version, last.sha256, last)).toBeUndefined();
  });

  it('sends a chain only when it is smaller than the model: fp16 deltas are half of it, so one link goes and two do not', () => {
    const n = 3000;
    const { d, versions } = history('delta+fp16', n, 3);
    const last = versions.at(-1)!;
    expect(d.chain(2, versions[2]!.sha256, last)!.payload.byteLength).toBeLessThan(0.51 * 4 * n);
    expect(d.chain(1, versions[1]!.sha256, last)).toBeUndefined();
  });
});
