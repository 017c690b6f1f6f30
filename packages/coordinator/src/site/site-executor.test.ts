/** SiteExecutor: what a site refuses to forward, and stale sub-runs (a restart resumed them) are stopped before a new one. */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { TaskMsg } from '@fedge/proto';
import { Coordinator } from '../coordinator.js';
import { SiteExecutor, siteMetrics } from './site-executor.js';
import { parseSiteOptions } from './site-options.js';

const opts = parseSiteOptions({ upstream: 'grpc://127.0.0.1:1', name: 'site-t' })!;
const task = (over: Partial<TaskMsg['config']> = {}, kind: TaskMsg['kind'] = 'train'): TaskMsg => ({
  taskId: 'run-root.train.1.x', runId: 'run-root', round: 1, modelVersion: 0, kind, modelSha256: '0'.repeat(64), modelBytes: 16,
  config: { epochs: 1, batchSize: 8, learningRate: 0.1, seed: 1, ...over }, deadlineUnixMs: 0,
});
const session = { agentId: 'a', sessionToken: 't' };
const blob = { topology: {}, tensors: [{ name: 'w', dtype: 'float32' as const, shape: [4] }], weights: new Float32Array(4) };

describe('SiteExecutor', () => {
  it('refuses, naming what, the tasks a site cannot forward yet', async () => {
    const ex = new SiteExecutor(new Coordinator({ dataDir: mkdtempSync(path.join(tmpdir(), 'fedge-site-')) }), opts);
    const run = (t: TaskMsg): Promise<unknown> => ex.run(t, {} as never, session, new AbortController().signal);
    await expect(run(task({ clipNorm: 1, reportClipped: true }))).rejects.toThrow(/adaptive clipping/);
    await expect(run(task({ secaggJson: '{}' }))).rejects.toThrow(/secure aggregation/);
    await expect(run(task({ taskJson: '{}' }))).rejects.toThrow(/data step/);
  });

  it('stops a sub-run left active (e.g. resumed after a restart) before starting the next', async () => {
    const coord = new Coordinator({ dataDir: mkdtempSync(path.join(tmpdir(), 'fedge-site-')) });
    // No agents: the stale sub-run waits for them, as a resumed one would.
    const stale = await coord.startRun({ rounds: 1, centralEvaluation: false, upstream: { runId: 'run-old', round: 3, taskId: 't', site: 'site-t', seedBase: 0 } }, blob);
    const other = await coord.startRun({ rounds: 1, centralEvaluation: false }, blob);
    const ex = new SiteExecutor(coord, opts) as unknown as { stopStaleSubRuns(t: TaskMsg): Promise<void> };
    await ex.stopStaleSubRuns(task());
    expect((await coord.waitForRun(stale.id)).status).toBe('stopped');
    expect((await coord.getRun(other.id)).status).not.toBe('stopped');
    await coord.stopRun(other.id);
    await coord.close();
  });

  it('combines its agents\' metrics as the root combines agents: eval_* by eval examples (summed), the rest by training examples', () => {
    const m = siteMetrics([
      { agentId: 'a', name: 'a', outcome: 'completed', numExamples: 100, metrics: { eval_examples: 10, eval_accuracy: 0.5, eval_sse: 2, train_loss: 1 } },
      { agentId: 'b', name: 'b', outcome: 'completed', numExamples: 300, metrics: { eval_examples: 30, eval_accuracy: 0.9, eval_sse: 3, train_loss: 2 } },
    ]);
    expect(m.eval_examples).toBe(40);
    expect(m.eval_accuracy).toBeCloseTo((10 * 0.5 + 30 * 0.9) / 40, 12);
    expect(m.eval_sse).toBe(5);
    expect(m.train_loss).toBeCloseTo((100 * 1 + 300 * 2) / 400, 12);
  });
});
