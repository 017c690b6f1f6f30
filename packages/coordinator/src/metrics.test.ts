/** Prometheus metrics derived from run records (the HTTP endpoint is exercised in test/e2e/durability.test.ts). */
import { describe, expect, it } from 'vitest';
import { parseRunConfig } from './config/run-config.js';
import { createCoordinatorMetrics, reasonCode } from './metrics.js';
import type { RunView } from './coordinator.js';
import type { RoundRecord } from './store/store.js';

const rec = (round: number, extra: Partial<RoundRecord> = {}): RoundRecord => ({
  round, baseVersion: round - 1, version: round, status: 'completed', startedAt: '', endedAt: '', seconds: 1,
  participants: [
    { agentId: 'a', name: 'a', outcome: 'completed', seconds: 2 },
    { agentId: 'b', name: 'b', outcome: 'rejected', reason: 'non_finite: update has NaN at 3' },
    { agentId: 'c', name: 'c', outcome: 'dropped', reason: 'disconnected' },
  ],
  bytesSent: 100, bytesReceived: 40, aggregationMs: 20, centralAccuracy: 0.5 + round / 10, ...extra,
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
    const run: RunView = {
      id: 'run-x', config: parseRunConfig({ model: 'mnist-mlp', rounds: 3 }), status: 'running', createdAt: '', round: 2, modelVersion: 2,
      rounds: [rec(1), rec(2, { epsilon: 1.25 })],
      versions: [0, 1, 2].map((version) => ({ version, sha256: 'f'.repeat(64), round: version, createdAt: '' })),
    };
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
    expect(text).toContain('fedge_aggregation_seconds_count{run_id="run-x"} 2');
    expect(text).toContain('fedge_aggregation_seconds_sum{run_id="run-x"} 0.04');
    expect(text).toContain('fedge_update_seconds_bucket{le="2.5",run_id="run-x"} 2');
    expect(text).toContain('fedge_central_accuracy{run_id="run-x"} 0.7');
    expect(text).toContain('fedge_epsilon{run_id="run-x"} 1.25');
    // A second scrape reports the same totals, not doubled ones.
    m.update([run], []);
    expect(await m.registry.metrics()).toContain('fedge_rounds_total{run_id="run-x",status="completed"} 2');
  });
});
