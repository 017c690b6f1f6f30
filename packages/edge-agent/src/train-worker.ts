/** Worker thread of TaskExecutor: owns the tfjs backend and model, evaluates and trains so the agent's event loop never waits on a kernel. */
import { parentPort } from 'node:worker_threads';
import * as ml from '@fedge/ml';
import type { BackendInfo, BackendPreference, Dataset, EvalResult, RawTable, TrainResult, tf } from '@fedge/ml';
import { FedgeError, ValidationError, parseJsonField, taskPayloadSchema, type TaskPayload, type TensorSpecMsg } from '@fedge/proto';
import { encodeLegacy } from './data.js';
import { flipLabels } from './attack.js';

/** Main thread -> worker. */
export type ToWorker =
  /**
   * Once per worker, first message: the backend to initialise and the local data (raw tables, cloned). `labelFlip`
   * (`--attack label-flip`): train on flipped labels; the held-out split is encoded honestly.
   */
  | { type: 'init'; backend: BackendPreference; train: RawTable; holdout: RawTable; labelFlip?: boolean }
  /** One per task; `weights` (the global model) is transferred. Train settings absent: evaluate only. */
  | {
      type: 'task';
      id: number;
      topologyJson: string;
      tensors: TensorSpecMsg[];
      weights: Float32Array;
      train?: { epochs: number; batchSize: number; learningRate: number; seed: number };
      /** TrainConfig.task_json: the task and the fleet's preprocessing; empty: legacy softmax classification with SGD. */
      taskJson?: string;
      /** SCAFFOLD: c − c_i, added to every SGD gradient (transferred). */
      controlCorrection?: Float32Array;
      /** A simulated fleet's agent (fleet.ts): its own splits instead of the init data; `key` names them for the encoding cache. */
      data?: { key: string; train: RawTable; holdout: RawTable };
    }
  /** Stop task `id`: trainLocal checks between batches, so training ends within one batch. */
  | { type: 'abort'; id: number };

export type EvalMetrics = EvalResult;

/** Worker -> main thread. */
export type FromWorker =
  | { type: 'ready'; backend: BackendInfo }
  | { type: 'init-error'; message: string; code?: string }
  /** `weights` (the trained model, transferred) and `train` come with train tasks only. */
  | { type: 'result'; id: number; eval?: EvalMetrics; train?: TrainResult; weights?: Float32Array; learningRate?: number }
  /**
   * `validation`: the task's inputs were wrong (ValidationError), the worker is fine. `aborted`: the task was stopped.
   * Anything else may have left tfjs (or the wasm heap) in a bad state, so the main thread replaces the worker.
   */
  | { type: 'error'; id: number; message: string; validation: boolean; aborted: boolean };

const port = parentPort;
if (port) {
  let raw: { train: RawTable; holdout: RawTable } | undefined;
  let labelFlip = false;
  /** The splits encoded for the last task payload (or the legacy encoding, key ''): rounds of one run reuse them. */
  let encoded: { key: string; dataKey: string; train: Dataset; holdout: Dataset; payload?: TaskPayload } | undefined;
  let cached: { topologyJson: string; model: tf.LayersModel } | undefined;
  const running = new Map<number, AbortController>();
  const send = (m: FromWorker, transfer: ArrayBuffer[] = []): void => port.postMessage(m, transfer);

  async function runTask(m: Extract<ToWorker, { type: 'task' }>): Promise<void> {
    const ctl = new AbortController();
    running.set(m.id, ctl);
    try {
      if (!raw) throw new Error('training worker: task before init');
      const data = await encode(m.data ?? raw, m.taskJson ?? '', m.data?.key ?? '');
      const task = data.payload?.task;
      if (cached?.topologyJson !== m.topologyJson) {
        // One built model per topology: rounds of the same run only swap weights, as before the worker.
        cached?.model.dispose();
        cached = undefined;
        const model = await ml.modelFromBlob({ topology: JSON.parse(m.topologyJson) as unknown, tensors: m.tensors as never, weights: m.weights });
        cached = { topologyJson: m.topologyJson, model };
      }
      const model = cached.model;
      ml.setWeights(model, m.weights);
      if (task) ml.checkDataset(model, data.train, task);
      const ev = data.holdout.n > 0 ? await ml.evaluate(model, data.holdout, 500, task) : undefined;
      if (!m.train) return send({ type: 'result', id: m.id, ...(ev ? { eval: ev } : {}) });
      ctl.signal.throwIfAborted();
      const tr = await ml.trainLocal(model, data.train, { ...m.train, signal: ctl.signal, ...(task ? { task } : {}), ...(m.controlCorrection ? { controlCorrection: m.controlCorrection } : {}) });
      const { weights } = ml.getWeights(model);
      // The rate trainLocal stepped at (the task's optimizer's, else the legacy one): SCAFFOLD's variate update divides by it.
      const learningRate = task?.optimizer.learningRate ?? m.train.learningRate;
      send({ type: 'result', id: m.id, ...(ev ? { eval: ev } : {}), train: tr, weights, learningRate }, [weights.buffer as ArrayBuffer]);
    } catch (err) {
      send({
        type: 'error',
        id: m.id,
        message: err instanceof Error ? err.message : String(err),
        validation: err instanceof ValidationError,
        aborted: ctl.signal.aborted,
      });
    } finally {
      running.delete(m.id);
    }
  }

  /** Encodes the raw splits with the task's preprocessing (fleet normalization, vocabularies); errors name the column and row. */
  async function encode(r: { train: RawTable; holdout: RawTable }, taskJson: string, dataKey: string): Promise<NonNullable<typeof encoded>> {
    if (encoded?.key === taskJson && encoded.dataKey === dataKey) return encoded;
    encoded = undefined;
    if (!taskJson) {
      const legacy = await encodeLegacy(r);
      // Legacy encoding: class indices when the target is one, else a regression value.
      const train = labelFlip ? flipLabels(legacy.train, legacy.train.numClasses > 0 ? 'classification' : 'regression') : legacy.train;
      encoded = { key: '', dataKey, train, holdout: legacy.holdout };
      return encoded;
    }
    const payload = parseJsonField(taskPayloadSchema, taskJson, 'task_json', '; is this agent older than the coordinator?');
    const t = { type: payload.task.type, outputs: payload.task.outputs };
    const honest = ml.encodeTable(r.train, payload.preprocessing, t);
    // Simulated attacker: only the training split is poisoned; federated evaluation stays honest.
    const train = labelFlip ? flipLabels(honest, payload.task.type) : honest;
    let holdout: Dataset;
    try {
      holdout = ml.encodeTable(r.holdout, payload.preprocessing, t);
    } catch (err) {
      // Row numbers count within the split: say which one, or a held-out row reads like a training row.
      throw err instanceof ValidationError ? new ValidationError(`held-out split (--holdout): ${err.message}`) : err;
    }
    encoded = { key: taskJson, dataKey, payload, train, holdout };
    return encoded;
  }

  port.on('message', (m: ToWorker) => {
    switch (m.type) {
      case 'init':
        ml.initBackend(m.backend)
          .then((backend) => {
            raw = { train: m.train, holdout: m.holdout };
            labelFlip = m.labelFlip === true;
            send({ type: 'ready', backend });
          })
          // The code (E_BACKEND, E_VALIDATION) travels so the CLI reports a bad --backend exactly as before the worker.
          .catch((err: unknown) => send({ type: 'init-error', message: err instanceof Error ? err.message : String(err), ...(err instanceof FedgeError ? { code: err.code } : {}) }));
        break;
      case 'task':
        void runTask(m);
        break;
      case 'abort':
        running.get(m.id)?.abort(new Error('task aborted'));
        break;
    }
  });
}
