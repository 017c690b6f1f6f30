/** Turns on live drift tracking for a serving agent (--drift-window N): infer observer, report section, fleet reference, gauges. */
import { driftSpec, profileTable, type DriftSpec, type TaskPayload } from '@fedge/proto';
import { addInferObserver } from '../serving/infer-core.js';
import type { GlobalModelServer } from '../serving/global-server.js';
import type { Agent } from '../agent.js';
import type { AgentMetrics } from '../metrics.js';
import type { LocalData } from '../data.js';
import { DriftTracker } from './tracker.js';

export function trackDrift(o: { agent: Agent; server: GlobalModelServer; data?: LocalData; metrics?: AgentMetrics; window: number }): { tracker: DriftTracker; stop: () => void } {
  const payloadOf = (runId: string): TaskPayload | undefined => {
    const m = o.server.metaOf(runId);
    return m?.task && m.preprocessing ? { task: m.task, preprocessing: m.preprocessing } : undefined;
  };
  const tracker = new DriftTracker({
    window: o.window,
    payloadOf,
    // The agent's own reference: its training split on the served run's bins (whether or not it trained in that run).
    ownProfile: (_runId: string, spec: DriftSpec, payload: TaskPayload | undefined) => {
      if (!o.data) return undefined;
      const target = payload?.preprocessing.targets[0];
      return profileTable(o.data.train, spec ?? driftSpec(payload), target ? { column: target.name, ...(target.kind === 'categorical' ? { values: target.values } : {}) } : undefined);
    },
  });
  const stop = addInferObserver((m, _name, inputs, outputs, batch) => tracker.observe(m, inputs, outputs, batch));
  o.agent.reporter.section('drift', () => tracker.section());
  o.agent.reporter.onReply((r) => r.fleetReference && tracker.setFleetReference(r.fleetReference));
  o.agent.fleetReferenceKey = (runId) => tracker.fleetReferenceKey(runId);
  if (o.metrics) o.metrics.drift = tracker;
  return { tracker, stop };
}
