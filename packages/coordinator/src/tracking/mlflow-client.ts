/**
 * A small client for the MLflow tracking server's REST API (api/2.0/mlflow/...) and its artifact proxy
 * (api/2.0/mlflow-artifacts/artifacts/..., which `mlflow server` serves by default): the calls live tracking needs.
 * Every call has a timeout; failures throw MlflowHttpError with `retryable` telling a network error, a timeout, 429 or
 * 5xx (try again later) from a refusal (4xx: the same request would be refused again).
 */
import { z } from 'zod';

export class MlflowHttpError extends Error {
  constructor(message: string, readonly retryable: boolean, readonly status?: number, readonly errorCode?: string) {
    super(message);
  }
}

export interface MlflowMetric { key: string; value: number; timestamp: number; step: number }
export interface MlflowTag { key: string; value: string }

/** What runs/create and runs/search return about a run (validated: it is network input). */
const runInfo = z.object({ run_id: z.string().min(1), artifact_uri: z.string().optional(), experiment_id: z.string().optional() });
const runReply = z.object({ run: z.object({ info: runInfo }) });
const searchReply = z.object({ runs: z.array(z.object({ info: runInfo })).optional() });
const experimentReply = z.object({ experiment: z.object({ experiment_id: z.string().min(1) }) });
const createdExperiment = z.object({ experiment_id: z.string().min(1) });
export type MlflowRunInfo = z.infer<typeof runInfo>;

export const MLFLOW_LIMITS = { metricsPerBatch: 1000, paramsPerBatch: 100, tagsPerBatch: 100, keyLength: 250, paramValue: 6000, tagValue: 5000 } as const;

/** The URL without user:password, for logs and params. */
export function redactUri(uri: string): string {
  try {
    const u = new URL(uri);
    u.username = '';
    u.password = '';
    return u.toString().replace(/\/+$/, '');
  } catch {
    return uri;
  }
}

/**
 * The Authorization header MLflow's own client would send: user:password in the URL, else MLflow's environment
 * variables MLFLOW_TRACKING_USERNAME/MLFLOW_TRACKING_PASSWORD (basic auth) or MLFLOW_TRACKING_TOKEN (bearer).
 */
function authorization(u: URL, env: NodeJS.ProcessEnv): string | undefined {
  const basic = (user: string, pass: string) => `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}`;
  if (u.username) return basic(decodeURIComponent(u.username), decodeURIComponent(u.password));
  if (env['MLFLOW_TRACKING_USERNAME']) return basic(env['MLFLOW_TRACKING_USERNAME'], env['MLFLOW_TRACKING_PASSWORD'] ?? '');
  if (env['MLFLOW_TRACKING_TOKEN']) return `Bearer ${env['MLFLOW_TRACKING_TOKEN']}`;
  return undefined;
}

export class MlflowClient {
  private readonly base: string;
  private readonly auth: string | undefined;

  constructor(trackingUri: string, private readonly timeoutMs = 10_000, env: NodeJS.ProcessEnv = process.env) {
    // fetch refuses URLs with credentials: they travel as a header instead.
    this.auth = authorization(new URL(trackingUri), env);
    this.base = redactUri(trackingUri);
  }

  private async call<T>(method: 'GET' | 'POST' | 'PUT', path: string, body: unknown, schema: z.ZodType<T> | undefined, contentType = 'application/json'): Promise<T> {
    let res: Response;
    try {
      res = await fetch(`${this.base}${path}`, {
        method,
        headers: { ...(body === undefined ? {} : { 'content-type': contentType }), ...(this.auth ? { authorization: this.auth } : {}) },
        ...(body === undefined ? {} : { body: body instanceof Uint8Array ? body : JSON.stringify(body) }),
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (err) {
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      throw new MlflowHttpError(`${method} ${path}: ${cause?.code ?? cause?.message ?? (err as Error).message}`, true);
    }
    const text = await res.text();
    if (!res.ok) {
      let code: string | undefined;
      let message = text.slice(0, 300);
      try {
        const j = JSON.parse(text) as { error_code?: string; message?: string };
        code = j.error_code;
        message = j.message ?? message;
      } catch {
        // not JSON: keep the text
      }
      throw new MlflowHttpError(`${method} ${path}: HTTP ${res.status}${code ? ` ${code}` : ''}: ${message}`, res.status === 429 || res.status >= 500, res.status, code);
    }
    if (!schema) return undefined as T;
    const parsed = schema.safeParse(text ? JSON.parse(text) : {});
    if (!parsed.success) throw new MlflowHttpError(`${method} ${path}: unexpected reply: ${parsed.error.issues[0]?.message ?? 'malformed'}`, false);
    return parsed.data;
  }

  /** The experiment's id, creating it when there is none of that name. */
  async experimentId(name: string): Promise<string> {
    try {
      return (await this.call('GET', `/api/2.0/mlflow/experiments/get-by-name?experiment_name=${encodeURIComponent(name)}`, undefined, experimentReply)).experiment.experiment_id;
    } catch (err) {
      if (!(err instanceof MlflowHttpError) || err.errorCode !== 'RESOURCE_DOES_NOT_EXIST') throw err;
    }
    return (await this.call('POST', '/api/2.0/mlflow/experiments/create', { name }, createdExperiment)).experiment_id;
  }

  /** The run of `experimentId` whose tag `key` is `value` (how a resumed fedge run finds its MLflow run). */
  async findRunByTag(experimentId: string, key: string, value: string): Promise<MlflowRunInfo | undefined> {
    const filter = `tags.\`${key}\` = '${value.replace(/'/g, "\\'")}'`;
    const r = await this.call('POST', '/api/2.0/mlflow/runs/search', { experiment_ids: [experimentId], filter, max_results: 1 }, searchReply);
    return r.runs?.[0]?.info;
  }

  async createRun(experimentId: string, runName: string, startTime: number, tags: MlflowTag[]): Promise<MlflowRunInfo> {
    return (await this.call('POST', '/api/2.0/mlflow/runs/create', { experiment_id: experimentId, run_name: runName, start_time: startTime, tags }, runReply)).run.info;
  }

  async logBatch(runId: string, batch: { metrics?: MlflowMetric[]; params?: MlflowTag[]; tags?: MlflowTag[] }): Promise<void> {
    await this.call('POST', '/api/2.0/mlflow/runs/log-batch', { run_id: runId, metrics: batch.metrics ?? [], params: batch.params ?? [], tags: batch.tags ?? [] }, undefined);
  }

  async updateRun(runId: string, status: 'RUNNING' | 'FINISHED' | 'FAILED' | 'KILLED', endTime?: number): Promise<void> {
    await this.call('POST', '/api/2.0/mlflow/runs/update', { run_id: runId, status, ...(endTime !== undefined ? { end_time: endTime } : {}) }, undefined);
  }

  /**
   * Uploads `bytes` as the run's artifact `path` through the server's artifact proxy. Only runs whose artifact_uri is
   * mlflow-artifacts:/... (the default of `mlflow server`) go through it; others (s3://, file://) are refused here.
   */
  async putArtifact(artifactUri: string | undefined, path: string, bytes: Uint8Array): Promise<void> {
    const m = artifactUri ? /^mlflow-artifacts:(?:\/\/[^/]*)?\/(.*)$/.exec(artifactUri) : null;
    if (!m) throw new MlflowHttpError(`the run's artifact location ${artifactUri ?? '(none)'} is not served by the tracking server's artifact proxy (mlflow-artifacts:/); start mlflow server with --artifacts-destination (its default) to receive fedge's artifacts`, false);
    const where = [...m[1]!.split('/'), ...path.split('/')].filter(Boolean).map(encodeURIComponent).join('/');
    await this.call('PUT', `/api/2.0/mlflow-artifacts/artifacts/${where}`, bytes, undefined, 'application/octet-stream');
  }
}
