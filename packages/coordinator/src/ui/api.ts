/**
 * The dashboard's JSON API: what `fedge run show|list`, `fedge agent list` and `fedge model list` print with
 * --format json, built by the CLI's own functions from the same coordinator calls the admin gRPC service makes, and
 * the promote/canary/rollback actions through the admin service's code path (same defaults, same evaluation gate).
 */
import { z } from 'zod';
import { ValidationError } from '@fedge/proto';
import type { Coordinator, RunView } from '../coordinator.js';
import { AuthError } from '../engine/join-credentials.js';
import { adminTokenMatches, promoteModelRequest } from '../transport/grpc/admin-service.js';
import { runSummary } from '../cli/commands/run.js';
import { registryEntries } from '../cli/commands/model-registry.js';
import type { AgentRecord } from '../store/store.js';
import { parseAgentQuery, queryAgents, summarizeAgents, type AgentPage, type AgentQuery, type AgentSummary } from '../engine/agent-query.js';

/**
 * The CLI gets every record as JSON over gRPC: the same round trip here drops undefined fields and turns non-finite
 * numbers into null exactly as the CLI sees them, so the two outputs compare equal.
 */
function wire<T>(v: T): T {
  return JSON.parse(JSON.stringify(v)) as T;
}

/** `fedge run show RUN --format json`. */
export async function runJson(coord: Coordinator, id: string): Promise<Record<string, unknown>> {
  return runSummary(wire(await coord.showRun(id)));
}

/** `fedge run participants RUN [--round N] [--status S] [--limit L] [--offset O] --format json`, from URL parameters. */
export async function participantsJson(coord: Coordinator, id: string, params: URLSearchParams): Promise<unknown> {
  const query: Record<string, unknown> = {};
  for (const [k, v] of params) query[k] = k === 'status' ? v : /^-?\d+$/.test(v) ? Number(v) : v;
  return wire(await coord.listParticipants(id, query));
}

/** `fedge run list --format json`. */
export async function runsJson(coord: Coordinator): Promise<Record<string, unknown>[]> {
  return wire(await coord.listRuns()).map(runSummary);
}

/**
 * `fedge agent list --all --format json` (the agents; enrolled identities are not shown by the dashboard). With a
 * query string (?limit=20&after=ID&state=online&name=&site=&serving=&backend=&transport=, as the CLI's flags, checked
 * by the same schema) one page of them, as `fedge agent list --limit 20 ... --format json`.
 */
export function agentsJson(coord: Coordinator, params?: URLSearchParams): AgentRecord[] {
  return wire(queryAgents(coord.registry, parseAgentQuery(Object.fromEntries(params ?? []))).agents);
}

/** Agents a dashboard's event stream carries when its URL names no limit: the agents page's table. */
export const STREAM_AGENT_PAGE = 50;
/** At most this many a page on the stream: a fleet is paged (limit, after), never sent whole every few seconds. */
export const STREAM_AGENT_PAGE_MAX = 500;

/**
 * The agents query of GET /api/events?limit=10&after=ID&state=online&name=sim (fedge agent list's filters, checked by
 * its schema): always one page, STREAM_AGENT_PAGE agents unless the URL says how many.
 */
export function agentStreamQuery(params: URLSearchParams): AgentQuery {
  const q = parseAgentQuery({ limit: STREAM_AGENT_PAGE, ...Object.fromEntries(params) });
  if (q.limit === 0 || q.limit > STREAM_AGENT_PAGE_MAX)
    throw new ValidationError(`limit: the event stream carries one page of 1 to ${STREAM_AGENT_PAGE_MAX} agents (got ${q.limit}); page with limit and after, or GET /api/agents for every agent`);
  return q;
}

/** The `agents` event: the fleet's counts (`fedge agent list --summary`) and one page of the stream's query. */
export interface AgentsEvent {
  summary: AgentSummary;
  page: AgentPage;
}

/** The fleet's summary, computed once per poll and shared by every stream's page. */
export function agentSummary(coord: Coordinator): AgentSummary {
  return summarizeAgents(coord.registry.records());
}

export function agentsEvent(coord: Coordinator, q: AgentQuery, summary: AgentSummary): AgentsEvent {
  return { summary, page: wire(queryAgents(coord.registry, q)) };
}

/** `fedge model list [--run RUN] --format json`. */
export async function modelsJson(coord: Coordinator, runId?: string): Promise<ReturnType<typeof registryEntries>> {
  const runs = runId ? [await coord.getRun(runId)] : await coord.listRuns();
  return registryEntries(wire(runs));
}

/**
 * Write actions need the admin token in an Authorization header. A coordinator without one (FEDGE_ADMIN_TOKEN
 * unset) refuses them here, unlike the gRPC API: a browser can be made to send requests to a loopback port by any
 * page it visits, and the header a page cannot set cross-origin is what keeps those out.
 */
export function authorizeWrite(authorization: string | undefined, adminToken: string | undefined): void {
  if (adminToken === undefined)
    throw new AuthError('write actions are off: start fedge serve with FEDGE_ADMIN_TOKEN set, then enter that token in the dashboard');
  if (!authorization || !adminTokenMatches(authorization, adminToken))
    throw new AuthError('admin token missing or wrong: enter the coordinator\'s FEDGE_ADMIN_TOKEN in the dashboard');
}

const fraction = z.number().min(0).max(1);

/** POST /api/runs/RUN/promote: `fedge model promote VERSION --run RUN [--canary F] [--margin M] [--force]`. */
export const promoteBodySchema = z.strictObject({
  version: z.number().int().min(0),
  canary: fraction.refine((v) => v > 0 && v < 1, 'must be between 0 and 1 (exclusive)').optional(),
  margin: fraction.optional(),
  force: z.boolean().optional(),
});

export type PromoteBody = z.infer<typeof promoteBodySchema>;

export function parsePromoteBody(body: unknown): PromoteBody {
  const r = promoteBodySchema.safeParse(body);
  if (!r.success) {
    const i = r.error.issues[0];
    throw new ValidationError(`${i?.path.join('.') || 'body'}: ${i?.message ?? 'invalid'} (expected {"version": N, "canary"?: F, "margin"?: M, "force"?: true})`);
  }
  return r.data;
}

/** What `fedge model promote|rollback --format json` prints: the run's promotion state after the action. */
function promotionOf(run: RunView): unknown {
  return wire(run).promotion ?? null;
}

export async function promote(coord: Coordinator, runId: string, body: PromoteBody): Promise<unknown> {
  return promotionOf(await promoteModelRequest(coord, { runId, modelVersion: body.version, canary: body.canary ?? 0, margin: body.margin ?? 0, force: body.force ?? false }));
}

export async function rollback(coord: Coordinator, runId: string): Promise<unknown> {
  return promotionOf(await coord.rollbackModel(runId));
}
