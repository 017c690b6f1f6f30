import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { loadMnist } from '@fedge/ml';
import { healthSectionSchema } from '@fedge/proto';
import type { ModelSlot } from './model-slot.js';
import { inferRouted } from './routed-infer.js';
import { healthSection } from './health-report.js';
import { HoldoutScorer, MAX_ROWS } from './holdout-accuracy.js';
import { mnistSlot } from './serving.fixture.js';

const { test } = loadMnist();
let slot: ModelSlot;

beforeAll(async () => {
  slot = await mnistSlot('mnist', { '1': 1, '2': 2 }, { run: 'run-h' });
}, 60_000);
afterAll(async () => slot?.close());

describe('health section and holdout accuracy', () => {
  it('reports per-version figures of the window with the split and each version\'s holdout accuracy', async () => {
    const scorer = new HoldoutScorer(slot, async () => test);
    slot.setSplit({ stable: '1', candidate: '2', fraction: 0.5, source: 'canary' });
    for (let i = 0; i < 40; i++)
      await inferRouted(slot, { name: 'mnist', requestId: `r${i}`, inputs: [{ name: 'input', shape: [4, 784], datatype: 'FP32', values: test.x.slice(i * 4 * 784, (i + 1) * 4 * 784), where: 'test' }], maxBatch: 64 });
    const first = healthSection(slot, scorer)!;
    expect(healthSectionSchema.parse(first)).toEqual(first);
    expect(first).toMatchObject({ runId: 'run-h', split: { candidate: 2, stable: 1, fraction: 0.5 } });
    expect(first.versions.map((v) => v.version).sort()).toEqual([1, 2]);
    expect(first.versions.reduce((a, v) => a + v.requests, 0)).toBe(40);
    // Accuracy is computed in the background on first ask, then reported.
    await vi.waitFor(() => expect(healthSection(slot, scorer)!.versions.every((v) => v.accuracy !== undefined)).toBe(true));
    const acc = Object.fromEntries(healthSection(slot, scorer)!.versions.map((v) => [v.version, v.accuracy!]));
    // The same figure by hand: argmax of each version's outputs against the labels, on the first MAX_ROWS rows.
    for (const v of ['1', '2']) {
      let right = 0;
      for (let at = 0; at < MAX_ROWS; at += 64) {
        const r = await inferRouted(slot, { name: 'mnist', version: v, inputs: [{ name: 'input', shape: [64, 784], datatype: 'FP32', values: test.x.slice(at * 784, (at + 64) * 784), where: 'test' }], maxBatch: 64 });
        const out = r.outputs[0]!.data;
        for (let i = 0; i < 64; i++) {
          let best = 0;
          for (let j = 1; j < 10; j++) if (out[i * 10 + j]! > out[i * 10 + best]!) best = j;
          if (best === (test.y as Int32Array)[at + i]) right++;
        }
      }
      expect(acc[Number(v)]).toBeCloseTo(right / MAX_ROWS, 10);
    }
    slot.setSplit(undefined);
  });

  it('scores nothing for a model that does not take the holdout rows', async () => {
    const scorer = new HoldoutScorer(slot, async () => ({ ...test, features: 10, x: new Float32Array(test.n * 10) }));
    expect(scorer.accuracy('2')).toBeUndefined();
    await new Promise((r) => setTimeout(r, 200));
    expect(scorer.accuracy('2')).toBeUndefined();
  });
});
