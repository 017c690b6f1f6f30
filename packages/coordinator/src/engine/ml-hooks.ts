/** Bridges the engine to @fedge/ml: builds initial models, evaluates centrally, saves final models. */
import path from 'node:path';
import { ValidationError, type ModelBlob } from '@fedge/proto';
import type { RunConfig } from '../config/run-config.js';
import type { RunRecord } from '../store/store.js';
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

export async function initialModel(config: RunConfig): Promise<ModelBlob> {
  const m = await ml();
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

/** Central evaluation on the held-out digits, for the built-in MNIST models. */
export async function centralEvaluator(config: RunConfig): Promise<((blob: ModelBlob) => Promise<{ loss: number; accuracy: number }>) | undefined> {
  if (!config.centralEvaluation || typeof config.model !== 'string') return undefined;
  const m = await ml();
  const { test } = m.loadMnist();
  let model: Awaited<ReturnType<Ml['modelFromBlob']>> | undefined;
  return async (blob) => {
    if (!model) model = await m.modelFromBlob(blob);
    else m.setWeights(model, blob.weights);
    const r = await m.evaluate(model, test, 500);
    return { loss: r.loss, accuracy: r.accuracy };
  };
}

export async function saveFinalModel(dataDir: string, run: RunRecord, blob: ModelBlob): Promise<string> {
  const m = await ml();
  return m.saveModelDir(blob, path.resolve(dataDir, 'runs', run.id, 'model'));
}
