/** The live drift window is exact as examples leave it, and the tracker flags a shifted feature vs its references. */
import { describe, expect, it } from 'vitest';
import { histogram, type DataProfileCounts, type TaskPayload } from '@fedge/proto';
import { LiveWindow } from './live-window.js';
import { DriftTracker } from './tracker.js';
import type { LoadedModel } from '../serving/model-slot.js';
import type { DecodedInput, OutputTensor } from '../serving/infer-core.js';

describe('LiveWindow', () => {
  it('holds exactly the last N examples: counts equal a histogram of them, for scalar, block and prediction bins', () => {
    const edges = [0, 1, 2];
    const w = new LiveWindow([{ feature: 'x', kind: 'numeric', edges }, { feature: 'px', kind: 'raw', edges }, { feature: 'c', kind: 'categorical', values: ['a', 'b'] }], 5, 3);
    const xs: number[] = [];
    const blocks: number[][] = [];
    const cats: (string | null)[] = [];
    for (let i = 0; i < 23; i++) {
      const x = ((i * 7) % 11) / 3 - 0.5;
      const block = [x, x + 1, NaN];
      const c = ['a', 'b', 'zz', null][i % 4]!;
      xs.push(x);
      blocks.push(block);
      cats.push(c);
      w.add([x, { data: block, from: 0, to: block.length }, c], [i % 3 === 0 ? 1 : 0, i % 3 === 1 ? 1 : 0, i % 3 === 2 ? 1 : 0]);
      const last = (arr: unknown[]) => arr.slice(-5);
      expect(w.counts()[0]!.counts).toEqual(histogram(last(xs) as number[], edges));
      expect(w.counts()[1]!.counts).toEqual(histogram((last(blocks) as number[][]).flat(), edges));
      const catCounts = [0, 0, 0];
      for (const v of last(cats)) catCounts[v === 'a' ? 1 : v === 'b' ? 2 : 0]!++;
      expect(w.counts()[2]!.counts).toEqual(catCounts);
      const predCounts = [0, 0, 0];
      for (let j = Math.max(0, i - 4); j <= i; j++) predCounts[j % 3]!++;
      expect(w.predictionCounts()).toEqual(predCounts);
    }
    expect(w.examples).toBe(5);
    expect(w.bytesPerFeature).toBeGreaterThan(0);
  });
});

describe('DriftTracker', () => {
  const payload: TaskPayload = {
    task: { type: 'classification', loss: 'sparse-categorical-crossentropy', optimizer: { name: 'sgd', learningRate: 0.1 }, metrics: ['accuracy'], outputs: 2 },
    preprocessing: { normalization: 'zscore', features: [{ name: 'a', kind: 'numeric', shift: 0, scale: 1, mean: 0 }, { name: 'b', kind: 'numeric', shift: 10, scale: 2, mean: 10 }], targets: [{ name: 'y', kind: 'numeric' }], inputWidth: 2 },
  } as TaskPayload;
  const model = { version: '3', info: { run: 'run-1' }, inputs: [{ name: 'numeric', datatype: 'FP32', shape: [-1, 2], parameters: { kind: 'numeric', columns: ['a', 'b'] } }], outputs: [] } as unknown as LoadedModel;
  // A reference where a ~ N(0,1) and b ~ N(10, 2): built from the same generator the live data uses.
  const gauss = (i: number): number => {
    const u = ((i * 0.6180339887) % 1) * 0.98 + 0.01;
    const v = ((i * 0.7548776662) % 1) * 0.98 + 0.01;
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  };
  const edgesA = [-2, -1.5, -1, -0.5, 0, 0.5, 1, 1.5, 2];
  const edgesB = edgesA.map((z) => 10 + 2 * z);
  const ref: DataProfileCounts = {
    examples: 4000,
    features: [{ feature: 'a', counts: histogram(Array.from({ length: 4000 }, (_, i) => gauss(i)), edgesA) }, { feature: 'b', counts: histogram(Array.from({ length: 4000 }, (_, i) => 10 + 2 * gauss(i + 7)), edgesB) }],
    labels: [2000, 2000],
  };

  it('flags the shifted feature only, against its own and the fleet reference, and renders the gauges', () => {
    const t = new DriftTracker({ window: 500, payloadOf: () => payload, ownProfile: () => ref });
    t.setFleetReference({ runId: 'run-1', key: 'k', agents: 3, profile: ref });
    for (let i = 0; i < 600; i++) {
      // b shifted by 1.5 of its std; a as in training. Predictions all class 1 (the labels were balanced).
      const inputs: DecodedInput[] = [{ name: 'numeric', shape: [1, 2], datatype: 'FP32', values: Float32Array.from([gauss(i + 11), 10 + 2 * (gauss(i + 13) + 1.5)]), where: 'test' }];
      const outputs: OutputTensor[] = [{ name: 'probabilities', datatype: 'FP32', shape: [1, 2], data: Float32Array.from([0.2, 0.8]) }];
      t.observe(model, inputs, outputs, 1);
    }
    const s = t.section()!;
    expect(s).toMatchObject({ runId: 'run-1', version: 3, window: 500 });
    const get = (f: string, r: string) => s.features.find((x) => x.feature === f && x.reference === r)!;
    for (const r of ['own', 'fleet']) {
      expect(get('a', r).psi, `a vs ${r}`).toBeLessThan(0.1);
      expect(get('b', r).psi, `b vs ${r}`).toBeGreaterThan(0.25);
      expect(get('b', r).ks).toBeGreaterThan(0.3);
      expect(get('b', r).pValue).toBeLessThan(1e-6);
      expect(get('a', r).pValue).toBeGreaterThan(0.001);
    }
    expect(s.prediction.map((p) => p.reference)).toEqual(['own', 'fleet']);
    expect(s.prediction[0]!.psi).toBeGreaterThan(0.25);
    const text = t.render().join('\n');
    expect(text).toMatch(/^fedge_agent_drift_psi\{feature="b",reference="fleet"\} \d+(\.\d+)?$/m);
    expect(text).toMatch(/^fedge_agent_drift_ks\{feature="a",reference="own"\} /m);
    expect(text).toMatch(/^fedge_agent_drift_prediction_psi\{reference="fleet"\} /m);
    expect(text).toMatch(/^fedge_agent_drift_window_examples 500$/m);
    expect(t.fleetReferenceKey('run-1')).toBe('k');
  });

  it('reports nothing before the first served example; without references only the window', () => {
    const t = new DriftTracker({ window: 10, payloadOf: () => payload, ownProfile: () => undefined });
    expect(t.section()).toBeUndefined();
    t.observe(model, [{ name: 'numeric', shape: [1, 2], datatype: 'FP32', values: [null, 3], where: 'x' }], [], 1);
    expect(t.section()).toEqual({ runId: 'run-1', version: 3, window: 1, features: [], prediction: [] });
  });
});
