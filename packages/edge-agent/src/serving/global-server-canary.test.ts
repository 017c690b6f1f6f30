import { beforeAll, describe, expect, it } from 'vitest';
import { createBuiltinModel, initBackend, modelToBlob, type ModelBlob } from '@fedge/ml';
import { ModelSlot } from './model-slot.js';
import { GlobalModelServer } from './global-server.js';

let blobs: ModelBlob[] = [];

beforeAll(async () => {
  await initBackend('wasm');
  blobs = [1, 2].map((seed) => {
    const m = createBuiltinModel('mnist-mlp', seed);
    const b = modelToBlob(m);
    m.dispose();
    return b;
  });
}, 60_000);

const v1 = { runId: 'r', version: 1, sha256: 'a' };
const v2 = { runId: 'r', version: 2, sha256: 'b' };

describe('GlobalModelServer: canary promotes', () => {
  it('sets the split once the candidate loads, keeps it (and its window) when re-announced, and rolls back by a swap', async () => {
    const gs = new GlobalModelServer(new ModelSlot('m'), { quantize: 'int8', activations: 'dynamic' });
    let exports = 0;
    const blob = (i: number) => async () => (exports++, blobs[i]!);
    await gs.offer(v1, blob(0), true);
    await gs.offer(v2, blob(1), true, undefined, { stable: 1, fraction: 0.3 });
    expect(exports).toBe(2);
    expect(gs.slot.split).toEqual({ stable: '1', candidate: '2', fraction: 0.3, source: 'canary' });
    gs.slot.stats.observe({ version: '2', outcome: 'ok', ms: 1 });
    const since = gs.slot.stats.windowSince;

    // A reconnect re-announces the canary: the stable side (stableOnly), then the candidate with the same split.
    await gs.offer(v1, blob(0), true, undefined, undefined, true);
    await gs.offer(v2, blob(1), true, undefined, { stable: 1, fraction: 0.3 });
    expect(exports).toBe(2);
    expect(gs.slot.current!.version).toBe('2');
    expect(gs.slot.split?.candidate).toBe('2');
    expect(gs.slot.stats.windowSince).toBe(since);
    expect(gs.slot.stats.windowView()['2']!.requests).toBe(1);

    // A widened split starts a new window.
    await gs.offer(v2, blob(1), true, undefined, { stable: 1, fraction: 0.5 });
    expect(gs.slot.split?.fraction).toBe(0.5);
    expect(gs.slot.stats.windowView()).toEqual({});

    // Rollback: a promote of the stable version without a split swaps back at once (no export) and clears the split.
    const stable = gs.slot.previous;
    await gs.offer(v1, blob(0), true);
    expect(exports).toBe(2);
    expect(gs.slot.current).toBe(stable);
    expect(gs.slot.split).toBeUndefined();
    expect(gs.loaded).toEqual(v1);

    // Promoting the candidate again (a later canary) swaps forward, also without an export.
    await gs.offer(v2, blob(1), true, undefined, { stable: 1, fraction: 0.2 });
    expect(exports).toBe(2);
    expect(gs.slot.split).toEqual({ stable: '1', candidate: '2', fraction: 0.2, source: 'canary' });
    await gs.slot.close();
  });

  it('serves the candidate alone (no split) when the stable version is not the one loaded before it', async () => {
    const gs = new GlobalModelServer(new ModelSlot('m'), { quantize: 'int8', activations: 'dynamic' });
    await gs.offer(v2, async () => blobs[1]!, true, undefined, { stable: 1, fraction: 0.3 });
    expect(gs.slot.current!.version).toBe('2');
    expect(gs.slot.split).toBeUndefined();
    await gs.slot.close();
  });
});
