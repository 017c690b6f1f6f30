/**
 * Agent status reports: the coordinator hands each section of a report to the handler registered for it (one place:
 * registerReportHandlers in report-handlers.ts), and merges what the handlers want the agent to know into the reply.
 */
import { parseReportBody, type AgentReportMsg, type ReportBody, type ReportReplyBody, type ReportSectionName } from '@fedge/proto';
import type { AgentRecord } from '../store/store.js';
import type { AgentRegistry } from './agent-registry.js';
import { moduleLogger } from '../log.js';

const log = moduleLogger('reports');

/** Handles one section of one agent's report; may add to the reply (e.g. the fleet reference of the run it serves). */
export type ReportSectionHandler<K extends ReportSectionName> = (section: NonNullable<ReportBody[K]>, agent: AgentRecord, body: ReportBody) => ReportReplyBody | void | Promise<ReportReplyBody | void>;

export class ReportDispatcher {
  private readonly handlers = new Map<ReportSectionName, ReportSectionHandler<ReportSectionName>>();

  constructor(private readonly registry: AgentRegistry) {}

  /** Registers the handler of a section; one per section, so a second registration is a programming error. */
  on<K extends ReportSectionName>(section: K, handler: ReportSectionHandler<K>): this {
    if (this.handlers.has(section)) throw new Error(`report section "${section}" already has a handler`);
    this.handlers.set(section, handler as unknown as ReportSectionHandler<ReportSectionName>);
    return this;
  }

  /**
   * Verifies the session (AuthError: E_AUTH), validates the body (ValidationError naming the field), then runs the
   * handler of every section present. A section nobody handles is accepted and ignored (an agent newer than this
   * coordinator); a handler's failure is logged and does not refuse the others.
   */
  async dispatch(req: AgentReportMsg): Promise<ReportReplyBody> {
    const agent = this.registry.verify(req.agentId, req.sessionToken);
    const body = parseReportBody(req.bodyJson);
    const reply: ReportReplyBody = {};
    for (const name of Object.keys(body) as ReportSectionName[]) {
      const section = body[name];
      const handler = this.handlers.get(name);
      if (section === undefined || !handler) continue;
      try {
        Object.assign(reply, (await handler(section, agent, body)) ?? {});
      } catch (err) {
        log.warn({ agentId: agent.id, name: agent.name, section: name, err: (err as Error).message }, 'report section not applied');
      }
    }
    return reply;
  }
}
