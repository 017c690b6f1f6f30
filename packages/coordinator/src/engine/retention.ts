/**
 * Model retention: which versions of a run keep their weights (the last K, the promoted, previous and canary ones,
 * the best, the target-reaching and the served ones), and the collector that deletes the others' blobs.
 *
 * Crash safety: the versions are first marked `collected` in the run record and the record is saved; only then are
 * blobs deleted, and only blobs no uncollected version of any run (saved or live) and no strategy state names. A crash
 * in between leaves an unreferenced blob (which `fedge model gc` deletes), never a record without its blob.
 *
 * Delta downloads (engine/downlink.ts) need no old blob: a chain is built from the kept deltas and the held version's
 * sha256, which the record keeps after collection; an agent holding a collected version still gets a chain.
 */
import type { KeepLast } from '../config/retention.js';
import type { RunRecord, Store } from '../store/store.js';
import type { RunContext } from './run-context.js';

export type KeepReason = 'recent' | 'current' | 'promoted' | 'previous' | 'canary' | 'best' | 'target' | 'served';

export interface RetentionPlan {
  keepLast: KeepLast;
  /** Versions whose weights stay, with why. */
  keep: { version: number; reasons: KeepReason[] }[];
  /** Versions not yet collected whose weights may go. */
  collect: number[];
}

/** The run's best version: highest central accuracy, else highest federated accuracy; undefined when none has either. */
export function bestVersion(run: Pick<RunRecord, 'versions'>): number | undefined {
  for (const key of ['centralAccuracy', 'federatedAccuracy'] as const) {
    let best: { version: number; acc: number } | undefined;
    for (const v of run.versions) {
      const acc = v[key];
      if (acc !== undefined && Number.isFinite(acc) && (!best || acc > best.acc)) best = { version: v.version, acc };
    }
    if (best) return best.version;
  }
  return undefined;
}

/** Pure: what retention keeps and collects of `run` with `keepLast`, given the versions agents report serving. */
export function planRetention(run: Readonly<RunRecord>, keepLast: KeepLast, served: readonly number[] = []): RetentionPlan {
  const reasons = new Map<number, KeepReason[]>();
  const pin = (v: number | undefined, why: KeepReason): void => {
    if (v === undefined) return;
    const list = reasons.get(v) ?? [];
    if (!list.includes(why)) list.push(why);
    reasons.set(v, list);
  };
  const newestFirst = [...run.versions].sort((a, b) => b.version - a.version);
  for (const [i, v] of newestFirst.entries()) if (keepLast === 'all' || i < keepLast) pin(v.version, 'recent');
  // A version newer than modelVersion belongs to a round still being recorded: always the newest, so 'recent'.
  pin(run.modelVersion, 'current');
  pin(run.promotion?.version, 'promoted');
  pin(run.promotion?.previous, 'previous');
  pin(run.promotion?.canary?.version, 'canary');
  pin(bestVersion(run), 'best');
  pin(run.reachedTarget?.version, 'target');
  for (const v of served) pin(v, 'served');
  const keep: RetentionPlan['keep'] = [];
  const collect: number[] = [];
  for (const v of [...run.versions].sort((a, b) => a.version - b.version)) {
    const why = reasons.get(v.version);
    if (why) keep.push({ version: v.version, reasons: why });
    else if (!v.collected) collect.push(v.version);
  }
  return { keepLast, keep, collect };
}

export interface GcResult {
  runId: string;
  keepLast: KeepLast;
  dryRun: boolean;
  /** Versions marked collected by this pass (dry run: that would be), with the bytes their blob frees (0: shared and still used). */
  collected: { version: number; sha256: string; bytes: number }[];
  /** Bytes of blobs deleted (dry run: that would be, ignoring sharing between runs). */
  freedBytes: number;
  kept: RetentionPlan['keep'];
}

export interface RetentionDeps {
  store: Store;
  /** The coordinator's keepLast for runs whose config has no `retention` (fedge serve --keep-versions). */
  defaultKeepLast: KeepLast;
  /** Versions of the run that online agents report serving. */
  served: (runId: string) => number[];
  /** sha256 of every uncollected version in live runs' records (saved or not yet saved). */
  liveShas: () => Set<string>;
}

export class ModelRetention {
  constructor(private readonly d: RetentionDeps) {}

  keepLastOf(run: Readonly<RunRecord>): KeepLast {
    return run.config.retention?.keepLast ?? this.d.defaultKeepLast;
  }

  /**
   * Applies retention to the run behind `ctx` (the live engine's context, so its own saves keep the marks). With
   * `retry`, blobs of versions collected earlier that are still stored are deleted too (finishes an interrupted pass).
   */
  async collect(ctx: RunContext, opts: { keepLast?: KeepLast; dryRun?: boolean; retry?: boolean } = {}): Promise<GcResult> {
    const run = ctx.run;
    const keepLast = opts.keepLast ?? this.keepLastOf(run);
    const plan = planRetention(run, keepLast, this.d.served(run.id));
    const shaOf = new Map(run.versions.map((v) => [v.version, v.sha256]));
    const result: GcResult = { runId: run.id, keepLast, dryRun: !!opts.dryRun, collected: [], freedBytes: 0, kept: plan.keep };
    if (opts.dryRun) {
      for (const version of plan.collect) {
        const sha256 = shaOf.get(version)!;
        const bytes = (await this.d.store.modelBytes(sha256)) ?? 0;
        result.collected.push({ version, sha256, bytes });
        result.freedBytes += bytes;
      }
      return result;
    }
    if (plan.collect.length) {
      ctx.markCollected(plan.collect, keepLast);
      await ctx.persist();
    }
    const retry = opts.retry ? run.versions.filter((v) => v.collected && !plan.collect.includes(v.version)).map((v) => v.sha256) : [];
    const live = this.d.liveShas();
    const freed = new Map<string, number>();
    for (const sha256 of new Set([...plan.collect.map((v) => shaOf.get(v)!), ...retry])) {
      if (live.has(sha256) || (await this.d.store.modelReferenced(sha256))) continue;
      const bytes = await this.d.store.deleteModel(sha256);
      freed.set(sha256, bytes);
      result.freedBytes += bytes;
    }
    for (const version of plan.collect) {
      const sha256 = shaOf.get(version)!;
      result.collected.push({ version, sha256, bytes: freed.get(sha256) ?? 0 });
    }
    return result;
  }
}
