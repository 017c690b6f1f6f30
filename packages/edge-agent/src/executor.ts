/** Runs one task: fetch and verify the global model, evaluate it on the held-out split, train (in a worker thread), return the delta. */
import {
  RejectedUpdateError,
  applyChain,
  createRng,
  UPDATE_ENCODING,
  ValidationError,
  bytesToFloat32,
  modelDigest,
  type ModelHeaderMsg,
  type ResultHeaderMsg,
  type TaskMsg,
} from '@fedge/proto';
import type { BackendInfo, BackendPreference } from '@fedge/ml';
import type { CoordinatorConnection } from './transport/connection.js';
import type { LocalData } from './data.js';
import { moduleLogger } from './log.js';
import { compresses, packUpdate } from './privacy.js';
import { FeedbackStore } from './feedback-store.js';
import { ModelTrust } from './model-trust.js';
import type { EvalMetrics } from './train-worker.js';
import { SharedTrainWorker, TrainWorker, TrainingWorkerError, liveWorker } from './train-worker-client.js';
import { attackDelta, isModelAttack, type Attack } from './attack.js';
import { ControlVariateStore, scaffoldTask } from './scaffold.js';

const log = moduleLogger('executor');

function abortableSleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(done, ms);
    function done(): void {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done);
  });
}

/** Copies finite values under `prefix` (a regression task has no accuracy: NaN would be refused as a non-finite metric). */
function addMetrics(out: Record<string, number>, prefix: string, m: Record<string, number>): void {
  for (const [k, v] of Object.entries(m)) if (Number.isFinite(v)) out[prefix + k] = v;
}

export interface CachedModel { runId: string; version: number; sha256: string; header: ModelHeaderMsg; weights: Float32Array }

export interface Session { agentId: string; sessionToken: string }

export interface ExecutorOptions {
  /** Simulated device slowness: training time is multiplied by this factor. */
  slowdown?: number;
  /** tfjs backend the training worker initialises (default `auto`: FEDGE_BACKEND, then the fastest available). */
  backend?: BackendPreference;
  /** The key models must be signed with (`--coordinator-key`); default: trust on first use of the join reply's key. */
  trust?: ModelTrust;
  /**
   * Simulated attacker (`--attack`): model attacks change the delta before packUpdate (so error feedback, clipping,
   * noise and compression still apply); label-flip makes the worker train on flipped labels.
   */
  attack?: Attack;
  /** Seed of the attack's randomness (gaussian); default 1. */
  attackSeed?: number;
  /** Where SCAFFOLD runs keep this agent's control variates (STATE_DIR/scaffold/RUN.f32); absent: in memory only. */
  stateDir?: string;
  /**
   * Simulation (`--partial-work`): per training task, the probability that this agent is a straggler that completes
   * only a uniformly random number of local epochs in [1, E-1] of the E the task asks (the "systems heterogeneity"
   * of the FedProx paper, Li et al. 2020); tasks of one epoch run whole. The result says how many ran (train_epochs).
   */
  partialWork?: number;
  /** Seed of the partial-work draws; default 1. */
  partialWorkSeed?: number;
  /** A simulated fleet (fleet.ts): train on this worker, shared by all its agents, instead of one of our own; `dataKey` names our data. */
  shared?: { worker: SharedTrainWorker; dataKey: string };
}

/** Runs tasks one at a time; evaluation and training happen in a worker thread that keeps one built tfjs model per topology. */
export class TaskExecutor {
  private cached: CachedModel | undefined;
  private trainer: TrainWorker | undefined;
  /** Error-feedback residual of the run this agent last trained for (one run at a time keeps memory at one model), on disk. */
  private readonly feedback: FeedbackStore;
  private readonly slowdown: number;
  private readonly backendPref: BackendPreference;
  private readonly attack: Attack | undefined;
  private readonly attackRng: () => number;
  private readonly partialWork: number | undefined;
  private readonly partialRng: () => number;
  /** SCAFFOLD: this agent's control variate per run. */
  private readonly variates: ControlVariateStore;
  /** Every model is signature-checked against this before it is fetched, trained on or served. */
  readonly trust: ModelTrust;
  private readonly shared: ExecutorOptions['shared'];

  constructor(private readonly data: LocalData, opts: ExecutorOptions = {}) {
    this.slowdown = opts.slowdown ?? 1;
    this.trust = opts.trust ?? new ModelTrust();
    this.backendPref = opts.backend ?? 'auto';
    this.attack = opts.attack;
    this.attackRng = createRng(opts.attackSeed ?? 1);
    this.variates = new ControlVariateStore(opts.stateDir);
    this.feedback = new FeedbackStore(opts.stateDir);
    this.partialWork = opts.partialWork;
    this.partialRng = createRng(opts.partialWorkSeed ?? 1);
    this.shared = opts.shared;
  }

  /**
   * Starts the training worker (if none is running) and resolves with the tfjs backend it initialised: the backend
   * the agent reports. Tasks call this themselves; call it early to fail fast and to learn the backend.
   */
  start(): Promise<BackendInfo> {
    return this.shared ? this.shared.worker.start() : this.worker().ready;
  }

  /** Terminates the training worker; a task still running fails. A later task starts a new worker. */
  async close(): Promise<void> {
    const w = this.trainer;
    this.trainer = undefined;
    await w?.terminate();
  }

  /**
   * Runs the task. `onAccepted` (train results with error feedback) keeps the residual of what was sent: call it once
   * the coordinator accepted the result, so a rejected or lost upload does not count as sent.
   */
  async run(task: TaskMsg, conn: CoordinatorConnection, s: Session, signal: AbortSignal): Promise<{ header: ResultHeaderMsg; payload: Uint8Array; onAccepted?: () => void }> {
    const global = await this.fetch(task, conn, s);
    const c = task.config;
    const train = task.kind !== 'evaluate';
    // SCAFFOLD: the server variate the task names and this agent's own; the worker steps along g − c_i + c.
    const scaffold = train && c.controlVariateSha256 ? await scaffoldTask(this.variates, conn, s, task, global.weights.length) : undefined;
    const epochs = train ? this.epochsToRun(c.epochs) : c.epochs;
    if (epochs < c.epochs) log.info({ runId: task.runId, round: task.round, epochs, asked: c.epochs }, 'simulated straggler: partial work');
    const sh = this.shared;
    const r = await (sh ? sh.worker : this.worker()).task({
      ...(sh && this.data ? { data: { key: sh.dataKey, train: this.data.train, holdout: this.data.holdout } } : {}),
      topologyJson: global.header.topologyJson,
      tensors: global.header.tensors,
      // A copy goes (transferred, not cloned again): the cached global stays here for the delta and for serving.
      weights: global.weights.slice(),
      ...(train ? { train: { epochs, batchSize: c.batchSize, learningRate: c.learningRate, seed: c.seed } } : {}),
      ...(c.taskJson ? { taskJson: c.taskJson } : {}),
      ...(scaffold ? { controlCorrection: scaffold.correction } : {}),
    }, signal);

    const metrics: Record<string, number> = {};
    const ev: EvalMetrics | undefined = r.eval;
    if (ev) {
      // The task's metrics and the sufficient statistics (sse, ysum, ...) the coordinator combines exactly across agents.
      addMetrics(metrics, 'eval_', { ...ev.metrics, loss: ev.loss, accuracy: ev.accuracy });
      metrics.eval_examples = ev.numExamples;
    }
    const base = { agentId: s.agentId, sessionToken: s.sessionToken, taskId: task.taskId, runId: task.runId, round: task.round, modelVersion: task.modelVersion };
    if (!train) {
      return { header: { ...base, kind: 'evaluate', numExamples: 0, tensors: [], totalBytes: 0, encoding: '', metrics }, payload: new Uint8Array(0) };
    }
    const tr = r.train, weights = r.weights;
    if (!tr || !weights) throw new TrainingWorkerError('training worker returned no weights for a train task');
    if (this.slowdown > 1) await abortableSleep((this.slowdown - 1) * tr.seconds * 1000, signal);
    addMetrics(metrics, 'train_', { ...tr.metrics, loss: tr.loss, accuracy: tr.accuracy });
    metrics.train_seconds = tr.seconds;
    if (this.partialWork !== undefined) metrics.train_epochs = epochs;
    metrics.samples_per_sec = tr.samplesPerSec;
    if (weights.length !== global.weights.length) throw new TrainingWorkerError(`training worker returned ${weights.length} weights, the model has ${global.weights.length}`);
    // Send the delta: it is what FedAvg averages, and what compression and clipping will act on.
    const delta = new Float32Array(weights.length);
    for (let i = 0; i < weights.length; i++) delta[i] = weights[i]! - global.weights[i]!;
    // Simulated attacker: the delta is replaced before packUpdate, as a modified client would send it.
    if (isModelAttack(this.attack)) attackDelta(delta, this.attack, this.attackRng);
    const feedback = compresses(c.codec) && c.errorFeedback ? this.feedback.get(task.runId, c.efMomentum ?? 0) : undefined;
    // SCAFFOLD sends [Δy | Δc_i] as float32 (the run config refuses compression and DP with it); c_i is saved once accepted.
    const packed = scaffold
      ? { encoding: UPDATE_ENCODING, metrics: { scaffold_ci_norm: scaffold.ciNorm }, ...scaffold.pack(delta, tr.steps, r.learningRate ?? c.learningRate) }
      : packUpdate(delta, c, feedback);
    // The residual goes to disk once the coordinator accepted the update it belongs to (a restart continues with it).
    const keep = packed.onAccepted;
    const onAccepted = keep && feedback ? () => (keep(), this.feedback.save(task.runId)) : keep;
    const { payload, encoding } = packed;
    Object.assign(metrics, packed.metrics);
    log.info({ runId: task.runId, round: task.round, loss: tr.loss, accuracy: tr.accuracy, seconds: tr.seconds, samplesPerSec: Math.round(tr.samplesPerSec), encoding, bytes: payload.byteLength }, 'trained');
    return {
      header: {
        ...base,
        kind: 'train',
        numExamples: tr.numExamples,
        tensors: global.header.tensors,
        totalBytes: payload.byteLength,
        encoding,
        metrics,
        ...(scaffold ? { controlVariateDelta: true } : {}),
      },
      payload,
      ...(onAccepted ? { onAccepted } : {}),
    };
  }

  /** Simulated straggler (`--partial-work`): E, or a uniform draw from [1, E-1] with probability partialWork. */
  private epochsToRun(asked: number): number {
    if (this.partialWork === undefined || asked < 2) return asked;
    if (!(this.partialRng() < this.partialWork)) return asked;
    return 1 + Math.floor(this.partialRng() * (asked - 1));
  }

  /** The live training worker; a dead one (crashed, failed, closed) is replaced by a fresh one. */
  private worker(): TrainWorker {
    this.trainer = liveWorker(this.trainer, () => new TrainWorker(this.data, this.backendPref, this.attack?.kind === 'label-flip'), 'training worker');
    return this.trainer;
  }

  /** The global model a task (train, evaluate, announce or promote) names, fetched once, signature- and sha256-verified. */
  verifiedModel(task: TaskMsg, conn: CoordinatorConnection, s: Session): Promise<CachedModel> {
    return this.fetch(task, conn, s);
  }

  private async fetch(task: TaskMsg, conn: CoordinatorConnection, s: Session): Promise<CachedModel> {
    // Before the download and before the cache: the signature binds run, version and sha256, and the sha256 check
    // below binds the bytes to it, so a model passes only if the coordinator's key vouched for exactly these bytes.
    this.trust.check(task);
    const c = this.cached;
    if (c && c.runId === task.runId && c.version === task.modelVersion && c.sha256 === task.modelSha256) return c;
    const req = { agentId: s.agentId, sessionToken: s.sessionToken, runId: task.runId, modelVersion: task.modelVersion };
    // Holding an older version of the run: the coordinator may send the deltas from it (compression.downlink).
    const held = c && c.runId === task.runId && c.version < task.modelVersion ? c : undefined;
    if (held) {
      try {
        const got = await conn.fetchModel({ ...req, haveVersion: held.version, haveSha256: held.sha256 });
        if (got.header.encoding) return this.keep(task, got.header, applyChain(held.weights, got.header.encoding, got.bytes));
        return this.keep(task, got.header, bytesToFloat32(got.bytes), got.sha256);
      } catch (err) {
        // A corrupted or mismatching delta is refused like a corrupted model; the full model may still be fine.
        if (!(err instanceof ValidationError || err instanceof RejectedUpdateError)) throw err;
        log.warn({ runId: task.runId, version: task.modelVersion, from: held.version, err: err.message }, 'model delta refused: fetching the full model');
      }
    }
    const { header, bytes, sha256 } = await conn.fetchModel(req);
    if (header.encoding) throw new ValidationError(`model download of ${task.runId} v${task.modelVersion}: a delta (${header.encoding}) came for a request that held no version`);
    return this.keep(task, header, bytesToFloat32(bytes), sha256);
  }

  /** Caches the model after checking its sha256 against the signed task: never train on bytes the coordinator did not vouch for. */
  private keep(task: TaskMsg, header: ModelHeaderMsg, weights: Float32Array, transportSha?: string): CachedModel {
    // The transport may have hashed the bytes on arrival; a reconstructed model is hashed here.
    const digest = transportSha ?? modelDigest(header.topologyJson, header.tensors as never, new Uint8Array(weights.buffer, weights.byteOffset, weights.byteLength));
    if (digest !== header.sha256 || digest !== task.modelSha256)
      throw new ValidationError(`model sha256 mismatch for ${task.runId} v${task.modelVersion}: got ${digest.slice(0, 12)}, announced ${task.modelSha256.slice(0, 12)}`);
    const h = header.encoding ? { ...header, totalBytes: weights.byteLength, encoding: '', baseVersion: 0 } : header;
    this.cached = { runId: task.runId, version: task.modelVersion, sha256: digest, header: h, weights };
    return this.cached;
  }
}
