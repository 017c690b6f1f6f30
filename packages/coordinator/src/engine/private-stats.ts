/**
 * The statistics step of a private run: the Gaussian mechanism on the fleet's numeric statistics (each agent's
 * contribution clipped in L2, one accounted step at q = 1), and the user's own normalization, which costs no privacy.
 */
import { DataStepError, GaussianSampler, type ColumnProfile, type DataProfile, type FeatureSpec, type Preprocessing } from '@fedge/proto';
import type { TaskConfig } from '../config/task-config.js';

export interface NoisedStatistics {
  columns: ColumnProfile[];
  /** Std of the noise on every coordinate (noiseMultiplier x clipNorm). */
  noiseStd: number;
  /** Agents whose vector was scaled down to the clip norm. */
  clipped: number;
}

/**
 * Per agent, the vector of (count, sum, sumSq) over `names` (numeric columns) is clipped to `clipNorm`; the sum of the
 * clipped vectors gets N(0, (z clipNorm)^2) on every coordinate, so adding or removing one agent's data is
 * (z)-Gaussian-DP on these statistics. Min and max are not released: they are set to the noised mean. The noised
 * columns replace the exact ones; other columns (categorical, block, targets) are kept.
 */
export function noiseNumericStatistics(
  profiles: readonly DataProfile[],
  combined: readonly ColumnProfile[],
  names: readonly string[],
  clipNorm: number,
  noiseMultiplier: number,
  sampler: GaussianSampler = new GaussianSampler(),
): NoisedStatistics {
  const k = names.length;
  const total = new Float64Array(3 * k);
  let clipped = 0;
  for (const p of profiles) {
    const v = new Float64Array(3 * k);
    names.forEach((name, j) => {
      const c = p.columns.find((x) => x.name === name);
      if (c?.type !== 'numeric') return;
      v[3 * j] = c.count;
      v[3 * j + 1] = c.sum;
      v[3 * j + 2] = c.sumSq;
    });
    let norm = 0;
    for (const x of v) norm += x * x;
    norm = Math.sqrt(norm);
    const scale = norm > clipNorm ? clipNorm / norm : 1;
    if (scale < 1) clipped++;
    for (let i = 0; i < v.length; i++) total[i]! += v[i]! * scale;
  }
  const std = noiseMultiplier * clipNorm;
  for (let i = 0; i < total.length; i++) total[i]! += std * sampler.next();
  const columns = combined.map((c): ColumnProfile => {
    const j = names.indexOf(c.name);
    if (j < 0 || c.type !== 'numeric') return c;
    const count = Math.max(1, Math.round(total[3 * j]!));
    const sum = total[3 * j + 1]!;
    // Noise may push the second moment below the square of the mean; a variance is never negative.
    const sumSq = Math.max(total[3 * j + 2]!, (sum * sum) / count);
    const mean = sum / count;
    return { ...c, count, missing: 0, sum, sumSq, min: mean, max: mean };
  });
  return { columns, noiseStd: std, clipped };
}

/**
 * Why the noised statistics cannot normalize the data, or undefined. Post-processing of the mechanism's output (costs no
 * privacy): a column's noised count far from the fleet's example count (public: agents report it when they join) means
 * its statistics are mostly noise, because each agent's vector was clipped far below its norm (the norm grows with the
 * rows and the square of raw values: 100 rows of values near 100 have a sum of squares of 1e6) or the noise is large
 * next to the data. Normalizing with them scales features by noise and the run learns nothing, so the step refuses.
 */
export function unusableStatistics(noised: NoisedStatistics, names: readonly string[], examples: number, clipNorm: number): string | undefined {
  for (const c of noised.columns) {
    if (c.type !== 'numeric' || !names.includes(c.name)) continue;
    // A column's count is at most the examples (fewer where values are missing); a quarter allows 75% missing.
    if (c.count >= examples / 4 && c.count <= 2 * examples) continue;
    return (
      `privacy.statisticsClipNorm: the noised statistics of column '${c.name}' are mostly noise (count ${c.count} for ${examples} examples): ` +
      `each agent's (count, sum, sum of squares) over the normalized columns is clipped to L2 norm ${clipNorm}, then noise of std ${noised.noiseStd} is added, ` +
      `so raw values or a clip norm far below one agent's norm leave nothing of the data. Give task.statistics (your own mean and std per column, no privacy cost), ` +
      `or scale the features beforehand (e.g. to [0, 1]; --scale) with privacy.statisticsClipNorm above one agent's norm, or task.normalization "none"`
    );
  }
  return undefined;
}

/** Numeric feature columns the run normalizes with fleet statistics (not covered by task.statistics). */
export function columnsNeedingStatistics(pre: Preprocessing, combined: readonly ColumnProfile[], task: TaskConfig | undefined): string[] {
  if (pre.normalization === 'none') return [];
  const given = task?.statistics ?? {};
  return pre.features.filter((f) => f.kind === 'numeric' && !(f.name in given) && combined.find((c) => c.name === f.name)?.type === 'numeric').map((f) => f.name);
}

/** task.statistics applied: the user's mean/std or min/max replace the fleet's for those columns. */
export function applyUserStatistics(pre: Preprocessing, task: TaskConfig | undefined): Preprocessing {
  const given = task?.statistics;
  if (!given) return pre;
  const names = new Set(pre.features.map((f) => f.name));
  for (const col of Object.keys(given))
    if (!names.has(col)) throw new DataStepError(`task.statistics.${col}: not a feature column; features are ${[...names].slice(0, 30).join(', ')}`);
  const features = pre.features.map((f): FeatureSpec => {
    const st = given[f.name];
    if (!st) return f;
    if (f.kind !== 'numeric') throw new DataStepError(`task.statistics.${f.name}: the column is ${f.kind}, only numeric columns take statistics`);
    return 'mean' in st
      ? { ...f, shift: st.mean, scale: st.std, mean: st.mean }
      : { ...f, shift: st.min, scale: st.max - st.min, mean: (st.min + st.max) / 2 };
  });
  return { ...pre, features };
}
