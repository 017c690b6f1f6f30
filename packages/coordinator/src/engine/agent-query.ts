/** `fedge agent list` at fleet scale: the query (filters, page size, cursor), one page of agents, and the summary. */
import { z } from 'zod';
import { ValidationError } from '@fedge/proto';
import type { AgentRecord } from '../store/store.js';

/** What `fedge agent list` asks for when given no --limit; --limit 0 (or --all) lists every agent. */
export const DEFAULT_AGENT_PAGE = 500;

export const AGENT_STATES = ['online', 'offline', 'busy', 'idle'] as const;
export type AgentState = (typeof AGENT_STATES)[number];
/** The transports an agent connects over (the --transport filter's choices). */
export const AGENT_TRANSPORTS = ['grpc', 'mqtt'] as const;

const text = z.string().min(1).max(256);

/**
 * The filters and page of a listing. The same schema checks the CLI's flags, the admin gRPC request and the
 * dashboard's query string; an error names the field under the caller's spelling (--limit, limit).
 */
export const agentQuerySchema = z.strictObject({
  /** Page size; 0: every matching agent (what an old CLI's empty request means). */
  limit: z.coerce.number().int().min(0).max(1_000_000).default(0),
  /** The id of the last agent of the previous page: the page starts after it in (name, id) order. */
  after: text.optional(),
  state: z.enum(AGENT_STATES, { error: `expected one of ${AGENT_STATES.join(', ')}` }).optional(),
  /** A name prefix (sim-01 matches sim-0100 .. sim-0199). */
  name: text.optional(),
  /** An aggregator site (fedge serve --upstream --name SITE) by its fedge.site label. */
  site: text.optional(),
  /** The global model version agents report serving ("none": serving nothing). */
  serving: z.string().regex(/^(\d+|none)$/, 'expected a version number or "none"').optional(),
  backend: text.optional(),
  transport: z.enum(AGENT_TRANSPORTS, { error: `expected ${AGENT_TRANSPORTS.join(' or ')}` }).optional(),
});

export type AgentQuery = z.infer<typeof agentQuerySchema>;
export type AgentFilter = Omit<AgentQuery, 'limit' | 'after'>;

/**
 * Validates a query; `flagPrefix` '--' names CLI flags in the error. Empty strings are "not given" (proto3 sends
 * them for unset fields, an HTML form for empty inputs).
 */
export function parseAgentQuery(raw: Record<string, unknown>, flagPrefix = ''): AgentQuery {
  const given = Object.fromEntries(Object.entries(raw).filter(([, v]) => v !== undefined && v !== ''));
  const r = agentQuerySchema.safeParse(given);
  if (r.success) return r.data;
  const issue = r.error.issues[0]!;
  if (issue.code === 'unrecognized_keys')
    throw new ValidationError(`${issue.keys.map((k) => flagPrefix + k).join(', ')}: not a filter of the agent list; use ${Object.keys(agentQuerySchema.shape).map((k) => flagPrefix + k).join(', ')}`);
  const key = String(issue.path[0]);
  throw new ValidationError(`${flagPrefix}${key}: ${issue.message} (got ${JSON.stringify(given[key])})`);
}

/** Whether a record passes the filter; busy: online with a task in progress, idle: online without one. */
export function matches(a: Readonly<AgentRecord>, f: AgentFilter): boolean {
  if (f.state) {
    if (f.state === 'offline' ? a.status !== 'offline' : a.status !== 'online') return false;
    if (f.state === 'busy' && a.currentTask === undefined) return false;
    if (f.state === 'idle' && a.currentTask !== undefined) return false;
  }
  if (f.name !== undefined && !a.name.startsWith(f.name)) return false;
  if (f.site !== undefined && a.labels['fedge.site'] !== f.site) return false;
  if (f.serving !== undefined && (f.serving === 'none' ? a.servedVersion !== undefined : a.servedVersion !== Number(f.serving))) return false;
  if (f.backend !== undefined && a.backend !== f.backend) return false;
  if (f.transport !== undefined && a.transport !== f.transport) return false;
  return true;
}

/** (name, id) order, by code unit: names of a simulated fleet are zero-padded, so they list in index order. */
function before(a: { name: string; id: string }, b: { name: string; id: string }): boolean {
  return a.name < b.name || (a.name === b.name && a.id < b.id);
}

export interface AgentPage {
  agents: AgentRecord[];
  /** Agents matching the filter, on every page. */
  total: number;
  /** Matching agents on the pages before this one (the page shows agents skipped+1 .. skipped+agents.length). */
  skipped: number;
  /** The id to pass as `after` for the next page; absent on the last page. */
  next?: string;
  /** Every agent the coordinator knows, matching or not. */
  fleet: number;
}

/**
 * One page of the agents matching `q`, in (name, id) order. Keyset paging: a page starts after the cursor agent's
 * (name, id), so agents that join between two pages never shift or repeat what is listed (those sorting after the
 * cursor show up on a later page). Scans the live records once without copying them; only the page is copied,
 * without the secret hash. `lookup` finds the cursor agent (an unknown id is an error naming `afterName`).
 */
export function pageAgents(
  records: Iterable<Readonly<AgentRecord>>,
  q: AgentQuery,
  lookup: (id: string) => Readonly<AgentRecord> | undefined,
  afterName = 'after',
): AgentPage {
  let cursor: { name: string; id: string } | undefined;
  if (q.after !== undefined) {
    const c = lookup(q.after);
    if (!c) throw new ValidationError(`${afterName}: no agent "${q.after}" on this coordinator (it takes the id of the last agent of the previous page); list from the start without it`);
    cursor = { name: c.name, id: c.id };
  }
  let total = 0;
  let fleet = 0;
  const rest: Readonly<AgentRecord>[] = [];
  for (const a of records) {
    fleet++;
    if (!matches(a, q)) continue;
    total++;
    if (!cursor || before(cursor, a)) rest.push(a);
  }
  rest.sort((x, y) => (before(x, y) ? -1 : before(y, x) ? 1 : 0));
  const page = q.limit > 0 ? rest.slice(0, q.limit) : rest;
  const last = page[page.length - 1];
  return {
    agents: page.map(({ secretSha256: _secret, ...r }) => r),
    total,
    skipped: total - rest.length,
    ...(last && page.length < rest.length ? { next: last.id } : {}),
    fleet,
  };
}

export interface AgentSummary {
  /** Agents matching the filter (every agent without one). */
  total: number;
  fleet: number;
  /** busy and idle split online. */
  state: { online: number; busy: number; idle: number; offline: number };
  /** "RUN vN" an agent reports serving, or "none". */
  serving: Record<string, number>;
  backend: Record<string, number>;
  transport: Record<string, number>;
  agentVersion: Record<string, number>;
  /** Aggregator sites by their fedge.site label: how many agents each reported behind it. */
  sites: Record<string, number>;
  /** token: joined with the shared join token; key: an enrolled device identity. */
  auth: { token: number; key: number };
}

/** Counts by state, served version, backend, transport, agent version, site and auth in one pass, copying nothing. */
export function summarizeAgents(records: Iterable<Readonly<AgentRecord>>, f: AgentFilter = {}): AgentSummary {
  const s: AgentSummary = { total: 0, fleet: 0, state: { online: 0, busy: 0, idle: 0, offline: 0 }, serving: {}, backend: {}, transport: {}, agentVersion: {}, sites: {}, auth: { token: 0, key: 0 } };
  const bump = (m: Record<string, number>, k: string, by = 1): void => {
    m[k] = (m[k] ?? 0) + by;
  };
  for (const a of records) {
    s.fleet++;
    if (!matches(a, f)) continue;
    s.total++;
    if (a.status === 'offline') s.state.offline++;
    else {
      s.state.online++;
      if (a.currentTask !== undefined) s.state.busy++;
      else s.state.idle++;
    }
    bump(s.serving, a.servedVersion !== undefined ? `${a.servedRun ?? '?'} v${a.servedVersion}` : 'none');
    bump(s.backend, a.backend);
    bump(s.transport, a.transport ?? 'none');
    bump(s.agentVersion, a.agentVersion);
    const site = a.labels['fedge.site'];
    if (site !== undefined) bump(s.sites, site, Number(a.labels['fedge.site-agents'] ?? 0));
    if (a.identity !== undefined) s.auth.key++;
    else s.auth.token++;
  }
  return s;
}

/** A page of the registry's agents: what the admin service and the dashboard answer. */
export function queryAgents(
  registry: { records(): Iterable<Readonly<AgentRecord>>; record(id: string): Readonly<AgentRecord> | undefined },
  q: AgentQuery,
): AgentPage {
  return pageAgents(registry.records(), q, (id) => registry.record(id));
}
