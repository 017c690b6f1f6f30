/** The agent daemon: join, follow the task stream, run tasks one at a time, reconnect with backoff. */
import { setTimeout as sleep } from 'node:timers/promises';
import { SERVES_LABEL, createRng, taskPayloadSchema, type JoinRequestMsg, type ResultHeaderMsg, type TaskMsg, type TaskPayload } from '@fedge/proto';
import { Reporter } from './reporter.js';
import { TrainingProfiles } from './drift/training-profile.js';
import type { CoordinatorConnection } from './transport/connection.js';
import { TaskExecutor, type Session } from './executor.js';
import { ModelSignatureError } from './model-trust.js';
import type { LocalData } from './data.js';
import { moduleLogger } from './log.js';
import type { GlobalModelServer } from './serving/global-server.js';
import type { AgentIdentity } from './identity.js';
import { SecAggSession } from './secagg.js';

const log = moduleLogger('agent');

export interface AgentOptions {
  name: string;
  joinToken?: string;
  backend: string;
  labels?: Record<string, string>;
  /** Reconnect backoff bounds. */
  minBackoffMs?: number;
  maxBackoffMs?: number;
  /** Simulation for tests, benchmarks and demos: see SimulationOptions. */
  simulate?: SimulationOptions;
  /** With `--serve`: every global version the agent hears of is verified, exported to ONNX and served. */
  serving?: GlobalModelServer;
  /** Runs the tasks (its worker's backend is `backend`); default: one with `simulate.slowdown` and the `auto` backend. */
  executor?: TaskExecutor;
  /** Per-device identity: joins answer a signed challenge and every result is signed (identity.ts). */
  identity?: AgentIdentity;
  /** One-time code from `fedge agent enroll`: sent with the first join only; a secret, never logged. */
  enrollCode?: string;
  /** Status reports every this many ms besides on change (default REPORT_INTERVAL_MS, 15 s). */
  reportIntervalMs?: number;
  /**
   * What a join reports, read at every join; default: the local data's size and `labels`. An aggregator site (fedge
   * serve --upstream) has no data of its own: it reports its agents' examples and counts, which change between joins.
   */
  describe?: () => { numExamples: number; labels: Record<string, string> };
}

/** Makes an agent behave like a slow or flaky device. */
export interface SimulationOptions {
  /** Training takes this many times longer (the agent waits (factor - 1) x its training time). */
  slowdown?: number;
  /** Per task: probability of abandoning it without a result (the coordinator sees it late). */
  failRate?: number;
  /** Per task: probability of dropping the connection mid-task, then reconnecting with backoff. */
  disconnectRate?: number;
  /**
   * Secure aggregation: per training task, the probability of dropping out right after the masked input was
   * accepted (no unmask shares are sent), as a device that goes offline would.
   */
  secaggDropout?: number;
  /** Secure aggregation: corrupt one share ciphertext per round (a tampering agent; its neighbor's MAC check catches it). */
  secaggTamper?: boolean;
  /** Seeds the fault draws so a simulation repeats exactly. */
  seed?: number;
}

export const AGENT_VERSION = '0.1.0';

export class Agent {
  private stopped = false;
  private agentId = '';
  /** From the first join reply; proves this process is the agent behind agentId when it rejoins. Memory only. */
  private agentSecret = '';
  private current: { task: TaskMsg; ctl: AbortController } | undefined;
  private streamCancel: (() => void) | undefined;
  private readonly executor: TaskExecutor;
  private readonly faultRng: () => number;
  /** Data drift: this agent's training profile of each run, sent once in a status report (the fleet reference's part). */
  private readonly profiles = new TrainingProfiles();
  private enrollCode: string | undefined;
  /** The global version the model server loaded last: the `served` section of every status report. */
  private served: { runId: string; version: number } | undefined;
  /** Status reports to the coordinator; other modules add their sections (drift, health) with reporter.section(). */
  readonly reporter: Reporter;
  /** Data drift: the key of the fleet reference held for a run, sent with the served version (drift/wire.ts sets it). */
  fleetReferenceKey: ((runId: string) => string | undefined) | undefined;

  /** `data` may be absent only with `opts.executor` and `opts.describe` (an aggregator site trains nothing itself). */
  constructor(private readonly connect: () => CoordinatorConnection, private readonly data: LocalData | undefined, private readonly opts: AgentOptions) {
    if (!data && !(opts.executor && opts.describe)) throw new Error('Agent: without local data, give options.executor and options.describe');
    this.executor = opts.executor ?? new TaskExecutor(data!, { slowdown: opts.simulate?.slowdown ?? 1 });
    // Seeded per agent (createRng mixes the seed, so agents seeded 1, 2, 3... draw independent faults).
    this.faultRng = createRng(opts.simulate?.seed ?? 1);
    this.enrollCode = opts.enrollCode;
    this.reporter = new Reporter(opts.reportIntervalMs).section('served', () => {
      const key = this.served && this.fleetReferenceKey?.(this.served.runId);
      return this.served && { ...this.served, ...(key ? { fleetReferenceKey: key } : {}) };
    });
  }

  /** Runs until stop(); connection failures are retried with exponential backoff and jitter. */
  async runForever(): Promise<void> {
    const min = this.opts.minBackoffMs ?? 500;
    const max = this.opts.maxBackoffMs ?? 15_000;
    let backoff = min;
    while (!this.stopped) {
      const conn = this.connect();
      try {
        const joinedAt = await this.session(conn, () => (backoff = min));
        if (this.stopped) break;
        log.warn({ afterSeconds: joinedAt }, 'task stream ended; reconnecting');
      } catch (err) {
        if (this.stopped) break;
        log.warn({ err: (err as Error).message, retryInMs: backoff }, 'coordinator unreachable or session lost; retrying');
      } finally {
        this.reporter.detach();
        conn.close();
      }
      await sleep(backoff * (0.5 + Math.random() / 2));
      backoff = Math.min(max, backoff * 2);
    }
  }

  stop(): void {
    this.stopped = true;
    this.current?.ctl.abort(new Error('agent stopping'));
    this.streamCancel?.();
    this.reporter.detach();
    // The training worker goes with the agent (a task still running was just aborted).
    void this.executor.close();
  }

  private async session(conn: CoordinatorConnection, onJoined: () => void): Promise<number> {
    const described = this.opts.describe?.();
    const req: JoinRequestMsg = {
      name: this.opts.name,
      agentId: this.agentId,
      agentSecret: this.agentSecret,
      joinToken: this.opts.joinToken ?? '',
      backend: this.opts.backend,
      agentVersion: AGENT_VERSION,
      numExamples: described?.numExamples ?? this.data?.train.n ?? 0,
      // An agent that serves no model ignores announce and promote tasks: the label spares the coordinator sending each
      // new version to every one of them (10,000 messages a round at fleet scale). Without it, an agent is told.
      labels: { ...(described?.labels ?? this.opts.labels ?? {}), ...(this.opts.serving ? {} : { [SERVES_LABEL]: 'false' }) },
      // Schema, statistics and fingerprint of the local data: the coordinator's statistics step combines the fleet's.
      // A simulated echo agent without --data has no columns: it reports no profile rather than one the coordinator refuses.
      dataProfileJson: this.data?.profile?.columns.length ? JSON.stringify(this.data.profile) : '',
    };
    const id = this.opts.identity;
    if (id) {
      // Answer a fresh challenge with the device key: nothing replayable crosses the network, and no shared secret.
      const ch = await conn.challenge(this.opts.name);
      const proof = id.proveJoin(this.opts.name, this.agentId, ch.nonce);
      Object.assign(req, {
        publicKey: id.publicKeyPem, challengeNonce: ch.nonce, challengeTimeUnixMs: proof.timeMs, signature: proof.signature,
        ...(this.enrollCode && id.enrolledName !== this.opts.name ? { enrollCode: this.enrollCode } : {}),
      });
    }
    const reply = await conn.join(req).catch((err: unknown) => {
      // Refused under our id (say its agent_secret no longer matches: another join took the id by our name while we
      // were away): the next try joins by name, as a restarted process does, and gets the record back once it is not
      // live. Retrying the refused id would be refused forever.
      if ((err as { code?: string }).code === 'E_AUTH' && this.agentId) [this.agentId, this.agentSecret] = ['', ''];
      throw err;
    });
    if (id && id.enrolledName !== this.opts.name) {
      id.markEnrolled(this.opts.name);
      this.enrollCode = undefined;
    }
    // Pins (first join) or checks the coordinator's model signing key; a changed key ends the session here.
    this.executor.trust.onJoin(reply.modelSigningKey);
    this.agentId = reply.agentId;
    this.agentSecret = reply.agentSecret ?? '';
    const s: Session = { agentId: reply.agentId, sessionToken: reply.sessionToken };
    log.info({ agentId: s.agentId, coordinatorVersion: reply.coordinatorVersion, backend: this.opts.backend, examples: req.numExamples }, 'joined coordinator');
    onJoined();
    // A new session starts with no served version on the coordinator's side: a report now tells it what is loaded.
    this.reporter.attach(conn, s);
    const t0 = Date.now();
    const stream = conn.tasks(s.agentId, s.sessionToken);
    this.streamCancel = () => stream.cancel();
    let queue = Promise.resolve();
    for await (const task of stream) {
      if (task.kind === 'promote') {
        // A promoted version (older or newer): serve it, and from now on only promoted versions of this run.
        this.serve(task, conn, s, true);
        continue;
      }
      if (task.kind === 'announce') {
        // A new global version exists; nothing to train or submit. Serving agents fetch it off the task queue.
        this.serve(task, conn, s);
        continue;
      }
      if (task.kind === 'cancel') {
        if (this.current?.task.taskId === task.taskId) {
          log.info({ taskId: task.taskId }, 'task cancelled by the coordinator');
          this.current.ctl.abort(new Error('cancelled by coordinator'));
        }
        continue;
      }
      // Tasks run one at a time; the stream keeps being read so cancels arrive while training.
      queue = queue.then(() => this.handle(task, conn, s));
    }
    await queue;
    this.reporter.detach();
    return (Date.now() - t0) / 1000;
  }

  private async handle(task: TaskMsg, conn: CoordinatorConnection, s: Session): Promise<void> {
    if (this.stopped) return;
    const ctl = new AbortController();
    this.current = { task, ctl };
    const t0 = Date.now();
    try {
      log.info({ runId: task.runId, round: task.round, kind: task.kind, version: task.modelVersion }, 'task received');
      const sim = this.opts.simulate;
      const disconnect = task.kind === 'train' && (sim?.disconnectRate ?? 0) > this.faultRng();
      const fail = task.kind === 'train' && (sim?.failRate ?? 0) > this.faultRng();
      // Secure aggregation: its key stages run while the model trains; the result is masked before it is sent.
      const secagg = SecAggSession.of(task, conn, s, { tamperShare: sim?.secaggTamper });
      secagg?.start();
      const dropout = secagg !== undefined && (sim?.secaggDropout ?? 0) > this.faultRng();
      const result = await this.executor.run(task, conn, s, ctl.signal);
      const { header, payload } = secagg ? await secagg.mask(result.header, result.payload) : result;
      const onAccepted = result.onAccepted;
      this.serve(task, conn, s); // the task's model is verified and cached by now
      if (ctl.signal.aborted) return;
      if (disconnect) {
        log.warn({ runId: task.runId, round: task.round }, 'simulated disconnect');
        this.streamCancel?.();
        return;
      }
      if (fail) {
        log.warn({ runId: task.runId, round: task.round }, 'simulated failure: result abandoned');
        return;
      }
      const reply = await conn.submit(this.opts.identity ? this.opts.identity.signResult(header, payload) : header, payload);
      if (reply.accepted) {
        onAccepted?.();
        const profile = this.profiles.forTask(task, this.data?.train);
        if (profile) this.reporter.once('profile', profile);
        log.info({ runId: task.runId, round: task.round, kind: task.kind, ms: Date.now() - t0 }, 'result accepted');
        if (secagg && dropout) log.warn({ runId: task.runId, round: task.round }, 'simulated secagg dropout: no unmask shares sent');
        // The result is in: a failed unmask (the round failed, the stage closed) is not a failed task.
        else if (secagg) await secagg.unmask().catch((err: Error) => log.warn({ runId: task.runId, round: task.round, err: err.message }, 'secagg: unmask not sent'));
      }
      else log.warn({ runId: task.runId, round: task.round, reason: reply.reason, message: reply.message }, 'result rejected');
    } catch (err) {
      if (ctl.signal.aborted) log.info({ taskId: task.taskId }, 'task aborted');
      else if (err instanceof ModelSignatureError) {
        // Not a result the coordinator would wait for until the deadline: leaving the session makes it record this
        // agent as dropped at once, and the round goes on without it. The agent re-joins with backoff.
        log.error({ err: err.message, code: err.code, runId: task.runId, round: task.round, version: task.modelVersion }, 'task failed: model signature');
        this.streamCancel?.();
      } else if ((err as { code?: string }).code === 'E_AUTH') {
        // The coordinator no longer knows this session (another join took it over, or it restarted): a new join gets
        // a new one, and until then every call of this session would be refused too.
        log.warn({ err: (err as Error).message, runId: task.runId, round: task.round }, 'session refused by the coordinator; joining again');
        this.streamCancel?.();
      } else {
        log.error({ err: (err as Error).message, runId: task.runId, round: task.round }, 'task failed');
        await this.reportFailure(task, conn, s, (err as Error).message);
      }
    } finally {
      this.current = undefined;
    }
  }

  /**
   * Tells the coordinator this task cannot be done (e.g. the data does not fit the task), so the round records why at
   * once and goes on with the others instead of waiting for the deadline.
   */
  private async reportFailure(task: TaskMsg, conn: CoordinatorConnection, s: Session, message: string): Promise<void> {
    if (task.kind !== 'train' && task.kind !== 'evaluate') return;
    try {
      const header: ResultHeaderMsg = {
        agentId: s.agentId, sessionToken: s.sessionToken, taskId: task.taskId, runId: task.runId, round: task.round, modelVersion: task.modelVersion,
        kind: task.kind, numExamples: 0, tensors: [], totalBytes: 0, encoding: '', metrics: {}, error: message.slice(0, 2000),
      };
      const empty = new Uint8Array(0);
      await conn.submit(this.opts.identity ? this.opts.identity.signResult(header, empty) : header, empty);
    } catch (err) {
      log.warn({ err: (err as Error).message, runId: task.runId }, 'could not report the failed task');
    }
  }

  /** Hands a global version to the model server (if serving and it is new there); fetch and sha256 check via the executor. */
  private serve(task: TaskMsg, conn: CoordinatorConnection, s: Session, promoted = false): void {
    const srv = this.opts.serving;
    const ref = { runId: task.runId, version: task.modelVersion, sha256: task.modelSha256 };
    if (!srv) return;
    const meta = servingMeta(task);
    if (meta) srv.setRunMeta(task.runId, meta);
    if (!promoted && !srv.wants(ref)) return;
    void srv.offer(ref, async () => {
      const g = await this.executor.verifiedModel(task, conn, s);
      return { topology: JSON.parse(g.header.topologyJson) as unknown, tensors: g.header.tensors as never, weights: g.weights };
    }, promoted, undefined, canarySplit(task, promoted), promoted && !task.canaryFraction && task.stableVersion === task.modelVersion).then(() => {
      // Offers load one at a time, so right after this one settles `loaded` is still it if it was loaded.
      if (srv.loaded !== ref) return;
      this.served = { runId: ref.runId, version: ref.version };
      this.reporter.poke();
    });
  }
}

/** A canary promote's A/B split: the promoted version answers canaryFraction of requests, stableVersion the rest. */
function canarySplit(task: TaskMsg, promoted: boolean): { stable: number; fraction: number } | undefined {
  return promoted && task.canaryFraction ? { stable: task.stableVersion ?? 0, fraction: task.canaryFraction } : undefined;
}

/** The task payload's task and preprocessing, so the served ONNX takes raw feature values; undefined for legacy runs. */
function servingMeta(task: TaskMsg): { task: TaskPayload['task']; preprocessing: TaskPayload['preprocessing'] } | undefined {
  if (!task.config?.taskJson) return undefined;
  try {
    const r = taskPayloadSchema.safeParse(JSON.parse(task.config.taskJson));
    return r.success ? r.data : undefined;
  } catch {
    return undefined;
  }
}
