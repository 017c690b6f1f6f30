/** --watch lines: task metrics per round for runs with a task, the statistics step, and MNIST runs exactly as before. */
import { describe, expect, it } from 'vitest';
import { parseRunConfig } from '../config/run-config.js';
import type { RunView } from '../coordinator.js';
import type { RoundRecord, RunData } from '../store/store.js';
import { ProgressPrinter, roundLine, statusLine, taskMetricNames } from './progress.js';

function round(n: number, extra: Partial<RoundRecord> = {}): RoundRecord {
  return {
    round: n, baseVersion: n - 1, version: n, status: 'completed', startedAt: '', endedAt: '', seconds: 1.25,
    participants: [
      { agentId: 'a', name: 'a', outcome: 'completed' },
      { agentId: 'b', name: 'b', outcome: 'completed' },
      { agentId: 'c', name: 'c', outcome: 'dropped', reason: 'deadline' },
    ],
    trainLoss: 0.5, bytesSent: 0, bytesReceived: 0, ...extra,
  };
}

const data = {
  task: { type: 'regression', loss: 'mse', huberDelta: 1, optimizer: { name: 'sgd', learningRate: 0.05 }, metrics: ['rmse', 'r2'], outputs: 1 },
} as unknown as RunData; // the printer reads only the task

/** A stream that records writes, as a terminal (isTTY) or a pipe. */
function sink(isTTY: boolean): NodeJS.WriteStream & { text: string } {
  const s = { text: '', isTTY, columns: 200, write(chunk: string) { s.text += chunk; return true; } };
  return s as unknown as NodeJS.WriteStream & { text: string };
}

const base = (extra: Partial<RunView>): RunView => ({
  id: 'run-t', status: 'running', createdAt: '', round: 0, modelVersion: 0, rounds: [], versions: [],
  config: parseRunConfig({ model: { builtin: 'mlp' }, rounds: 10, task: { type: 'regression', target: 'y' } }), ...extra,
});

describe('roundLine', () => {
  it('prints an MNIST round exactly as before', () => {
    expect(roundLine(round(1, { centralAccuracy: 0.7 }), 10)).toBe('round  1/10  v1  agents 2/3 (1 dropped)  loss 0.5000  accuracy 70.00%  1.3s');
    expect(roundLine(round(2, { status: 'failed', reason: 'too few results' }), 10, 'step')).toBe('step  2/10  FAILED  agents 2/3 (1 dropped)  loss 0.5000  1.3s  (too few results)');
  });

  it('prints the task metrics instead of accuracy: central, else federated', () => {
    const r = round(3, { centralAccuracy: Number.NaN, centralMetrics: { loss: 9.9, rmse: 3.2149, r2: 0.81234 }, federatedMetrics: { rmse: 4, r2: 0.7 } });
    expect(roundLine(r, 10, 'round', ['rmse', 'r2'])).toBe('round  3/10  v3  agents 2/3 (1 dropped)  loss 0.5000  rmse 3.215  r2 0.8123  1.3s');
    expect(roundLine(round(4, { federatedMetrics: { rmse: 4, r2: 0.7 } }), 10, 'round', ['rmse', 'r2'])).toContain('loss 0.5000  fed rmse 4  r2 0.7  1.3s');
    expect(roundLine(round(5, { centralMetrics: { accuracy: 0.9569, f1: 0.95 } }), 10, 'round', ['accuracy', 'f1'])).toContain('accuracy 95.69%  f1 0.95');
    expect(roundLine(round(6, { trainMetrics: { rmse: 5.5, r2: 0.5 } }), 10, 'round', ['rmse', 'r2'])).toContain('loss 0.5000  train rmse 5.5  r2 0.5  1.3s');
    expect(roundLine(round(7), 10, 'round', ['rmse', 'r2'])).toBe('round  7/10  v7  agents 2/3 (1 dropped)  loss 0.5000  1.3s');
  });

  it('takes the metric names from the resolved task, else the config\'s task; none for MNIST runs', () => {
    expect(taskMetricNames(base({ data }))).toEqual(['rmse', 'r2']);
    expect(taskMetricNames(base({}))).toEqual(['rmse', 'mae', 'r2']);
    expect(taskMetricNames({ config: parseRunConfig({}) })).toBeUndefined();
  });
});

describe('ProgressPrinter', () => {
  const waiting = base({ status: 'waiting', statusMessage: 'statistics step: waiting for 3 agents to report their data (1 now)' });
  const prepared = base({ data, statusMessage: 'statistics step: 3 agents, 900 examples, input width 12', startedAt: new Date().toISOString() });

  it('on a pipe: the statistics step once, then rounds with the task metrics, then the final metrics', () => {
    const out = sink(false);
    const p = new ProgressPrinter(out);
    p.update(waiting);
    p.update(waiting); // the same message is not repeated
    p.update(prepared);
    p.update({ ...prepared, rounds: [round(1, { centralMetrics: { rmse: 3.21, r2: 0.812 } })] });
    p.finish({ ...prepared, status: 'completed', statusMessage: 'completed 1 of 10 rounds', endedAt: new Date().toISOString(), rounds: [round(1, { centralMetrics: { rmse: 3.21, r2: 0.812 } })] });
    const lines = out.text.trimEnd().split('\n');
    expect(lines[0]).toBe('statistics step: waiting for 3 agents to report their data (1 now)');
    expect(lines[1]).toBe('statistics step: 3 agents, 900 examples, input width 12');
    expect(lines[2]).toBe('round  1/10  v1  agents 2/3 (1 dropped)  loss 0.5000  rmse 3.21  r2 0.812  1.3s');
    expect(lines[3]).toMatch(/^run run-t completed \(completed 1 of 10 rounds\), rmse 3\.21, r2 0\.812, \d/);
    expect(lines).toHaveLength(4);
    expect(out.text).not.toContain('accuracy');
  });

  it('on a terminal: waiting is a status line, the summary a line of its own', () => {
    const out = sink(true);
    const p = new ProgressPrinter(out);
    p.update(waiting);
    expect(out.text).toBe('\r\x1b[2Kstatistics step: waiting for 3 agents to report their data (1 now)');
    p.update(prepared);
    expect(out.text.endsWith('\r\x1b[2Kstatistics step: 3 agents, 900 examples, input width 12\n')).toBe(true);
    expect(statusLine(waiting)).toMatch(/^statistics step: waiting for 3 agents .*elapsed/);
  });

  it('finishes an MNIST run with its accuracy as before', () => {
    const out = sink(false);
    const run: RunView = { ...base({}), config: parseRunConfig({ rounds: 1 }), status: 'completed', endedAt: '2026-01-01T00:00:02.000Z', startedAt: '2026-01-01T00:00:00.000Z', rounds: [round(1, { centralAccuracy: 0.9569 })] };
    new ProgressPrinter(out).finish(run);
    expect(out.text).toBe('round 1/1  v1  agents 2/3 (1 dropped)  loss 0.5000  accuracy 95.69%  1.3s\nrun run-t completed, accuracy 95.69%, 2.0s\n');
  });

  it('does not repeat a failed statistics step (the final line says it)', () => {
    const out = sink(false);
    new ProgressPrinter(out).finish(base({ status: 'failed', statusMessage: 'statistics step: fewer than 3 agents reported their data within 60s', endedAt: new Date().toISOString() }));
    expect(out.text.split('\n').filter(Boolean)).toHaveLength(1);
    expect(out.text).toMatch(/, 0\.0s\n$/); // never started rounds: no negative elapsed time
  });
});
