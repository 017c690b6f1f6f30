/** Attaches live experiment tracking (MLflow) to a run's engine: where it logs, and what the run's end uploads. */
import { readFile, readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import type { ModelBlob } from '@fedge/proto';
import type { RunRecord } from '../store/store.js';
import type { RunEngine } from '../engine/run-engine.js';
import { ml } from '../engine/ml-hooks.js';
import { DEFAULT_MLFLOW_EXPERIMENT } from '../config/tracking-config.js';
import type { RunConfig } from '../config/run-config.js';
import { moduleLogger } from '../log.js';
import { MlflowTracker, type Artifact, type MlflowTarget } from './mlflow-tracker.js';

export { MlflowTracker } from './mlflow-tracker.js';
export type { MlflowTarget } from './mlflow-tracker.js';

const log = moduleLogger('tracking');

/** The run config's tracking server, else the coordinator's (fedge serve --mlflow-tracking-uri); none: no tracking. */
export function mlflowTarget(config: RunConfig, serverUri: string | undefined): MlflowTarget | undefined {
  const uri = config.tracking?.mlflow ?? serverUri;
  if (!uri) {
    if (config.tracking?.experiment) log.warn({ experiment: config.tracking.experiment }, 'tracking.experiment is set but no MLflow server is: add tracking.mlflow to the run config or start fedge serve with --mlflow-tracking-uri');
    return undefined;
  }
  return { uri, experiment: config.tracking?.experiment ?? DEFAULT_MLFLOW_EXPERIMENT };
}

/** The final model (its saved files under model/), its ONNX export and, with a task, the resolved preprocessing. */
async function finalArtifacts(run: Readonly<RunRecord>, blob: ModelBlob): Promise<Artifact[]> {
  const files: Artifact[] = [];
  if (run.modelPath) {
    // modelPath names the model.json; the directory holds it, its weights and the run's task/preprocessing.
    const dir = (await stat(run.modelPath)).isDirectory() ? run.modelPath : path.dirname(run.modelPath);
    for (const f of await readdir(dir, { withFileTypes: true }))
      if (f.isFile()) files.push({ path: `model/${f.name}`, bytes: new Uint8Array(await readFile(path.join(dir, f.name))) });
  }
  try {
    const m = await ml();
    const e = m.exportOnnx(blob, {
      modelVersion: run.modelVersion,
      metadata: { 'fedge.run': run.id, 'fedge.version': String(run.modelVersion) },
      ...(run.data ? { task: run.data.task, preprocessing: run.data.preprocessing } : {}),
    });
    files.push({ path: 'model.onnx', bytes: e.bytes });
  } catch (err) {
    // A model the exporter does not cover still has its tfjs files logged.
    log.warn({ runId: run.id, err: (err as Error).message }, 'MLflow tracking: no ONNX export of the final model');
  }
  if (run.data) files.push({ path: 'preprocessing.json', bytes: Buffer.from(`${JSON.stringify({ task: run.data.task, preprocessing: run.data.preprocessing }, null, 2)}\n`) });
  return files;
}

/** Logs `engine`'s run to `target` as it goes; returns the tracker (flush/close it when the coordinator stops). */
export function trackRun(engine: RunEngine, target: MlflowTarget): MlflowTracker {
  const t = new MlflowTracker(target, { log: log.child({ runId: engine.run.id }) });
  t.start(engine.run);
  const onUpdate = (run: RunRecord): void => t.observe(run);
  engine.on('update', onUpdate);
  engine.once('end', (run) => {
    engine.off('update', onUpdate);
    const blob = engine.globalModel.blob;
    t.end(run, () => finalArtifacts(run, blob));
  });
  return t;
}
