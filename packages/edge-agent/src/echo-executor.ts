/** `--simulate N --echo`: a task executor that downloads and verifies the model like a real agent, then answers with a fixed small delta instead of training. */
import { ValidationError, modelDigest, type ModelHeaderMsg, type ResultHeaderMsg, type TaskMsg } from '@fedge/proto';
import { TaskExecutor, type CachedModel, type Session } from './executor.js';
import type { CoordinatorConnection } from './transport/connection.js';
import type { LocalData } from './data.js';
import { packUpdate } from './privacy.js';

/**
 * What every echo agent of a fleet shares: the last verified model's header (never the weights: ten thousand
 * cached copies of a model would not fit), and the delta per model size, so a fleet holds one of each.
 */
export class EchoShared {
  private header: { sha256: string; header: ModelHeaderMsg } | undefined;
  private delta: Float32Array | undefined;

  rememberHeader(sha256: string, header: ModelHeaderMsg): void {
    this.header = { sha256, header };
  }

  headerOf(sha256: string): ModelHeaderMsg | undefined {
    return this.header?.sha256 === sha256 ? this.header.header : undefined;
  }

  /**
   * A deterministic delta of small values (|x| <= 1e-3), the same for every agent: a FedAvg of echo updates moves the
   * model by exactly this delta, which is what a test can check. Copied per use (packUpdate may clip it in place).
   */
  deltaOf(params: number): Float32Array {
    if (this.delta?.length !== params) {
      const d = new Float32Array(params);
      for (let i = 0; i < params; i++) d[i] = (((i * 7919) % 17) - 8) * 1.25e-4;
      this.delta = d;
    }
    return this.delta.slice();
  }
}

export class EchoExecutor extends TaskExecutor {
  /** sha256 of the model this agent downloaded and verified last: a second task on it does not download again. */
  private held: string | undefined;

  constructor(private readonly local: LocalData, private readonly echo: EchoShared) {
    super(local);
  }

  override async run(task: TaskMsg, conn: CoordinatorConnection, s: Session): Promise<{ header: ResultHeaderMsg; payload: Uint8Array }> {
    const header = await this.fetchHeader(task, conn, s);
    const base = { agentId: s.agentId, sessionToken: s.sessionToken, taskId: task.taskId, runId: task.runId, round: task.round, modelVersion: task.modelVersion };
    const n = Math.max(1, this.local.holdout.n || this.local.train.n);
    if (task.kind === 'evaluate') {
      return { header: { ...base, kind: 'evaluate', numExamples: 0, tensors: [], totalBytes: 0, encoding: '', metrics: { eval_loss: 1, eval_accuracy: 0.5, eval_examples: n } }, payload: new Uint8Array(0) };
    }
    if (task.config.controlVariateSha256) throw new ValidationError('--echo agents do not run SCAFFOLD tasks (they keep no control variate); simulate with training, without --echo');
    const params = header.tensors.reduce((sum, t) => sum + t.shape.reduce((a, b) => a * b, 1), 0);
    const { payload, encoding, metrics } = packUpdate(this.echo.deltaOf(params), task.config);
    return {
      header: { ...base, kind: 'train', numExamples: this.local.train.n, tensors: header.tensors, totalBytes: payload.byteLength, encoding, metrics: { ...metrics, train_loss: 1, train_accuracy: 0.5, train_seconds: 0 } },
      payload,
    };
  }

  /** Echo agents serve nothing (the fleet refuses --serve), so no caller needs the weights. */
  override verifiedModel(): Promise<CachedModel> {
    return Promise.reject(new ValidationError('--echo agents keep no model weights to serve'));
  }

  /** Downloads the task's model and checks it as the real executor does (signature, sha256), keeping only the header. */
  private async fetchHeader(task: TaskMsg, conn: CoordinatorConnection, s: Session): Promise<ModelHeaderMsg> {
    this.trust.check(task);
    const known = this.echo.headerOf(task.modelSha256);
    if (known && this.held === task.modelSha256) return known;
    const { header, bytes, sha256 } = await conn.fetchModel({ agentId: s.agentId, sessionToken: s.sessionToken, runId: task.runId, modelVersion: task.modelVersion });
    if (header.encoding) throw new ValidationError(`model download of ${task.runId} v${task.modelVersion}: a delta (${header.encoding}) came for a request that held no version`);
    const digest = sha256 ?? modelDigest(header.topologyJson, header.tensors as never, bytes);
    if (digest !== header.sha256 || digest !== task.modelSha256)
      throw new ValidationError(`model sha256 mismatch for ${task.runId} v${task.modelVersion}: got ${digest.slice(0, 12)}, announced ${task.modelSha256.slice(0, 12)}`);
    this.held = digest;
    this.echo.rememberHeader(digest, header);
    return header;
  }
}
