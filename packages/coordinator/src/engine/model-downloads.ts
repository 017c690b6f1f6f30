/** Model downloads: exactly the version a task or an admin names (held by the run's engine, else read from the store), and strategy blobs. */
import { NotFoundError, type ModelBlob } from '@fedge/proto';
import type { RunRecord, Store } from '../store/store.js';
import { makeGlobalModel, type GlobalModel } from './global-model.js';
import type { ModelRetention } from './retention.js';
import type { RunEngine } from './run-engine.js';

export interface ModelDownloadsDeps {
  store: Store;
  /** The coordinator's engines by run id (finished ones included). */
  engines: ReadonlyMap<string, RunEngine>;
  /** For the error naming a version retention removed: what the run keeps now. */
  retention: Pick<ModelRetention, 'keepLastOf'>;
}

export class ModelDownloads {
  /** Strategy blobs (SCAFFOLD's variate) in their downloadable form, built once per blob (see strategyBlob). */
  private readonly variateDownloads = new WeakMap<ModelBlob, GlobalModel>();

  constructor(private readonly d: ModelDownloadsDeps) {}

  /**
   * Exactly version `version` of a run (0 is the initial model, never "latest": an agent must get the model its
   * task names). Versions no longer held in memory, or of a finished run, come from the store.
   */
  async fetch(runId: string, version: number, blobSha256 = ''): Promise<{ model: GlobalModel; engine?: RunEngine }> {
    const e = this.d.engines.get(runId);
    if (blobSha256) return { model: this.strategyBlob(runId, version, blobSha256), ...(e ? { engine: e } : {}) };
    const held = e?.modelVersion(version);
    if (e && held) return { model: held, engine: e };
    const run = e?.run ?? (await this.d.store.getRun(runId));
    if (!run) throw new NotFoundError(`run_id: run "${runId}" not found`);
    return { model: await this.stored(run, version), ...(e ? { engine: e } : {}) };
  }

  /** For admin downloads: the run's latest global model when `version` is 0, else exactly that version. */
  async latestOr(runId: string, version = 0): Promise<GlobalModel> {
    if (version <= 0) {
      const e = this.d.engines.get(runId);
      if (e) return e.globalModel;
      const latest = (await this.d.store.getRun(runId))?.versions.at(-1);
      if (!latest) throw new NotFoundError(`run "${runId}" has no stored model`);
      version = latest.version;
    }
    return (await this.fetch(runId, version)).model;
  }

  /** Version `version` of `run`, checked against its registered sha256; a version retention removed is refused naming why. */
  async stored(run: Readonly<RunRecord>, version: number): Promise<GlobalModel> {
    const rec = run.versions.find((x) => x.version === version);
    if (rec?.collected) {
      const kept = this.d.retention.keepLastOf(run);
      throw new NotFoundError(
        `model_version: version ${version} of run ${run.id} was removed by model retention at ${rec.collected.at} (keepLast ${rec.collected.keepLast}; ` +
          `the run now keeps ${kept === 'all' ? 'every version' : `the last ${kept} versions`} plus promoted, canary, best and served ones). Its record (sha256, metrics) remains; ` +
          `see fedge model list --run ${run.id}. To keep more, set retention.keepLast in the run config or fedge serve --keep-versions.`,
      );
    }
    const held = this.d.engines.get(run.id)?.modelVersion(version);
    if (held) return held;
    const blob = rec && (await this.d.store.getModel(rec.sha256));
    if (!rec || !blob) throw new NotFoundError(`run "${run.id}" has no model version ${version} (latest is ${run.versions.at(-1)?.version ?? 'none'})`);
    const g = makeGlobalModel(run.id, version, blob);
    if (g.sha256 !== rec.sha256) throw new NotFoundError(`model_version: stored version ${version} of run ${run.id} does not match its registered sha256`);
    return g;
  }

  /**
   * A live run's strategy blob by sha256 (SCAFFOLD's server control variate, which training tasks name), sent with the
   * same header and chunks as a model; only the live strategy's current or previous blob, so no other stored blob leaks.
   */
  private strategyBlob(runId: string, version: number, sha256: string): GlobalModel {
    const e = this.d.engines.get(runId);
    if (!e) throw new NotFoundError(`run_id: run "${runId}" is not running, so it has no control variate to fetch`);
    const blob = e.strategy.controlVariates?.find(sha256);
    if (!blob) throw new NotFoundError(`blob_sha256: run "${runId}" has no current control variate ${sha256.slice(0, 12)} (its strategy is ${e.run.config.strategy.name}; a newer round may have replaced it)`);
    // Every agent of the round fetches the same variate: hash and frame it once per blob, not once per download.
    let g = this.variateDownloads.get(blob);
    if (!g || g.version !== version || g.header.runId !== runId) this.variateDownloads.set(blob, (g = makeGlobalModel(runId, version, blob)));
    return g;
  }
}
