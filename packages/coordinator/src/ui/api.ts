/**
 * The dashboard's JSON API: what `fedge run show|list`, `fedge agent list` and `fedge model list` print with
 * --format json, built by the CLI's own functions from the same coordinator calls the admin gRPC service makes, and
 * the promote/canary/rollback actions through the admin service's code path (same defaults, same evaluation gate).
 */
import { z } from 'zod';
import { ValidationError } from '@fedge/proto';
import type { Coordinator, RunView } from '../coordinator.js';
import { AuthError } from '../engine/agent-registry.js';
import { adminTokenMatches, promoteModelRequest } from '../transport/grpc/admin-service.js';
import { runSummary } from '../cli/commands/run.js';
import { registryEntries } from '../cli/commands/model-registry.js';
import type { AgentRecord } from '../store/store.js';
import { parseAgentQuery, queryAgents } from '../engine/agent-query.js';

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
