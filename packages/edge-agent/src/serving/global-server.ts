/**
 * Serves the federation's latest global model: every new version the agent hears of (announce tasks, or the
 * model of a train/evaluate task) is fetched and sha256-verified by the caller, then exported to ONNX here and
 * hot-swapped into the slot. Offers are serialized; an offer older than what is loaded or queued is skipped,
 * so a burst of versions loads only the newest. With the run's task and preprocessing (from the task payload) the
 * export takes raw columns and names its outputs (see @fedge/ml onnx/preprocess.ts).
 */
import type { ModelBlob, Preprocessing, ResolvedTask } from '@fedge/proto';
import type { ModelSlot } from './model-slot.js';
import { moduleLogger } from '../log.js';

const log = moduleLogger('serving');

export interface ExportSettings {
  quantize: 'none' | 'int8';
  activations: 'dynamic' | 'static';
  /** Rows for static calibration: the agent's local training split. */
  calibration?: { x: Float32Array; n: number };
}

export interface VersionRef { runId: string; version: number; sha256: string }

/** A canary promote's A/B split: the offered version gets `fraction` of requests, `stable` (loaded before it) the rest. */
export interface CanarySplit { stable: number; fraction: number }

/** What the run's task payload says about the model (TaskPayload in @fedge/proto, TrainConfig.task_json). */
export interface ServingMeta { task?: ResolvedTask; preprocessing?: Preprocessing }

export class GlobalModelServer {
  private chain: Promise<void> = Promise.resolve();
  private latest: VersionRef | undefined;
  loaded: VersionRef | undefined;
  /** The version loaded before `loaded` (the slot's previous): a rollback to it is a swap, not an export. */
  private before: VersionRef | undefined;
  /** Runs with a promoted version: only promote offers count for them (the coordinator decides what is served). */
  private readonly pinned = new Set<string>();
  /**
   * The last task/preprocessing seen per run: announce and promote tasks carry no training payload, and a run's
   * preprocessing is fixed before round 1, so an offer without `meta` uses what an earlier offer of the run brought.
   */
  private readonly runMeta = new Map<string, ServingMeta>();

  constructor(readonly slot: ModelSlot, private readonly settings: ExportSettings) {}

  private newer(v: VersionRef, than: VersionRef | undefined): boolean {
    return !than || v.runId !== than.runId || v.version > than.version;
  }

  /** True when `v` would be loaded: not the version already loaded or queued (nor older, within a run). */
  wants(v: VersionRef): boolean {
    return !this.pinned.has(v.runId) && this.newer(v, this.latest);
  }

  /** The run's task and preprocessing as offers brought them (data drift bins its inputs by them). */
  metaOf(runId: string): ServingMeta | undefined {
    return this.runMeta.get(runId);
  }

  /** Records a run's task and preprocessing for its later offers (the lead's hook when a task payload arrives). */
  setRunMeta(runId: string, meta: ServingMeta): void {
    if (meta.task !== undefined || meta.preprocessing !== undefined) this.runMeta.set(runId, meta);
  }

  /**
   * Queues `v`; `blob` returns its verified weights (called only if `v` is still the newest when its turn comes).
   * A `promoted` offer is taken whatever its version (a rollback goes back) and pins its run to promotions.
   * `meta`: the run's task and preprocessing (remembered for the run, see setRunMeta); the export then takes raw
   * columns. Without it (and none remembered) the model is served on its encoded input, as before.
   */
  offer(v: VersionRef, blob: () => Promise<ModelBlob>, promoted = false, meta?: ServingMeta, split?: CanarySplit, stableOnly = false): Promise<void> {
    if (meta) this.setRunMeta(v.runId, meta);
    if (promoted) {
      this.pinned.add(v.runId);
      // The stable side of a canary announced again (a reconnect, a coordinator restart) while this agent already
      // serves it beside the candidate: nothing changes, and the health window keeps its evidence.
      const s = this.slot.split;
      if (stableOnly && s?.source === 'canary' && s.stable === String(v.version) && this.before && same(this.before, v)) return this.chain;
      const l = this.latest;
      // Already loaded or queued: only the split changes (a canary started, completed or widened on the same version).
      if (l && same(l, v)) return (this.chain = this.chain.then(() => this.applySplit(v, split)));
    } else if (!this.wants(v)) return this.chain;
    this.latest = v;
    this.chain = this.chain.then(async () => {
      if (this.latest !== v) return; // superseded while waiting
      const prev = this.slot.previous;
      if (this.before && same(this.before, v) && prev?.version === String(v.version)) {
        // A rollback to the version loaded before (a failed canary): swap at once instead of exporting it again, so
        // the broken version stops answering now.
        this.slot.rollback();
        [this.loaded, this.before] = [v, this.loaded];
        this.applySplit(v, split);
        log.info({ runId: v.runId, version: v.version }, 'serving the previous version again (swapped back)');
        return;
      }
      const t0 = performance.now();
      const m = this.runMeta.get(v.runId);
      try {
        const ml = await import('@fedge/ml');
        const e = await ml.exportOnnxCalibrated(await blob(), {
          quantize: this.settings.quantize,
          activations: this.settings.activations,
          modelVersion: v.version,
          metadata: { 'fedge.run': v.runId, 'fedge.version': String(v.version), 'fedge.sha256': v.sha256 },
          // Calibration rows are the agent's encoded training split: the ranges are those of the model's layers,
          // which see encoded values whether or not the graph encodes raw inputs in front of them.
          ...(this.settings.calibration ? { calibration: this.settings.calibration } : {}),
          ...(m?.preprocessing ? { preprocessing: m.preprocessing } : {}),
          ...(m?.task ? { task: m.task } : {}),
        });
        const exportMs = performance.now() - t0;
        await this.slot.load(e.bytes, String(v.version), { run: v.runId, global_version: v.version, source_sha256: v.sha256, quantization: e.quantization });
        [this.before, this.loaded] = [this.loaded, v];
        this.applySplit(v, split);
        log.info({ runId: v.runId, version: v.version, bytes: e.bytes.length, quantization: e.quantization, inputs: e.inputs.map((i) => i.name), outputs: e.outputs.map((o) => o.name), exportMs: Math.round(exportMs), totalMs: Math.round(performance.now() - t0) }, 'serving new global model version');
      } catch (err) {
        // Keep serving what is loaded; a later version gets its own chance.
        if (this.latest === v) this.latest = this.loaded;
        log.error({ runId: v.runId, version: v.version, err: (err as Error).message }, 'could not serve global model version');
      }
    });
    return this.chain;
  }

  /** Sets the canary's split for `v` (loaded now), or clears a canary split when the promote carries none. */
  private applySplit(v: VersionRef, split: CanarySplit | undefined): void {
    if (!this.loaded || !same(this.loaded, v)) return;
    if (split && split.fraction > 0) {
      const stable = String(split.stable);
      if (this.slot.previous?.version !== stable) {
        // The coordinator sends the stable version first; without it loaded the candidate answers alone here.
        log.warn({ runId: v.runId, version: v.version, stable: split.stable }, 'canary: the stable version is not loaded; serving the candidate alone');
        return;
      }
      const cur = this.slot.split;
      // The same split again (re-announced after a reconnect): keep it, and its window.
      if (cur?.source === 'canary' && cur.stable === stable && cur.candidate === String(v.version) && cur.fraction === split.fraction) return;
      this.slot.setSplit({ stable, candidate: String(v.version), fraction: split.fraction, source: 'canary' });
      log.info({ runId: v.runId, candidate: v.version, stable: split.stable, fraction: split.fraction }, 'canary: A/B split set');
    } else if (this.slot.split) {
      this.slot.setSplit(undefined);
      log.info({ runId: v.runId, version: v.version }, 'canary over: serving one version');
    }
  }
}

const same = (a: VersionRef, b: VersionRef): boolean => a.runId === b.runId && a.version === b.version && a.sha256 === b.sha256;
