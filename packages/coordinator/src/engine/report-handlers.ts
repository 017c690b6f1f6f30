/** The one place report sections meet their handlers (reports.ts dispatches; each section's logic lives in its module). */
import type { ReportDispatcher } from './reports.js';
import type { AgentRegistry } from './agent-registry.js';
import { healthReport, type CanaryController } from './canary-controller.js';

export interface ReportServices {
  registry: AgentRegistry;
  /** Self-healing canaries: the `health` section is their evidence. */
  canaries?: CanaryController;
}

export function registerReportHandlers(d: ReportDispatcher, s: ReportServices): void {
  d.on('served', (served, agent) => s.registry.noteServing(agent.id, served.runId, served.version));
  d.on('health', (health, agent) => {
    const h = healthReport(health);
    if (h) s.canaries?.onHealth(agent, h);
  });
}
