/** The one place report sections meet their handlers (reports.ts dispatches; each section's logic lives in its module). */
import type { ReportDispatcher } from './reports.js';
import type { AgentRegistry } from './agent-registry.js';
import { healthReport, type CanaryController } from './canary-controller.js';
import type { DriftBook } from './drift-book.js';

export interface ReportServices {
  registry: AgentRegistry;
  /** Self-healing canaries: the `health` section is their evidence. */
  canaries?: CanaryController;
  /** Data drift: training profiles, the fleet reference a serving agent gets back, its live drift. */
  drift?: DriftBook;
}

export function registerReportHandlers(d: ReportDispatcher, s: ReportServices): void {
  d.on('served', (served, agent) => {
    s.registry.noteServing(agent.id, served.runId, served.version);
    return s.drift?.replyFor(served.runId, served.fleetReferenceKey);
  });
  d.on('profile', (p, agent) => s.drift?.noteProfile(agent, p));
  d.on('site', (site, agent) => s.registry.noteSite(agent.id, site));
  d.on('drift', (drift, agent) => s.registry.noteDrift(agent.id, drift));
  d.on('health', (health, agent) => {
    const h = healthReport(health);
    if (h) s.canaries?.onHealth(agent, h);
  });
}
