/** Prometheus metrics derived from run records (the HTTP endpoint is exercised in test/e2e/durability.test.ts). */
import { describe, expect, it } from 'vitest';
import { parseRunConfig } from './config/run-config.js';
import { createCoordinatorMetrics, latestTaskMetrics, reasonCode } from './metrics.js';
import type { RunView } from './coordinator.js';
import type { RoundRecord, RunData } from './store/store.js';

const rec = (round: number, extra: Partial<RoundRecord> = {}): RoundRecord => ({
  round, baseVersion: round - 1, version: round, status: 'completed', startedAt: '', endedAt: '', seconds: 1,
  participants: [
    { agentId: 'a', name: 'a', outcome: 'completed', seconds: 2 },
    { agentId: 'b', name: 'b', outcome: 'rejected', reason: 'non_finite: update has NaN at 3' },
    { agentId: 'c', name: 'c', outcome: 'dropped', reason: 'disconnected' },
  ],
  bytesSent: 100, bytesReceived: 40, aggregationMs: 20, centralAccuracy: 0.5 + round / 10, ...extra,
});

/** A running MNIST run (no task) "run-x" of 3 rounds with the given progress. */
const mnistRun = (progress: Pick<RunView, 'round' | 'modelVersion' | 'rounds' | 'versions'>): RunView => ({
  id: 'run-x', config: parseRunConfig({ model: 'mnist-mlp', rounds: 3 }), status: 'running', createdAt: '', ...progress,
});

describe('coordinator metrics', () => {
  it('reduces rejection reasons to their code', () => {
    expect(reasonCode('non_finite: update has NaN')).toBe('non_finite');
    expect(reasonCode('wrong_model_version')).toBe('wrong_model_version');
    expect(reasonCode('Something else entirely')).toBe('other');
    expect(reasonCode(undefined)).toBe('other');
  });

  it('exposes rounds, participants, rejections, bytes, timings, accuracy and epsilon in the text format', async () => {
    const m = createCoordinatorMetrics({ defaultMetrics: false });
    const run = mnistRun({
      round: 2, modelVersion: 2,
      rounds: [rec(1), rec(2, { epsilon: 1.25, bytesSentDense: 400, bytesReceivedDense: 4000 })],
      versions: [0, 1, 2].map((version) => ({ version, sha256: 'f'.repeat(64), round: version, createdAt: '' })),
    });
    m.update([run], [{ id: 'a', name: 'a', status: 'online', backend: 'wasm', agentVersion: '', numExamples: 1, labels: {}, joinedAt: '', lastSeen: '', tasksCompleted: 0, tasksFailed: 0 }]);
    const text = await m.registry.metrics();
    expect(text).toContain('fedge_runs{status="running"} 1');
    expect(text).toContain('fedge_runs{status="completed"} 0');
    expect(text).toContain('fedge_agents{status="online"} 1');
    expect(text).toContain('fedge_rounds_total{run_id="run-x",status="completed"} 2');
    expect(text).toContain('fedge_model_versions_total{run_id="run-x"} 3');
    expect(text).toContain('fedge_round_participants_total{run_id="run-x",outcome="rejected"} 2');
    expect(text).toContain('fedge_rejected_updates_total{run_id="run-x",reason="non_finite"} 2');
    expect(text).toContain('fedge_bytes_sent_total{run_id="run-x"} 200');
    expect(text).toContain('fedge_bytes_received_total{run_id="run-x"} 80');
    // The dense float32 equivalents: round 2 was compressed, round 1 (no dense figure) counts as sent.
    expect(text).toContain('fedge_bytes_sent_float32_total{run_id="run-x"} 500');
    expect(text).toContain('fedge_bytes_received_float32_total{run_id="run-x"} 4040');
    expect(text).toContain('fedge_aggregation_seconds_count{run_id="run-x"} 2');
    expect(text).toContain('fedge_aggregation_seconds_sum{run_id="run-x"} 0.04');
    expect(text).toContain('fedge_update_seconds_bucket{le="2.5",run_id="run-x"} 2');
    expect(text).toContain('fedge_central_accuracy{run_id="run-x"} 0.7');
    expect(text).toContain('fedge_epsilon{run_id="run-x"} 1.25');
    expect(expositionProblems(text)).toEqual([]);
    // No privacy budget and no promotion: no series to compare against.
    expect(text).not.toMatch(/fedge_epsilon_max\{|fedge_promoted_\w+\{/);
    // A second scrape reports the same totals, not doubled ones.
    m.update([run], []);
    expect(await m.registry.metrics()).toContain('fedge_rounds_total{run_id="run-x",status="completed"} 2');
  });
});

describe('coordinator metrics the alert rules compare against', () => {
  it('exposes privacy.maxEpsilon and the promoted version with its central accuracy', async () => {
    const m = createCoordinatorMetrics({ defaultMetrics: false });
    const run: RunView = {
      ...mnistRun({
        round: 2, modelVersion: 2, rounds: [rec(1), rec(2)],
        versions: [0, 1, 2].map((version) => ({ version, sha256: 'f'.repeat(64), round: version, createdAt: '', ...(version === 1 ? { centralAccuracy: 0.61 } : {}) })),
      }),
      config: parseRunConfig({ model: 'mnist-mlp', rounds: 3, privacy: { clipNorm: 1, noiseMultiplier: 1, maxEpsilon: 8 } }),
      promotion: { version: 1, history: [] },
    };
    m.update([run], []);
    const text = await m.registry.metrics();
    expect(text).toContain('fedge_epsilon_max{run_id="run-x"} 8');
    expect(text).toContain('fedge_promoted_model_version{run_id="run-x"} 1');
    expect(text).toContain('fedge_promoted_central_accuracy{run_id="run-x"} 0.61');
    // The latest evaluated version (2), which FedgeNewVersionWorseThanPromoted compares with the promoted one.
    expect(text).toContain('fedge_central_accuracy{run_id="run-x"} 0.7');
    expect(expositionProblems(text)).toEqual([]);
  });
});

/**
 * Checks the Prometheus text format (0.0.4) line by line: HELP/TYPE comments, then samples `name{l="v",...} value`
 * of a declared family, with escaped label values and a float value. Returns the problems found.
 */
function expositionProblems(text: string): string[] {
  const problems: string[] = [];
  const types = new Map<string, string>();
  const label = /^[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\["\\n])*"$/;
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const c = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/.exec(line);
    if (c) {
      if (c[1] === 'TYPE') {
        if (types.has(c[2]!)) problems.push(`second TYPE for ${c[2]}`);
        if (!['counter', 'gauge', 'histogram', 'summary', 'untyped'].includes(c[3]!)) problems.push(`bad type: ${line}`);
        types.set(c[2]!, c[3]!);
      }
      continue;
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) { problems.push(`not a sample: ${line}`); continue; }
    const family = m[1]!.replace(/_(bucket|sum|count)$/, '');
    if (!types.has(m[1]!) && !types.has(family)) problems.push(`sample before its TYPE: ${line}`);
    const labels = m[2] ? m[2].match(/[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*"/g) ?? [] : [];
    if (m[2] && labels.join(',') !== m[2]) problems.push(`bad labels: ${line}`);
    for (const l of labels) if (!label.test(l)) problems.push(`bad label: ${l}`);
    if (!/^(?:[-+]?(?:\d+\.?\d*(?:e[-+]?\d+)?|\.\d+)|NaN|[-+]Inf)$/i.test(m[3]!)) problems.push(`bad value: ${line}`);
  }
  return problems;
}

describe('task metrics', () => {
  const data = { task: { type: 'regression', metrics: ['rmse', 'r2'] } } as unknown as RunData;
  const run: RunView = {
    id: 'run-t', config: parseRunConfig({ model: { builtin: 'mlp' }, rounds: 3, task: { type: 'regression', target: 'y' } }), status: 'running', createdAt: '', round: 2, modelVersion: 2, data,
    rounds: [
      rec(1, { centralAccuracy: undefined as never, centralMetrics: { loss: 4, rmse: 4.5, r2: 0.5 }, federatedMetrics: { loss: 5, rmse: 5.1, r2: 0.4 } }),
      // The latest version's federated evaluation has not arrived yet: federated stays at version 1.
      rec(2, { centralAccuracy: undefined as never, centralMetrics: { loss: 3, rmse: 3.21, r2: 0.812 } }),
    ],
    versions: [
      { version: 0, sha256: 'f'.repeat(64), round: 0, createdAt: '', centralMetrics: { loss: 9, rmse: 9, r2: -1 } },
      { version: 1, sha256: 'f'.repeat(64), round: 1, createdAt: '', centralMetrics: { loss: 4, rmse: 4.5, r2: 0.5 }, federatedMetrics: { loss: 5, rmse: 5.1, r2: 0.4 } },
      { version: 2, sha256: 'f'.repeat(64), round: 2, createdAt: '', centralMetrics: { loss: 3, rmse: 3.21, r2: 0.812, 'bad label"': 1 } },
    ],
  };
  for (const r of run.rounds) delete r.centralAccuracy;

  it('picks the latest version evaluated from each source', () => {
    expect(latestTaskMetrics(run, 'central')).toMatchObject({ rmse: 3.21, r2: 0.812 });
    expect(latestTaskMetrics(run, 'federated')).toEqual({ loss: 5, rmse: 5.1, r2: 0.4 });
    expect(latestTaskMetrics({ versions: [], rounds: [] }, 'central')).toBeUndefined();
  });

  it('exposes fedge_run_metric{run_id,metric,source} next to the accuracy gauges, in valid exposition format', async () => {
    const m = createCoordinatorMetrics({ defaultMetrics: false });
    const legacy = mnistRun({ round: 1, modelVersion: 1, rounds: [rec(1, { federatedAccuracy: 0.55 })], versions: [] });
    m.update([run, legacy], []);
    const text = await m.registry.metrics();
    expect(text).toContain('# TYPE fedge_run_metric gauge');
    expect(text).toContain('fedge_run_metric{run_id="run-t",metric="rmse",source="central"} 3.21');
    expect(text).toContain('fedge_run_metric{run_id="run-t",metric="r2",source="central"} 0.812');
    expect(text).toContain('fedge_run_metric{run_id="run-t",metric="loss",source="central"} 3');
    expect(text).toContain('fedge_run_metric{run_id="run-t",metric="rmse",source="federated"} 5.1');
    expect(text).not.toContain('bad label');
    // The accuracy gauges stay for runs that have accuracy; a regression run has none.
    expect(text).toContain('fedge_central_accuracy{run_id="run-x"} 0.6');
    expect(text).toContain('fedge_federated_accuracy{run_id="run-x"} 0.55');
    expect(text).not.toContain('fedge_central_accuracy{run_id="run-t"}');
    expect(text).not.toMatch(/fedge_run_metric\{run_id="run-x"/);
    expect(expositionProblems(text)).toEqual([]);
  });

  it('the format check catches what promtool would', () => {
    expect(expositionProblems('# TYPE a gauge\na{x="1} 2\n')).not.toEqual([]);
    expect(expositionProblems('b 1\n')).toEqual(['sample before its TYPE: b 1']);
    expect(expositionProblems('# TYPE a gauge\na{x="1"} two\n')).toEqual(['bad value: a{x="1"} two']);
  });
});

describe('prom-client default metrics', () => {
  it('exposes no gauge named like a counter (promtool check metrics; issue 18), the per-type gauges stay', async () => {
    const m = createCoordinatorMetrics();
    m.update([], []);
    const text = await m.registry.metrics();
    const gaugesWithTotal = [...text.matchAll(/^# TYPE (\S+_total) gauge$/gm)].map((x) => x[1]);
    expect(gaugesWithTotal).toEqual([]);
    expect(text).toMatch(/^# TYPE fedge_coordinator_nodejs_active_handles gauge$/m);
    expect(text).toMatch(/^# TYPE fedge_coordinator_process_cpu_seconds_total counter$/m);
  });
});
