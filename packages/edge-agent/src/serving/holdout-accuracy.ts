/**
 * Accuracy of a served version on the agent's labelled holdout, for the canary's `minAccuracyDelta`: computed once per
 * loaded version (off the request path, on at most MAX_ROWS rows) when the model takes the holdout's encoded rows as
 * its one FP32 input and answers one score per class (MNIST-style runs). Models on raw columns (a run's preprocessing
 * inside the graph) are not scored here: their accuracy comes from the run's own evaluations.
 */
import * as ort from 'onnxruntime-node';
import type { Dataset } from '@fedge/ml';
import type { LoadedModel, ModelSlot } from './model-slot.js';
import { moduleLogger } from '../log.js';

const log = moduleLogger('serving');

export const MAX_ROWS = 512;
const CHUNK = 128;

/** Whether `m` takes `ds`'s rows and scores its classes; the reason when not (logged once). */
function fits(m: LoadedModel, ds: Dataset): string | undefined {
  const input = m.inputs[0];
  const output = m.outputs[0];
  if (m.inputs.length !== 1 || !input || input.datatype !== 'FP32' || input.shape.length !== 2 || (input.shape[1] !== -1 && input.shape[1] !== ds.features))
    return 'the model does not take the holdout\'s encoded rows as one FP32 input';
  if (!(ds.y instanceof Int32Array) || ds.numClasses < 2 || !output || output.shape.length !== 2 || output.shape[1] !== ds.numClasses) return 'not a classification model over the holdout\'s classes';
  return undefined;
}

export class HoldoutScorer {
  /** By version and sha256: a number, or null when the version cannot be scored. */
  private readonly scores = new Map<string, number | null>();
  private readonly running = new Set<string>();
  private data: Promise<Dataset | undefined> | undefined;

  constructor(private readonly slot: ModelSlot, private readonly holdout: () => Promise<Dataset | undefined>) {}

  /** The version's accuracy if known; starts computing it (in the background) otherwise. */
  accuracy(version: string): number | undefined {
    const m = version === this.slot.current?.version ? this.slot.current : version === this.slot.previous?.version ? this.slot.previous : undefined;
    if (!m) return undefined;
    const key = `${m.version}:${m.sha256}`;
    const s = this.scores.get(key);
    if (s !== undefined) return s ?? undefined;
    if (!this.running.has(key)) {
      this.running.add(key);
      void this.score(m.version, key).finally(() => this.running.delete(key));
    }
    return undefined;
  }

  private async score(version: string, key: string): Promise<void> {
    this.data ??= this.holdout().catch((err: unknown) => (log.warn({ err: (err as Error).message }, 'canary: holdout unavailable for accuracy'), undefined));
    const ds = await this.data;
    if (!ds || ds.n === 0) return void this.scores.set(key, null);
    const m = this.slot.acquire(version);
    if (!m) return;
    try {
      const why = fits(m, ds);
      if (why) {
        log.info({ version, reason: why }, 'canary: no holdout accuracy for this version');
        return void this.scores.set(key, null);
      }
      const n = Math.min(ds.n, MAX_ROWS);
      const d = ds.features;
      const k = ds.numClasses;
      const y = ds.y as Int32Array;
      let right = 0;
      for (let at = 0; at < n; at += CHUNK) {
        const rows = Math.min(CHUNK, n - at);
        const x = new ort.Tensor('float32', ds.x.slice(at * d, (at + rows) * d), [rows, d]);
        const out = (await m.session.run({ [m.inputs[0]!.name]: x }, [m.outputs[0]!.name]))[m.outputs[0]!.name]!.data as Float32Array;
        for (let r = 0; r < rows; r++) {
          let best = 0;
          for (let j = 1; j < k; j++) if (out[r * k + j]! > out[r * k + best]!) best = j;
          if (best === y[at + r]) right++;
        }
      }
      this.scores.set(key, right / n);
    } catch (err) {
      log.warn({ version, err: (err as Error).message }, 'canary: holdout accuracy failed');
      this.scores.set(key, null);
    } finally {
      this.slot.release(m);
    }
  }
}
