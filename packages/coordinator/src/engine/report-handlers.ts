/** The one place report sections meet their handlers (reports.ts dispatches; each section's logic lives in its module). */
import type { ReportDispatcher } from './reports.js';
import type { AgentRegistry } from './agent-registry.js';

export interface ReportServices {
  registry: AgentRegistry;
}

export function registerReportHandlers(d: ReportDispatcher, s: ReportServices): void {
  d.on('served', (served, agent) => s.registry.noteServing(agent.id, served.runId, served.version));
}
