/** Runs one task: fetch and verify the global model, evaluate it on the held-out split, train, return the delta. */
import {
  ErrorFeedback,
  ValidationError,
  bytesToFloat32,
  modelDigest,
  type ModelHeaderMsg,
  type ResultHeaderMsg,
  type TaskMsg,
} from '@fedge/proto';
import type { tf } from '@fedge/ml';

type LayersModel = tf.LayersModel;
import type { CoordinatorConnection } from './transport/connection.js';
import type { LocalData } from './data.js';
import { moduleLogger } from './log.js';
import { codecOf, packUpdate } from './privacy.js';

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

export interface CachedModel { runId: string; version: number; sha256: string; header: ModelHeaderMsg; weights: Float32Array }

export interface Session { agentId: string; sessionToken: string }

/** Keeps one built tfjs model per topology so rounds only swap weights. */
export class TaskExecutor {
  private cached: CachedModel | undefined;
  private model: { topologyJson: string; model: LayersModel } | undefined;
  /** Error-feedback residual of the run this agent last trained for (one run at a time keeps memory at one model). */
  private feedback: { runId: string; ef: ErrorFeedback } | undefined;

  /** @param slowdown simulated device slowness: training time is multiplied by this factor */
  constructor(private readonly data: LocalData, private readonly slowdown = 1) {}

  /**
   * Runs the task. `onAccepted` (train results with error feedback) keeps the residual of what was sent: call it once
   * the coordinator accepted the result, so a rejected or lost upload does not count as sent.
   */
  async run(task: TaskMsg, conn: CoordinatorConnection, s: Session, signal: AbortSignal): Promise<{ header: ResultHeaderMsg; payload: Uint8Array; onAccepted?: () => void }> {
    const ml = await import('@fedge/ml');
    const global = await this.fetch(task, conn, s);
    const model = await this.modelFor(global);
    ml.setWeights(model, global.weights);

    const metrics: Record<string, number> = {};
    if (this.data.holdout.n > 0) {
      const ev = await ml.evaluate(model, this.data.holdout);
      metrics.eval_loss = ev.loss;
      metrics.eval_accuracy = ev.accuracy;
      metrics.eval_examples = ev.numExamples;
    }
    const base = { agentId: s.agentId, sessionToken: s.sessionToken, taskId: task.taskId, runId: task.runId, round: task.round, modelVersion: task.modelVersion };
    if (task.kind === 'evaluate') {
      return { header: { ...base, kind: 'evaluate', numExamples: 0, tensors: [], totalBytes: 0, encoding: '', metrics }, payload: new Uint8Array(0) };
    }
    const c = task.config;
    const tr = await ml.trainLocal(model, this.data.train, {
      epochs: c.epochs,
      batchSize: c.batchSize,
      learningRate: c.learningRate,
      seed: c.seed,
      signal,
    });
    if (this.slowdown > 1) await abortableSleep((this.slowdown - 1) * tr.seconds * 1000, signal);
    metrics.train_loss = tr.loss;
    metrics.train_accuracy = tr.accuracy;
    metrics.train_seconds = tr.seconds;
    metrics.samples_per_sec = tr.samplesPerSec;
    const { weights } = ml.getWeights(model);
    // Send the delta: it is what FedAvg averages, and what compression and clipping will act on.
    const delta = new Float32Array(weights.length);
    for (let i = 0; i < weights.length; i++) delta[i] = weights[i]! - global.weights[i]!;
    const codec = codecOf(c.codec);
    const packed = packUpdate(delta, c, codec !== 'float32' && c.errorFeedback ? this.feedbackFor(task.runId) : undefined);
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
      },
      payload,
      ...(packed.onAccepted ? { onAccepted: packed.onAccepted } : {}),
    };
  }

  private feedbackFor(runId: string): ErrorFeedback {
    if (this.feedback?.runId !== runId) this.feedback = { runId, ef: new ErrorFeedback() };
    return this.feedback.ef;
  }

  /** The global model a task (train, evaluate or announce) names, fetched once and sha256-verified. */
  verifiedModel(task: TaskMsg, conn: CoordinatorConnection, s: Session): Promise<CachedModel> {
    return this.fetch(task, conn, s);
  }

  private async fetch(task: TaskMsg, conn: CoordinatorConnection, s: Session): Promise<CachedModel> {
    const c = this.cached;
    if (c && c.runId === task.runId && c.version === task.modelVersion && c.sha256 === task.modelSha256) return c;
    const { header, bytes, sha256 } = await conn.fetchModel({ agentId: s.agentId, sessionToken: s.sessionToken, runId: task.runId, modelVersion: task.modelVersion });
    // Never train on a model whose bytes differ from what the coordinator announced (the transport may have hashed them on arrival).
    const digest = sha256 ?? modelDigest(header.topologyJson, header.tensors as never, bytes);
    if (digest !== header.sha256 || digest !== task.modelSha256)
      throw new ValidationError(`model sha256 mismatch for ${task.runId} v${task.modelVersion}: got ${digest.slice(0, 12)}, announced ${task.modelSha256.slice(0, 12)}`);
    this.cached = { runId: task.runId, version: task.modelVersion, sha256: digest, header, weights: bytesToFloat32(bytes) };
    return this.cached;
  }

  private async modelFor(g: CachedModel): Promise<LayersModel> {
    if (this.model?.topologyJson === g.header.topologyJson) return this.model.model;
    const ml = await import('@fedge/ml');
    this.model?.model.dispose();
    const model = await ml.modelFromBlob({ topology: JSON.parse(g.header.topologyJson), tensors: g.header.tensors as never, weights: g.weights });
    this.model = { topologyJson: g.header.topologyJson, model };
    return model;
  }
}

