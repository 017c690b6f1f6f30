/** Bridges the engine to @fedge/ml: builds initial models, evaluates centrally, saves final models. */
import path from 'node:path';
import { LOSSES_FOR, ValidationError, type ModelBlob } from '@fedge/proto';
import type { RunConfig } from '../config/run-config.js';
import type { RunData, RunRecord } from '../store/store.js';
import { moduleLogger } from '../log.js';

const log = moduleLogger('ml');

type Ml = typeof import('@fedge/ml');
let mlPromise: Promise<Ml> | undefined;

/** Loads tfjs lazily: admin-only CLI commands never pay for it. */
export async function ml(): Promise<Ml> {
  mlPromise ??= (async () => {
    const m = await import('@fedge/ml');
    const info = await m.initBackend(process.env.FEDGE_BACKEND as never);
    log.info({ backend: info.name, simd: info.simd }, `tfjs backend: ${info.note}`);
    return m;
  })();
  return mlPromise;
}

/**
 * Version 0 of a run. The built-in MLP is sized from the data: undefined until the statistics step has `data`
 * (seeded, so a resumed run rebuilds the same weights).
 */
export async function initialModel(config: RunConfig, data?: RunData): Promise<ModelBlob | undefined> {
  const m = await ml();
  if (typeof config.model === 'object' && 'builtin' in config.model) {
    if (!data) return undefined;
    const model = m.createMlp({ inputWidth: data.preprocessing.inputWidth, hidden: config.model.hidden, outputs: data.task.outputs, activation: m.outputActivationFor(data.task.type), seed: config.seed });
    try {
      return m.modelToBlob(model);
    } finally {
      model.dispose();
    }
  }
  if (typeof config.model === 'string') {
    const model = m.createBuiltinModel(config.model, config.seed);
    try {
      return m.modelToBlob(model);
    } finally {
      model.dispose();
    }
  }
  try {
    return await m.loadModelDir(config.model.path);
  } catch (err) {
    throw new ValidationError(`model.path: cannot load "${config.model.path}": ${(err as Error).message}`, { cause: err });
  }
}

/**
 * What can be checked of the user's model before any data is seen, so `fedge run start` refuses it at once: its
 * output activation against the task's loss (sizes are checked by the statistics step, against the data).
 */
export async function precheckModel(config: RunConfig, blob: ModelBlob): Promise<void> {
  if (!config.task) return;
  const m = await ml();
  const model = await m.modelFromBlob(blob);
  try {
    m.checkOutputActivation(model, config.task.loss ?? LOSSES_FOR[config.task.type][0]!);
  } catch (err) {
    throw new ValidationError(`model: ${(err as Error).message}`, { cause: err });
  } finally {
    model.dispose();
  }
}

/** config.evaluation's file is read once at `fedge run start`, so a wrong path or column fails the start, not round 1. */
export async function precheckEvaluation(config: RunConfig): Promise<void> {
  const ev = config.evaluation;
  if (!ev) return;
  const m = await ml();
  try {
    await m.loadTable(ev.data, { ...(ev.target !== undefined ? { target: (Array.isArray(ev.target) ? ev.target : [ev.target]).map(String) } : {}), missing: ev.missing });
  } catch (err) {
    throw new ValidationError(`evaluation.data: ${(err as Error).message}`, { cause: err });
  }
}

export interface CentralEval { loss: number; accuracy: number; metrics: Record<string, number> }

/**
 * Central evaluation: on the user's held-out file (config.evaluation, encoded with the run's preprocessing), else on
 * the held-out MNIST digits for the built-in MNIST models; none otherwise.
 */
export async function centralEvaluator(config: RunConfig, data?: RunData): Promise<((blob: ModelBlob) => Promise<CentralEval>) | undefined> {
  if (!config.centralEvaluation) return undefined;
  const m = await ml();
  let test: import('@fedge/ml').Dataset;
  const ev = config.evaluation;
  if (ev && data) {
    const target = ev.target === undefined ? data.preprocessing.targets.map((t) => t.name) : (Array.isArray(ev.target) ? ev.target : [ev.target]).map(String);
    let table;
    try {
      table = await m.loadTable(ev.data, { target, missing: ev.missing });
      if (ev.holdout) table = m.splitTable(table, ev.holdout.fraction, ev.holdout.seed).holdout;
      test = m.encodeTable(table, data.preprocessing, data.task);
    } catch (err) {
      throw new ValidationError(`evaluation.data: ${(err as Error).message}`, { cause: err });
    }
  } else if (typeof config.model === 'string') test = m.loadMnist().test;
  else return undefined;
  let model: Awaited<ReturnType<Ml['modelFromBlob']>> | undefined;
  return async (blob) => {
    if (!model) model = await m.modelFromBlob(blob);
    else m.setWeights(model, blob.weights);
    const r = await m.evaluate(model, test, 500, data?.task);
    return { loss: r.loss, accuracy: r.accuracy, metrics: r.metrics };
  };
}

/** The final model, with the run's task and preprocessing beside it so `fedge model export --model` serves raw inputs. */
export async function saveFinalModel(dataDir: string, run: RunRecord, blob: ModelBlob): Promise<string> {
  const m = await ml();
  return m.saveModelDir(blob, path.resolve(dataDir, 'runs', run.id, 'model'), run.data ? { task: run.data.task, preprocessing: run.data.preprocessing } : undefined);
}
