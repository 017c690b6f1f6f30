/** Promise-based client for the AdminService, used by every `fedge` command that talks to a coordinator. */
import * as grpc from '@grpc/grpc-js';
import {
  loadClientTls,
  CHANNEL_OPTIONS,
  ChunkAssembler,
  FedgeError,
  bytesToFloat32,
  grpcTarget,
  idleTimer,
  isErrorCode,
  loadServices,
  parseGrpcUrl,
  type ChunkMsg,
  type ListAgentsReplyMsg,
  type ModelBlob,
  type RunReplyMsg,
} from '@fedge/proto';
import type { AgentRecord } from '../store/store.js';
import type { AgentPage, AgentQuery, AgentSummary } from '../engine/agent-query.js';
import { FEDGE_CODE_TRAILER } from '../transport/grpc/errors.js';
import type { RunView } from '../coordinator.js';
import type { CanaryAutoOptions } from '../engine/canary.js';
import type { GcResult } from '../engine/retention.js';
import type { ParticipantListing } from '../engine/participants-view.js';
import type { ParticipantQuery } from '../store/store.js';

type ParticipantQueryInput = Partial<ParticipantQuery>;

export const DEFAULT_COORDINATOR = '127.0.0.1:7070';

/**
 * Streams have no deadline (a watched run may last days); they end when silent this long instead. The coordinator
 * re-sends a watched run's state every 10 s (admin-service.ts WATCH_HEARTBEAT_MS) and a download's chunks back to back.
 */
export const STREAM_IDLE_MS = 60_000;

/** An enrolled (or revoked) identity, or a name whose enrollment code is still unused ("pending"). */
export interface IdentityListing {
  name: string;
  status: 'enrolled' | 'revoked' | 'pending';
  fingerprint?: string;
  enrolledAt?: string;
  lastSeen?: string;
  revokedAt?: string;
  expiresAt?: string;
}

export class CliError extends FedgeError {
  constructor(message: string, code = 'E_CLI') {
    super(code, message);
    this.name = 'CliError';
  }
}

type Unary = (req: unknown, md: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res: unknown) => void) => void;

export class AdminClient {
  private readonly client: grpc.Client & Record<string, Unary & ((req: unknown, md: grpc.Metadata) => grpc.ClientReadableStream<unknown>)>;
  private readonly md = new grpc.Metadata();
  /** Silence after which a stream is given up (tests shorten it). */
  idleMs = STREAM_IDLE_MS;

  /**
   * `address`: grpc://HOST:PORT or HOST:PORT (plaintext), grpcs://HOST:PORT (TLS, the system's CAs). `tls.ca`
   * (default env FEDGE_TLS_CA) is a PEM file of the CA that signed the coordinator's certificate; `tls.cert` and
   * `tls.key` a client certificate for a coordinator requiring mutual TLS. Any of them implies TLS.
   */
  constructor(readonly address: string, token = process.env.FEDGE_ADMIN_TOKEN, tls: { ca?: string | undefined; cert?: string | undefined; key?: string | undefined } = { ca: process.env.FEDGE_TLS_CA }) {
    const hp = parseGrpcUrl(address, '--coordinator', 7070);
    const t = loadClientTls(tls);
    const creds = hp.tls || t ? grpc.credentials.createSsl(t?.ca ?? null, t?.key ?? null, t?.cert ?? null) : grpc.credentials.createInsecure();
    const { AdminService } = loadServices();
    this.client = new AdminService(grpcTarget(hp), creds, CHANNEL_OPTIONS) as never;
    if (token) this.md.set('authorization', `Bearer ${token}`);
  }

  private call<T>(method: string, req: unknown, timeoutMs = 30_000): Promise<T> {
    return new Promise((resolve, reject) => {
      this.client[method]!(req, this.md, { deadline: Date.now() + timeoutMs }, (err, res) => (err ? reject(this.explain(err)) : resolve(res as T)));
    });
  }

  /** Turns transport errors into messages that tell the user what to do. */
  explain(err: grpc.ServiceError): Error {
    if (err.code === grpc.status.UNAVAILABLE && /certificate|self[- ]signed|SSL|TLS|handshake/i.test(err.details))
      return new CliError(`TLS to the coordinator at ${this.address} failed (${err.details}); pass --tls-ca FILE (env FEDGE_TLS_CA) with the CA that signed its certificate`, 'E_TLS');
    if (err.code === grpc.status.UNAVAILABLE || err.code === grpc.status.DEADLINE_EXCEEDED)
      return new CliError(`cannot reach the coordinator at ${this.address} (${err.details}); start it with \`fedge serve\` or pass --coordinator HOST:PORT (env FEDGE_COORDINATOR)`, 'E_UNAVAILABLE');
    // The coordinator's own code when it sent one (its trailer), else one from the gRPC status.
    const sent = err.metadata?.get(FEDGE_CODE_TRAILER)[0];
    const code = isErrorCode(sent) ? sent : ({ [grpc.status.INVALID_ARGUMENT]: 'E_VALIDATION', [grpc.status.NOT_FOUND]: 'E_NOT_FOUND', [grpc.status.UNAUTHENTICATED]: 'E_AUTH' } as Record<number, string>)[err.code];
    return new CliError(err.details || err.message, code ?? 'E_COORDINATOR');
  }

  async startRun(config: unknown): Promise<RunView> {
    const r = await this.call<RunReplyMsg>('StartRun', { configJson: JSON.stringify(config) }, 120_000);
    return JSON.parse(r.runJson) as RunView;
  }
  async listRuns(): Promise<RunView[]> {
    const r = await this.call<{ runsJson: string[] }>('ListRuns', {});
    return r.runsJson.map((j) => JSON.parse(j) as RunView);
  }
  async getRun(runId: string): Promise<RunView> {
    return JSON.parse((await this.call<RunReplyMsg>('GetRun', { runId })).runJson) as RunView;
  }
  async stopRun(runId: string): Promise<RunView> {
    return JSON.parse((await this.call<RunReplyMsg>('StopRun', { runId })).runJson) as RunView;
  }
  async promoteModel(runId: string, version: number, opts: { canary?: number; margin?: number; force?: boolean; auto?: CanaryAutoOptions } = {}): Promise<RunView> {
    const req = { runId, modelVersion: version, canary: opts.canary ?? 0, margin: opts.margin ?? 0, force: opts.force ?? false, autoJson: opts.auto ? JSON.stringify(opts.auto) : '' };
    return JSON.parse((await this.call<RunReplyMsg>('PromoteModel', req)).runJson) as RunView;
  }
  async rollbackModel(runId: string): Promise<RunView> {
    return JSON.parse((await this.call<RunReplyMsg>('RollbackModel', { runId })).runJson) as RunView;
  }
  /** fedge run participants: one page of a run's participants (the coordinator checks the query). */
  async listParticipants(runId: string, query: ParticipantQueryInput): Promise<ParticipantListing> {
    return JSON.parse((await this.call<{ pageJson: string }>('ListParticipants', { runId, queryJson: JSON.stringify(query) })).pageJson) as ParticipantListing;
  }
  /** fedge model gc: retention applied to one run or all; keepLast undefined: each run's own setting. */
  async gcModels(opts: { runId?: string; keepLast?: number | 'all'; dryRun?: boolean }): Promise<GcResult[]> {
    const req = { runId: opts.runId ?? '', keepLast: opts.keepLast === undefined ? '' : String(opts.keepLast), dryRun: !!opts.dryRun };
    return JSON.parse((await this.call<{ resultsJson: string }>('GcModels', req)).resultsJson) as GcResult[];
  }
  /** Every agent (limit 0: no page limit, which is also what a coordinator from before paging answers). */
  async listAgents(): Promise<AgentRecord[]> {
    return (await this.agentPage({ limit: 0 })).agents;
  }
  /** One page of the agents matching `q` (fedge agent list); `q` was checked with parseAgentQuery. */
  async agentPage(q: AgentQuery): Promise<AgentPage> {
    const r = await this.call<ListAgentsReplyMsg>('ListAgents', q);
    return { agents: r.agentsJson.map((j) => JSON.parse(j) as AgentRecord), total: r.total ?? 0, skipped: r.skipped ?? 0, ...(r.next ? { next: r.next } : {}), fleet: r.fleet ?? 0 };
  }
  /** fedge agent list --summary: counts of the agents matching `q`'s filters. */
  async agentSummary(q: AgentQuery): Promise<AgentSummary> {
    const r = await this.call<ListAgentsReplyMsg>('ListAgents', { ...q, summary: true });
    // A coordinator from before paging ignores `summary` and sends every agent instead.
    if (!r.summaryJson) throw new CliError(`the coordinator at ${this.address} does not answer --summary (it predates it); upgrade it, or list with --all`, 'E_CLI');
    return JSON.parse(r.summaryJson) as AgentSummary;
  }

  /** A one-time enrollment code for `name`, valid `ttlSeconds` (0: the coordinator's default, 24 h). */
  async enrollAgent(name: string, ttlSeconds = 0): Promise<{ name: string; code: string; expiresAt: string }> {
    const r = await this.call<{ name: string; code: string; expiresUnixMs: number }>('EnrollAgent', { name, ttlSeconds });
    return { name: r.name, code: r.code, expiresAt: new Date(r.expiresUnixMs).toISOString() };
  }
  async listIdentities(): Promise<IdentityListing[]> {
    const r = await this.call<{ identitiesJson: string[] }>('ListIdentities', {});
    return r.identitiesJson.map((j) => JSON.parse(j) as IdentityListing);
  }
  /** brokerLoginRemoved: the device's broker login was deleted too (fedge serve --mqtt-dynsec). */
  async revokeAgent(name: string): Promise<IdentityListing & { sessionsClosed: number; brokerLoginRemoved?: boolean }> {
    return JSON.parse((await this.call<{ identityJson: string }>('RevokeAgent', { name })).identityJson) as IdentityListing & { sessionsClosed: number; brokerLoginRemoved?: boolean };
  }

  /** Streams run updates to `onUpdate` until the run ends; resolves with the final record. */
  watchRun(runId: string, onUpdate: (run: RunView) => void): Promise<RunView> {
    return new Promise((resolve, reject) => {
      const stream = this.client.WatchRun!({ runId }, this.md);
      const idle = this.idle(stream, 'watching the run', reject);
      let last: RunView | undefined;
      stream.on('data', (m: unknown) => {
        idle.touch();
        last = JSON.parse((m as RunReplyMsg).runJson) as RunView;
        onUpdate(last);
      });
      stream.on('error', (err: grpc.ServiceError) => reject(this.explain(err)));
      stream.on('end', () => (last ? resolve(last) : reject(new CliError(`no updates received for run ${runId}`))));
    });
  }

  /** Downloads the latest global model of a run. */
  /** The run's latest global model, or `version` when it is > 0. */
  fetchRunModel(runId: string, version = 0): Promise<ModelBlob & { sha256: string; version: number }> {
    return new Promise((resolve, reject) => {
      const stream = this.client.FetchRunModel!({ runId, modelVersion: version }, this.md);
      const idle = this.idle(stream, 'downloading the model', reject);
      let asm: ChunkAssembler | undefined;
      let header: ChunkMsg['header'];
      stream.on('data', (m: unknown) => {
        idle.touch();
        const c = m as ChunkMsg;
        if (c.header) {
          header = c.header;
          asm = new ChunkAssembler(c.header.totalBytes);
        } else asm?.push(c.offset, c.data);
      });
      stream.on('error', (err: grpc.ServiceError) => reject(this.explain(err)));
      stream.on('end', () => {
        if (!asm || !header) return reject(new CliError('the coordinator sent no model'));
        resolve({
          topology: JSON.parse(header.topologyJson),
          tensors: header.tensors as ModelBlob['tensors'],
          weights: bytesToFloat32(asm.finish()),
          sha256: header.sha256,
          version: header.modelVersion,
        });
      });
    });
  }

  /** Cancels `stream` and rejects once it has been silent for `idleMs`; stops when the stream ends either way. */
  private idle(stream: grpc.ClientReadableStream<unknown>, what: string, reject: (e: Error) => void): { touch(): void } {
    const t = idleTimer(this.idleMs, () => {
      reject(new CliError(`${what}: nothing from the coordinator at ${this.address} for ${this.idleMs / 1000} s; is it still running?`, 'E_UNAVAILABLE'));
      stream.cancel();
    });
    stream.on('end', () => t.stop());
    stream.on('error', () => t.stop());
    return t;
  }

  close(): void {
    this.client.close();
  }
}
