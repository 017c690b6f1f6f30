/** fedge_fleet_drift_agents{band}: online serving agents by the band of the worst PSI they last reported. */
import { describe, expect, it } from 'vitest';
import { createCoordinatorMetrics } from './metrics.js';
import type { AgentRecord } from './store/store.js';

const agent = (name: string, status: 'online' | 'offline', psis?: number[]): AgentRecord => ({
  id: name, name, status, backend: 'wasm', agentVersion: '', numExamples: 1, labels: {}, joinedAt: '', lastSeen: '', tasksCompleted: 0, tasksFailed: 0,
  ...(psis ? { drift: { runId: 'run-1', version: 1, window: 100, at: '', features: psis.map((psi, i) => ({ feature: `f${i}`, reference: 'fleet' as const, psi, ks: 0, pValue: 1 })), prediction: [] } } : {}),
});

describe('fedge_fleet_drift_agents', () => {
  it('counts online agents that report drift by their worst PSI band; offline and silent ones are not counted', async () => {
    const m = createCoordinatorMetrics({ defaultMetrics: false });
    m.update([], [agent('a', 'online', [0.01, 0.05]), agent('b', 'online', [0.02, 0.3]), agent('c', 'online', [0.1]), agent('d', 'offline', [5]), agent('e', 'online')]);
    const text = await m.registry.metrics();
    expect(text).toContain('fedge_fleet_drift_agents{band="stable"} 1');
    expect(text).toContain('fedge_fleet_drift_agents{band="moderate"} 1');
    expect(text).toContain('fedge_fleet_drift_agents{band="significant"} 1');
  });
});
