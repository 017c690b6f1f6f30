/**
 * The statistics step before round 1: agents' data profiles are checked against one schema and combined, and the
 * run gets its preprocessing (fleet normalization, vocabularies), its resolved task and, for the built-in MLP, its
 * initial model sized from the data.
 */
import { DataStepError, ValidationError, type ColumnProfile, type DataProfile, type ModelBlob, type Preprocessing, type TaskType } from '@fedge/proto';
import type { RunConfig } from '../config/run-config.js';
import { normalizationOf, resolveTask, targetNames } from '../config/task-config.js';
import type { AgentRecord, RunData } from '../store/store.js';
import type { AgentRegistry } from './agent-registry.js';
import { initialModel, ml } from './ml-hooks.js';
import { applyUserStatistics, columnsNeedingStatistics, noiseNumericStatistics, unusableStatistics } from './private-stats.js';

/** Columns as a comparable key: an agent may join a prepared run only with exactly this schema. */
function schemaKey(columns: readonly Pick<ColumnProfile, 'name' | 'type'>[]): string {
  return JSON.stringify(columns.map((c) => [c.name, c.type, 'width' in c ? c.width : 1]));
}

/**
 * Runs that go through the statistics step: a task is configured, the model is sized from the data, or agents need
 * the resolved task for FedProx's mu (strategy.proximalMu; only a task payload carries it to them).
 */
export function needsDataStep(c: RunConfig): boolean {
  return c.task !== undefined || (typeof c.model === 'object' && 'builtin' in c.model) || (c.strategy.proximalMu ?? 0) > 0;
}

/**
 * Agents the prepared run may invite: those whose reported columns (names, types, widths) equal the run's, except the
 * ones the statistics step refused. The image shape is not compared: the run's is the model's, which agents resize to.
 */
export function eligibleFor(data: RunData, registry: AgentRegistry): (a: AgentRecord) => boolean {
  const key = schemaKey(data.statistics);
  const refused = new Set(data.refused.map((r) => r.agentId));
  return (a) => {
    const p = registry.profile(a.id);
    return p !== undefined && !refused.has(a.id) && schemaKey(p.columns) === key;
  };
}

/** Number of model outputs the task needs, from the target columns' fleet statistics. */
function outputsOf(type: TaskType, pre: Preprocessing, columns: readonly ColumnProfile[], modelOutputs: number | undefined): number {
  if (type !== 'classification') {
    if (type === 'binary' && pre.targets.length !== 1) throw new DataStepError(`task.target: a binary task has one target column, got ${pre.targets.length}; use type multilabel for several`);
    return type === 'binary' ? 1 : pre.targets.length;
  }
  if (pre.targets.length !== 1) throw new DataStepError(`task.target: a classification task has one target column, got ${pre.targets.length}; use type multilabel for several 0/1 columns`);
  const t = pre.targets[0]!;
  if (t.kind === 'categorical') return t.values.length;
  const col = columns.find((c) => c.name === t.name);
  if (col?.type !== 'numeric' || !col.integer || col.min < 0)
    throw new DataStepError(`task.target: column "${t.name}" holds ${col?.type === 'numeric' ? 'non-integer or negative numbers' : 'no numbers'}; classification needs class indices 0..K-1 or class names (use type regression for real values)`);
  // A user model may have more classes than the fleet's data shows (a class no agent holds yet); never fewer.
  const seen = col.max + 1;
  if (modelOutputs !== undefined && modelOutputs >= seen) return modelOutputs;
  return seen;
}

type Numeric = Extract<ColumnProfile, { type: 'numeric' }>;

/** Why one agent's target columns cannot serve the task type on their own (undefined: they can). */
function targetProblem(p: DataProfile, targets: readonly string[], type: TaskType): string | undefined {
  for (const name of targets) {
    const c = p.columns.find((x) => x.name === name);
    if (!c) return `no target column "${name}"`;
    if (c.type === 'block') return `target "${name}" is a block of ${c.width} values, not a label`;
    if (type === 'regression') {
      if (c.type !== 'numeric') return `target "${name}" holds text (e.g. "${Object.keys(c.values)[0] ?? ''}"); regression needs numbers`;
      continue;
    }
    if (c.type === 'categorical') {
      if ((type === 'binary' || type === 'multilabel') && Object.keys(c.values).length > 2)
        return `target "${name}" has ${Object.keys(c.values).length} values here (${Object.keys(c.values).slice(0, 5).join(', ')}); ${type} needs two`;
      continue;
    }
    const n = c as Numeric;
    if (n.count === 0) continue;
    if (type === 'classification' && (!n.integer || n.min < 0)) return `target "${name}" holds ${n.integer ? 'negative numbers' : 'non-integers'} (min ${n.min}, max ${n.max}); classification needs class indices 0..K-1 or class names`;
    if ((type === 'binary' || type === 'multilabel') && (!n.integer || n.min < 0 || n.max > 1)) return `target "${name}" holds values other than 0 and 1 (min ${n.min}, max ${n.max})`;
  }
  return undefined;
}

/**
 * Binary/multilabel with class names: the fleet's two names are those most agents have; an agent with another name
 * is refused (one agent's typo must not turn the task into a three-class one).
 */
function vocabularyProblem(p: DataProfile, targets: readonly string[], type: TaskType, fleet: readonly { profile: DataProfile }[]): string | undefined {
  if (type !== 'binary' && type !== 'multilabel') return undefined;
  for (const name of targets) {
    const votes = new Map<string, number>();
    for (const e of fleet) {
      const c = e.profile.columns.find((x) => x.name === name);
      if (c?.type === 'categorical') for (const v of Object.keys(c.values)) votes.set(v, (votes.get(v) ?? 0) + 1);
    }
    if (votes.size <= 2) continue;
    const keep = [...votes].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0])).slice(0, 2).map(([v]) => v);
    const c = p.columns.find((x) => x.name === name);
    const odd = c?.type === 'categorical' ? Object.keys(c.values).filter((v) => !keep.includes(v)) : [];
    if (odd.length) return `target "${name}" has ${odd.map((v) => `"${v}"`).join(', ')} here, not one of the fleet's two classes (${keep.join(', ')})`;
  }
  return undefined;
}

export interface DataStepResult { data: RunData; blob: ModelBlob }

/**
 * Combines the profiles of `agents` (the ones available now), resolves the task and builds or checks the model.
 * `blob` is the configured model (undefined for the built-in MLP, which is made here).
 */
export async function runDataStep(config: RunConfig, agents: readonly AgentRecord[], registry: AgentRegistry, blob: ModelBlob | undefined): Promise<DataStepResult> {
  const m = await ml();
  const refused: RunData['refused'] = [];
  const entries: { agentId: string; name: string; profile: DataProfile }[] = [];
  for (const a of agents) {
    const profile = registry.profile(a.id);
    if (profile) entries.push({ agentId: a.id, name: a.name, profile });
    else refused.push({ agentId: a.id, name: a.name, reason: 'reported no data profile (an agent older than this coordinator); upgrade fedge-agent' });
  }
  if (entries.length === 0) throw new DataStepError('no agent reported a data profile; upgrade the agents (fedge-agent reports its data schema when it joins)');
  let combined = m.combineProfiles(entries);
  refused.push(...combined.refused);
  const ref = combined.accepted[0]!.profile;
  const names = combined.columns.map((c) => c.name);
  const type = config.task?.type ?? 'classification';
  let targetList: string[] | undefined;
  try {
    targetList = targetNames(config.task, names) ?? (ref.targets.length > 0 ? [...ref.targets] : undefined);
  } catch (err) {
    throw new DataStepError((err as Error).message);
  }
  if (!targetList) throw new DataStepError(`task.target: not set, and the agents were started without --target; name the label column(s) in the run config ("task": { "target": "..." }); columns are ${names.slice(0, 30).join(', ')}`);
  const targets = targetList;
  // An agent whose labels cannot serve the task is left out, named, instead of failing the run for everyone.
  const unfit = combined.accepted.map((e) => ({ e, reason: targetProblem(e.profile, targets, type) ?? vocabularyProblem(e.profile, targets, type, combined.accepted) })).filter((x) => x.reason);
  if (unfit.length > 0) {
    if (unfit.length === combined.accepted.length) throw new DataStepError(`task.target: no agent's data fits a ${type} task: ${unfit.map((x) => `${x.e.name}: ${x.reason}`).join('; ')}`);
    refused.push(...unfit.map((x) => ({ agentId: x.e.agentId, name: x.e.name, reason: x.reason! })));
    combined = m.combineProfiles(combined.accepted.filter((e) => !unfit.some((x) => x.e === e)));
  }
  const hasBlocks = combined.columns.some((c) => c.type === 'block' && !targets.includes(c.name));
  // The configured model, built once: its output width and input shape here, its fit to the task at the end.
  const given = blob ? await m.modelFromBlob(blob) : undefined;
  try {
    // A user model with an image input [H, W, C]: agents resize their images to it (same channels).
    const modelOutputs = given ? (given.outputs[0]!.shape.at(-1) as number) : undefined;
    let modelImage: [number, number, number] | undefined;
    const inShape = given?.inputs[0]!.shape.slice(1) ?? [];
    if (ref.imageShape && inShape.length === 3 && inShape.every((d) => typeof d === 'number' && d > 0)) {
      if (inShape[2] !== ref.imageShape[2])
        throw new DataStepError(`model: input ${given!.inputs[0]!.name} takes ${inShape[2]} channel(s), the agents' images have ${ref.imageShape[2]}; start the agents with --channels ${inShape[2]}`);
      modelImage = inShape as [number, number, number];
    }
    const imageShape = modelImage ?? (ref.imageShape as [number, number, number] | undefined);
    const build = (columns: ColumnProfile[]): Preprocessing => {
      try {
        return m.buildPreprocessing(columns, {
          targets,
          ...(config.task?.features ? { features: config.task.features } : {}),
          normalization: normalizationOf(config.task, hasBlocks),
          taskType: type,
          ...(imageShape ? { imageShape } : {}),
        });
      } catch (err) {
        throw new DataStepError(err instanceof ValidationError ? err.message : `preprocessing: ${(err as Error).message}`);
      }
    };
    let statistics = combined.columns;
    let pre = build(statistics);
    let noiseStd: number | undefined;
    const p = config.privacy;
    const needed = columnsNeedingStatistics(pre, statistics, config.task);
    if (p && needed.length > 0) {
      // A private run releases no exact statistic of the agents' data: the Gaussian mechanism, or the user's own numbers.
      if (pre.normalization === 'minmax')
        throw new DataStepError(`task.normalization: minmax needs each column's exact min and max, which a private run does not release; use zscore, or give task.statistics { "${needed[0]}": { "min": .., "max": .. } } for ${needed.join(', ')}`);
      if (p.statisticsClipNorm === undefined)
        throw new DataStepError(`privacy.statisticsClipNorm: this private run normalizes ${needed.join(', ')} with fleet statistics; give an L2 bound on one agent's (count, sum, sum of squares) over those columns, or your own task.statistics (mean, std per column), or task.normalization "none"`);
      const noised = noiseNumericStatistics(combined.accepted.map((e) => e.profile), statistics, needed, p.statisticsClipNorm, p.noiseMultiplier);
      const unusable = unusableStatistics(noised, needed, combined.n, p.statisticsClipNorm);
      if (unusable) throw new DataStepError(unusable);
      statistics = noised.columns;
      noiseStd = noised.noiseStd;
      pre = build(statistics);
    }
    pre = applyUserStatistics(pre, config.task);

    const task = resolveTask(config.task, config.learningRate, outputsOf(type, pre, combined.columns, modelOutputs));
    // FedProx: every training task carries mu in its resolved task (agents add the proximal term to their loss).
    const mu = config.strategy.proximalMu;
    if (mu !== undefined && mu > 0) task.proximalMu = mu;
    const data: RunData = {
      task,
      preprocessing: pre,
      statistics,
      n: combined.n,
      agents: combined.accepted.map((e) => ({ agentId: e.agentId, name: e.name, format: e.profile.format, n: e.profile.n, fingerprint: e.profile.fingerprint })),
      refused,
      ...(noiseStd !== undefined ? { statisticsNoiseStd: noiseStd } : {}),
      preparedAt: new Date().toISOString(),
    };
    const out = blob ?? (await initialModel(config, data))!;
    // The configured model is the one already built above; only the built-in MLP, made just now, is built here.
    const model = given ?? (await m.modelFromBlob(out));
    try {
      m.checkModelForTask(model, task, pre.inputWidth);
    } catch (err) {
      throw new DataStepError(`model: ${(err as Error).message}`);
    } finally {
      if (model !== given) model.dispose();
    }
    return { data, blob: out };
  } finally {
    given?.dispose();
  }
}
