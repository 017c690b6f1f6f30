/** The dashboard's view of the coordinator API (/api/...): the shapes of the CLI's JSON the page reads, and fetch helpers. */

export interface Participant { name: string; outcome: 'completed' | 'rejected' | 'dropped' | 'late'; reason?: string; staleness?: number; seconds?: number }

export interface RoundRecord {
  round: number;
  version?: number;
  status: 'completed' | 'failed';
  reason?: string;
  seconds: number;
  /** Rounds of up to 100 participants list them; larger ones have participantsNote (and every round its summary). */
  participants?: Participant[];
  participantsNote?: string;
  summary?: { participants: number; outcomes: Partial<Record<Participant['outcome'], number>>; seconds?: { p50: number; p95: number; max: number } };
  trainLoss?: number;
  federatedAccuracy?: number;
  centralAccuracy?: number;
  federatedMetrics?: Record<string, number>;
  centralMetrics?: Record<string, number>;
  bytesReceived: number;
  bytesSent: number;
  /** What the accepted updates / downloads would weigh as dense float32 (absent on older records: uncompressed). */
  bytesReceivedDense?: number;
  bytesSentDense?: number;
  stalenessHistogram?: Record<string, number>;
  epsilon?: number;
}

export interface RunConfig {
  model: unknown;
  rounds: number;
  mode?: 'sync' | 'async';
  strategy: { name: string } & Record<string, unknown>;
  task?: { metrics?: string[] };
  privacy?: { maxEpsilon?: number; delta: number; mode: string };
  compression?: unknown;
}

/** GET /api/runs/RUN = `fedge run show RUN --format json`. */
export interface RunSummary {
  id: string;
  status: string;
  statusMessage?: string;
  round: number;
  rounds: number;
  modelVersion: number;
  accuracy?: number;
  latestMetrics?: Record<string, number>;
  elapsedSeconds?: number;
  config: RunConfig;
  roundsDetail: RoundRecord[];
  data?: { task: { metrics: string[] } };
  live?: unknown;
}

/** GET /api/agents = `fedge agent list --format json`. */
export interface Agent {
  id: string;
  name: string;
  status: string;
  backend: string;
  agentVersion: string;
  transport?: string;
  servedVersion?: number;
  lastSeen: string;
  currentTask?: string;
  tasksCompleted: number;
  tasksFailed: number;
  drift?: string[];
}

/** `fedge agent list --summary --format json`: the fleet's counts. */
export interface AgentSummary {
  total: number;
  fleet: number;
  state: { online: number; busy: number; idle: number; offline: number };
  serving: Record<string, number>;
  backend: Record<string, number>;
  transport: Record<string, number>;
  agentVersion: Record<string, number>;
  sites: Record<string, number>;
  auth: { token: number; key: number };
}

/** One page of agents in (name, id) order, as the coordinator's agent query answers it. */
export interface AgentPage {
  agents: Agent[];
  /** Agents matching the filter. */
  total: number;
  /** Matching agents on the pages before this one. */
  skipped: number;
  /** `after` for the next page; absent on the last. */
  next?: string;
  fleet: number;
}

/** The `agents` event of GET /api/events?limit=&after=&state=&name=: the fleet's counts and that query's page. */
export interface AgentsEvent {
  summary: AgentSummary;
  page: AgentPage;
}

/** GET /api/models = `fedge model list --format json`. */
export interface ModelEntry {
  runId: string;
  runStatus: string;
  version: number;
  sha256: string;
  round: number;
  parent?: number;
  createdAt: string;
  centralAccuracy?: number;
  federatedAccuracy?: number;
  latest: boolean;
  serving?: 'promoted' | 'canary';
}

export class ApiError extends Error {
  constructor(readonly status: number, readonly code: string, message: string) {
    super(message);
  }
}

async function parse<T>(res: Response): Promise<T> {
  const body = (await res.json()) as T & { error?: { code: string; message: string } };
  if (!res.ok) throw new ApiError(res.status, body.error?.code ?? 'E_HTTP', body.error?.message ?? res.statusText);
  return body;
}

export async function get<T>(path: string): Promise<T> {
  return parse<T>(await fetch(path, { headers: { accept: 'application/json' } }));
}

/** A write action with the admin token the user typed (kept in this page's memory only). */
export async function post<T>(path: string, body: unknown, token: string): Promise<T> {
  return parse<T>(await fetch(path, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body: JSON.stringify(body) }));
}

/** The task's metric names (accuracy for runs without a task), as `fedge run show` picks them. */
export function metricNames(r: RunSummary): string[] {
  return r.data?.task.metrics ?? r.config.task?.metrics ?? ['accuracy'];
}

/** A round's value of `name`, federated or central (accuracy also from the plain accuracy fields). */
export function metricOf(x: RoundRecord, name: string, source: 'federated' | 'central'): number | undefined {
  const m = source === 'federated' ? x.federatedMetrics : x.centralMetrics;
  const v = m?.[name] ?? (name === 'accuracy' ? (source === 'federated' ? x.federatedAccuracy : x.centralAccuracy) : undefined);
  return v === null ? undefined : v;
}

/** Metrics where lower is better (the rest: higher). */
export const LOWER_IS_BETTER = new Set(['loss', 'rmse', 'mae', 'mse', 'logloss']);
