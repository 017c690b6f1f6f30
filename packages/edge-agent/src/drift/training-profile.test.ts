/** An agent profiles a run's training split once, on the run's bins, from its first train task. */
import { describe, expect, it } from 'vitest';
import type { TaskMsg } from '@fedge/proto';
import { TrainingProfiles } from './training-profile.js';

const payload = {
  task: { type: 'classification', loss: 'sparse-categorical-crossentropy', optimizer: { name: 'sgd', learningRate: 0.1 }, metrics: ['accuracy'], outputs: 2 },
  preprocessing: { normalization: 'zscore', features: [{ name: 'x', kind: 'numeric', shift: 0, scale: 1, mean: 0 }], targets: [{ name: 'y', kind: 'numeric' }], inputWidth: 1 },
};
const task = (kind: string, runId: string, taskJson = JSON.stringify(payload)): TaskMsg =>
  ({ taskId: 't', runId, round: 1, modelVersion: 0, kind, modelSha256: '', modelBytes: 0, config: { epochs: 1, batchSize: 1, learningRate: 0.1, seed: 1, taskJson }, deadlineUnixMs: 0 }) as unknown as TaskMsg;
const train = { n: 4, columns: [{ name: 'x', type: 'numeric' as const, values: Float64Array.from([-3, 0.1, 0.2, 5]) }, { name: 'y', type: 'numeric' as const, values: Float64Array.from([0, 1, 1, 1]) }] };

describe('TrainingProfiles', () => {
  it('profiles the first train task of each run only, on the payload\'s bins, with the label distribution', () => {
    const p = new TrainingProfiles();
    expect(p.forTask(task('evaluate', 'run-1'), train)).toBeUndefined();
    const first = p.forTask(task('train', 'run-1'), train);
    expect(first).toEqual({ runId: 'run-1', round: 1, profile: { examples: 4, features: [{ feature: 'x', counts: [1, 0, 0, 0, 0, 2, 0, 0, 0, 1] }], labels: [1, 3] } });
    expect(p.forTask(task('train', 'run-1'), train)).toBeUndefined();
    expect(p.forTask(task('train', 'run-2'), undefined)).toBeUndefined(); // no local data (an aggregator site)
    // A legacy task (no payload): its one block input, pooled on [0, 1]; no labels.
    const legacy = p.forTask(task('train', 'run-3', ''), { n: 1, columns: [{ name: 'pixels', type: 'block', width: 3, values: Float32Array.from([0, 0.55, 1]) }] });
    expect(legacy!.profile.features).toEqual([{ feature: 'input', counts: [0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1] }]);
  });
});
