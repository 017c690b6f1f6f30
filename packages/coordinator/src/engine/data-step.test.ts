import { describe, expect, it } from 'vitest';
import type { ColumnProfile, DataProfile, JoinRequestMsg } from '@fedge/proto';
import { AgentRegistry } from './agent-registry.js';
import { MemoryStore } from '../store/memory-store.js';
import { eligibleFor, needsDataStep, runDataStep } from './data-step.js';
import { TaskFactory } from './tasks.js';
import { makeGlobalModel } from './global-model.js';
import { parseRunConfig } from '../config/run-config.js';

const num = (name: string, values: number[]): ColumnProfile => ({
  name, type: 'numeric', count: values.length, missing: 0, integer: values.every(Number.isInteger),
  sum: values.reduce((a, b) => a + b, 0), sumSq: values.reduce((a, b) => a + b * b, 0), min: Math.min(...values), max: Math.max(...values),
});
const cat = (name: string, values: string[]): ColumnProfile => ({
  name, type: 'categorical', count: values.length, missing: 0, truncated: false,
  values: values.reduce<Record<string, number>>((m, v) => ({ ...m, [v]: (m[v] ?? 0) + 1 }), {}),
});
const profile = (columns: ColumnProfile[], fp: string): DataProfile => ({ format: 'csv', n: (columns[0] as { count: number }).count, columns, targets: ['price'], fingerprint: fp.repeat(64) });

function fleet(profiles: DataProfile[]): AgentRegistry {
  const reg = new AgentRegistry(new MemoryStore());
  profiles.forEach((p, i) => {
    const req: JoinRequestMsg = { name: `a${i}`, agentId: '', joinToken: '', backend: 'wasm', agentVersion: 't', numExamples: p.n, labels: {}, dataProfileJson: JSON.stringify(p) };
    const { agentId } = reg.join(req);
    reg.attach(agentId, { send: () => undefined, close: () => undefined });
  });
  return reg;
}

describe('the statistics step', () => {
  const good = (fp: string, xs: number[], zone: string[]) => profile([num('size', xs), cat('zone', zone), num('price', xs.map((x) => 2 * x))], fp);

  it('combines the fleet, refuses an agent whose schema differs (naming the column), sizes the MLP from the data', async () => {
    const reg = fleet([good('a', [1, 2, 3], ['n', 's', 'n']), good('b', [4, 5], ['e', 'n']), profile([num('SIZE', [1]), cat('zone', ['n']), num('price', [2])], 'c')]);
    const config = parseRunConfig({ task: { type: 'regression', target: 'price' } });
    const { data, blob } = await runDataStep(config, reg.available(), reg, undefined);
    expect(data.refused).toHaveLength(1);
    expect(data.refused[0]!.name).toBe('a2');
    expect(data.refused[0]!.reason).toMatch(/SIZE|size/);
    expect(data.n).toBe(5);
    expect(data.agents.map((a) => a.fingerprint)).toEqual(['a'.repeat(64), 'b'.repeat(64)]);
    const size = data.preprocessing.features.find((f) => f.name === 'size');
    expect(size).toMatchObject({ kind: 'numeric', shift: 3, mean: 3 });
    expect((size as { scale: number }).scale).toBeCloseTo(Math.sqrt(2), 12); // population std of 1..5
    expect(data.preprocessing.features.find((f) => f.name === 'zone')).toEqual({ name: 'zone', kind: 'categorical', values: ['e', 'n', 's'] });
    expect(data.preprocessing.inputWidth).toBe(4);
    expect(data.task).toMatchObject({ type: 'regression', loss: 'mse', outputs: 1, metrics: ['rmse', 'mae', 'r2'] });
    expect(blob.tensors[0]!.shape).toEqual([4, 64]); // fc1 of the default [64, 32] MLP takes the encoded width
    // Only agents with the run's schema are invited.
    const eligible = eligibleFor(data, reg);
    expect(reg.available(eligible).map((a) => a.name)).toEqual(['a0', 'a1']);
  });

  it('classification with class names takes its classes from the fleet\'s vocabulary', async () => {
    const p = (fp: string, labels: string[]) => profile([num('x', labels.map((_, i) => i)), cat('kind', labels)], fp);
    const reg = fleet([p('a', ['cat', 'dog']), p('b', ['bird', 'dog'])]);
    const { data } = await runDataStep(parseRunConfig({ task: { type: 'classification', target: 'kind' } }), reg.available(), reg, undefined);
    expect(data.task.outputs).toBe(3);
    expect(data.preprocessing.targets).toEqual([{ name: 'kind', kind: 'categorical', values: ['bird', 'cat', 'dog'] }]);
  });

  it('fails with the fix when there is no target, or the target is a real number for classification', async () => {
    const reg = fleet([profile([num('x', [1, 2]), num('y', [0.5, 1.5])], 'a')].map((p) => ({ ...p, targets: [] })));
    await expect(runDataStep(parseRunConfig({ task: { type: 'regression' } }), reg.available(), reg, undefined)).rejects.toThrow(/task\.target: not set, and the agents were started without --target/);
    await expect(runDataStep(parseRunConfig({ task: { type: 'classification', target: 'y' } }), reg.available(), reg, undefined)).rejects.toThrow(/classification needs class indices/);
    await expect(runDataStep(parseRunConfig({ task: { type: 'regression', target: 'nope' } }), reg.available(), reg, undefined)).rejects.toThrow(/no column "nope".*columns are x, y/);
  });

  it('refuses a join whose data profile is malformed, naming the field', () => {
    const reg = new AgentRegistry(new MemoryStore());
    const req: JoinRequestMsg = { name: 'x', agentId: '', joinToken: '', backend: 'wasm', agentVersion: 't', numExamples: 1, labels: {}, dataProfileJson: JSON.stringify({ format: 'csv', n: 1, columns: [], targets: [], fingerprint: 'zz' }) };
    expect(() => reg.join(req)).toThrow(/data_profile_json: .*columns|fingerprint/);
    expect(() => reg.join({ ...req, dataProfileJson: '{' })).toThrow(/data_profile_json: not valid JSON/);
  });
});

describe('the statistics step with one agent\'s unusable labels', () => {
  it('leaves that agent out, named with the reason, and goes on with the others', async () => {
    const p = (fp: string, labels: string[]) => profile([num('x', labels.map((_, i) => i)), cat('diagnosis', labels)], fp);
    const reg = fleet([p('a', ['benign', 'malignant']), p('b', ['malignant', 'benign']), p('c', ['benign', 'unknown'])]);
    const { data } = await runDataStep(parseRunConfig({ task: { type: 'binary', target: 'diagnosis' } }), reg.available(), reg, undefined);
    expect(data.refused).toEqual([{ agentId: expect.any(String), name: 'a2', reason: expect.stringMatching(/"unknown" here, not one of the fleet's two classes \(benign, malignant\)/) }]);
    expect(data.preprocessing.targets).toEqual([{ name: 'diagnosis', kind: 'categorical', values: ['benign', 'malignant'] }]);
    expect(data.agents.map((a) => a.name)).toEqual(['a0', 'a1']);
    expect(reg.available(eligibleFor(data, reg)).map((a) => a.name)).toEqual(['a0', 'a1']);
  });

  it('refuses negative or fractional class labels of one agent', async () => {
    const q = (fp: string, ys: number[]) => profile([num('x', ys), num('y', ys)], fp);
    const reg = fleet([q('a', [0, 1, 2]), q('b', [1, 2]), q('c', [0.5, 1])]);
    const { data } = await runDataStep(parseRunConfig({ task: { type: 'classification', target: 'y' } }), reg.available(), reg, undefined);
    expect(data.refused.map((r) => r.name)).toEqual(['a2']);
    expect(data.refused[0]!.reason).toMatch(/non-integers/);
    expect(data.task.outputs).toBe(3);
  });
});

describe('FedProx: proximalMu reaches agents in the resolved task', () => {
  it('a run with proximalMu goes through the statistics step (plain MNIST configs too) and every train task carries mu', async () => {
    expect(needsDataStep(parseRunConfig({}))).toBe(false);
    expect(needsDataStep(parseRunConfig({ strategy: { name: 'fedprox' } }))).toBe(true);
    expect(needsDataStep(parseRunConfig({ strategy: { name: 'fedadam', proximalMu: 0.5 } }))).toBe(true);
    expect(needsDataStep(parseRunConfig({ strategy: { name: 'fedadam', proximalMu: 0 } }))).toBe(false);
    const p = (fp: string, xs: number[]) => profile([num('x', xs), num('price', xs.map((x) => 3 * x))], fp);
    const reg = fleet([p('a', [1, 2, 3]), p('b', [4, 5])]);
    const config = parseRunConfig({ task: { type: 'regression', target: 'price' }, strategy: { name: 'fedprox', proximalMu: 0.1 } });
    const { data, blob } = await runDataStep(config, reg.available(), reg, undefined);
    expect(data.task.proximalMu).toBe(0.1);
    const tasks = new TaskFactory({ id: 'run-p', config, data });
    const model = makeGlobalModel('run-p', 0, blob);
    const train = tasks.round('train', model, 1, 0, 0);
    expect(JSON.parse(train.config.taskJson!).task.proximalMu).toBe(0.1);
    // Without mu the resolved task is as before (no field).
    const plain = await runDataStep(parseRunConfig({ task: { type: 'regression', target: 'price' } }), reg.available(), reg, undefined);
    expect('proximalMu' in plain.data.task).toBe(false);
  });
});

describe('agent records', () => {
  it('carry a summary of the data the agent reported (fedge agent list)', () => {
    const reg = fleet([profile([num('x', [1, 2]), num('price', [3, 4])], 'd')]);
    expect(reg.list()[0]!.data).toEqual({ format: 'csv', n: 2, columns: 2, fingerprint: 'd'.repeat(64) });
  });
});

describe('the statistics step of a private run', () => {
  const privacy = (statisticsClipNorm: number, noiseMultiplier: number) => ({ mode: 'central', clipNorm: 1, noiseMultiplier, statisticsClipNorm });
  const rows = (k: number, f: (i: number) => number) => Array.from({ length: k }, (_, i) => f(i));

  it('refuses statistics that are mostly noise (raw values clipped to a small norm), naming the column and the fixes', async () => {
    // Two agents of 60 rows with values near 1000: one agent's (count, sum, sumSq) has norm ~6e7, clipped to 5.
    const p = (fp: string, off: number) => profile([num('size', rows(60, (i) => 900 + ((i * 7 + off) % 200))), num('price', rows(60, (i) => i))], fp);
    const reg = fleet([p('a', 0), p('b', 3)]);
    const config = parseRunConfig({ task: { type: 'regression', target: 'price' }, privacy: privacy(5, 1) });
    await expect(runDataStep(config, reg.available(), reg, undefined)).rejects.toThrow(
      /privacy\.statisticsClipNorm: the noised statistics of column 'size' are mostly noise \(count \d+ for 120 examples\).*task\.statistics/,
    );
  });

  it('accepts statistics whose clip norm covers an agent\'s vector: the noised mean and std are near the exact ones', async () => {
    // Values in [0, 1]: one agent's vector is (60, ~30, ~20), norm ~70, under the clip norm 100; noise std 1.
    const p = (fp: string, off: number) => profile([num('size', rows(60, (i) => ((i * 7 + off) % 60) / 60)), num('price', rows(60, (i) => i))], fp);
    const reg = fleet([p('a', 0), p('b', 3)]);
    const { data } = await runDataStep(parseRunConfig({ task: { type: 'regression', target: 'price' }, privacy: privacy(100, 0.01) }), reg.available(), reg, undefined);
    expect(data.statisticsNoiseStd).toBe(1);
    const size = data.preprocessing.features.find((f) => f.name === 'size') as { shift: number; scale: number };
    expect(size.shift).toBeGreaterThan(0.45);
    expect(size.shift).toBeLessThan(0.54);
    expect(size.scale).toBeGreaterThan(0.2);
    expect(size.scale).toBeLessThan(0.4);
  });
});
