/** `fedge run show` in human form: status, and for runs with a task its preprocessing, fleet statistics, data lineage and metrics. */
import type { ColumnProfile, FeatureSpec, Normalization } from '@fedge/proto';
import type { RunView } from '../coordinator.js';
import type { RoundRecord, RunData } from '../store/store.js';
import { modelLabel } from '../config/run-config.js';
import { duration, metricText, metricValue, num, pct, shortHash, sig, table } from './format.js';
import { statusLine, taskMetricNames, timing } from './progress.js';
import { trafficLine } from './traffic.js';
import { secaggLines } from './secagg-show.js';
import { compressesUplink, uplinkName } from '../config/compression.js';
import { completedOf, roundSummary } from '../store/round-summary.js';

/** A wide CSV or a big vocabulary would scroll the rounds away: tables stop here (--format json has every row). */
const MAX_ROWS = 40;

function capped<T>(rows: readonly T[], what: string): { rows: readonly T[]; more?: string } {
  if (rows.length <= MAX_ROWS) return { rows };
  return { rows: rows.slice(0, MAX_ROWS), more: `... ${rows.length - MAX_ROWS} more ${what} (fedge run show RUN --format json lists all)` };
}

/** The latest completed round's value of the task's first metric (central, else federated); accuracy for runs without a task. */
export function headlineMetric(r: RunView): { name: string; value: number | undefined } {
  const last = r.rounds.filter((x) => x.status === 'completed').at(-1);
  const name = taskMetricNames(r)?.[0];
  if (!name) return { name: 'accuracy', value: last?.centralAccuracy ?? last?.federatedAccuracy };
  const value = last?.centralMetrics?.[name] ?? last?.federatedMetrics?.[name] ?? (name === 'accuracy' ? last?.centralAccuracy ?? last?.federatedAccuracy : undefined);
  return { name, value };
}

/** `fedge run list`: with any task run listed, the metric column names its metric per row ("rmse 3.21"); MNIST-only lists read as always. */
export function renderRunList(runs: readonly RunView[]): string {
  const named = runs.some((r) => r.data ?? r.config.task);
  return table(
    runs.map((r) => {
      const h = headlineMetric(r);
      const value = metricValue(h.name, h.value);
      return {
        id: r.id,
        status: r.status,
        model: modelLabel(r.config.model),
        round: `${r.round}/${r.config.rounds}`,
        accuracy: h.name === 'accuracy' ? pct(h.value) : undefined,
        metric: value === undefined ? undefined : `${h.name} ${value}`,
        elapsed: duration(timing(r).elapsed),
        created: r.createdAt,
      };
    }),
    ['id', 'status', 'model', 'round', named ? 'metric' : 'accuracy', 'elapsed', 'created'],
  );
}

/** Population mean and std from a column's sums, as the agents normalize with them (see @fedge/ml columnMoments). */
export function moments(c: Extract<ColumnProfile, { type: 'numeric' }>): { mean?: number; std?: number } {
  if (c.count === 0) return {};
  const mean = c.sum / c.count;
  return { mean, std: Math.sqrt(Math.max(0, (c.sumSq - mean * c.sum) / c.count)) };
}

function topValues(values: Record<string, number>, truncated: boolean): string {
  const sorted = Object.entries(values).sort((a, b) => b[1] - a[1]);
  const shown = sorted.slice(0, 3).map(([v, n]) => `${v || '""'} ${n}`).join(', ');
  const rest = sorted.length - 3;
  return `${sorted.length} values: ${shown}${rest > 0 ? `, +${rest} more` : ''}${truncated ? ' (capped)' : ''}`;
}

function statisticsTable(data: RunData): string[] {
  const targets = new Set(data.preprocessing.targets.map((t) => t.name));
  const { rows, more } = capped(data.statistics, 'columns');
  const out = table(
    rows.map((c) => {
      const base = { column: targets.has(c.name) ? `${c.name} (target)` : c.name, count: c.count };
      if (c.type === 'numeric') {
        const m = moments(c);
        return { ...base, type: c.integer ? 'integer' : 'numeric', missing: c.missing, mean: sig(m.mean), std: sig(m.std), min: sig(c.min), max: sig(c.max), values: '' };
      }
      if (c.type === 'categorical') return { ...base, type: 'categorical', missing: c.missing, values: topValues(c.values, c.truncated) };
      return { ...base, type: `block[${c.width}]`, min: sig(c.min), max: sig(c.max), values: '' };
    }),
    ['column', 'type', 'count', 'missing', 'mean', 'std', 'min', 'max', 'values'],
  );
  return more ? [out, more] : [out];
}

function encoding(f: FeatureSpec, normalization: Normalization): { width: number; encoding: string } {
  if (f.kind === 'categorical') return { width: f.values.length, encoding: `one-hot, ${f.values.length} values` };
  if (f.kind === 'raw') return { width: f.width, encoding: 'as is' };
  if (normalization === 'zscore') return { width: 1, encoding: `mean ${sig(f.shift)}  std ${sig(f.scale)}` };
  if (normalization === 'minmax') return { width: 1, encoding: `min ${sig(f.shift)}  max ${sig(f.shift + f.scale)}` };
  return { width: 1, encoding: f.shift === 0 && f.scale === 1 ? 'as is' : `(x - ${sig(f.shift)}) / ${sig(f.scale)}` };
}

function taskLines(r: RunView, data: RunData): string[] {
  const t = data.task;
  const o = t.optimizer;
  const opts = [`lr ${o.learningRate}`, ...(['momentum', 'beta1', 'beta2', 'rho'] as const).flatMap((k) => (o[k] !== undefined ? [`${k} ${o[k]}`] : []))];
  const pre = data.preprocessing;
  const targets = pre.targets.map((x) => (x.kind === 'categorical' ? `${x.name} (${x.values.length} classes)` : x.name)).join(', ');
  const lines = [
    `task ${t.type}  target ${targets}  loss ${t.loss}${t.loss === 'huber' ? ` (delta ${t.huberDelta})` : ''}  optimizer ${o.name} (${opts.join(', ')})  metrics ${t.metrics.join(', ')}  outputs ${t.outputs}`,
  ];
  const stop = r.config.stopAt ?? (r.config.targetAccuracy !== undefined ? { metric: 'accuracy', value: r.config.targetAccuracy } : undefined);
  const reached = r.reachedTarget;
  if (stop) lines.push(`stop at ${stop.metric} ${metricValue(stop.metric, stop.value)}${reached ? `: reached ${metricValue(reached.metric ?? 'accuracy', reached.value ?? reached.accuracy)} at version ${reached.version} (round ${reached.round}, ${duration(reached.seconds)})` : ''}`);
  if (r.config.evaluation) lines.push(`central evaluation on ${r.config.evaluation.data}${r.config.evaluation.holdout ? ` (the ${r.config.evaluation.holdout.fraction * 100}% held out)` : ''}`);
  lines.push('', `preprocessing ${pre.normalization}, input width ${pre.inputWidth} from ${pre.features.length} features${pre.imageShape ? `, images ${pre.imageShape.join('x')}` : ''}`);
  const { rows, more } = capped(pre.features, 'features');
  lines.push(table(rows.map((f) => ({ feature: f.name, kind: f.kind, ...encoding(f, pre.normalization) })), ['feature', 'kind', 'width', 'encoding']));
  if (more) lines.push(more);
  lines.push('', `fleet statistics: ${data.n} training examples on ${data.agents.length} agents${data.statisticsNoiseStd !== undefined ? ` (Gaussian noise std ${sig(data.statisticsNoiseStd)} for differential privacy)` : ''}`);
  lines.push(...statisticsTable(data));
  lines.push('', 'agents (data lineage)', table(data.agents.map((a) => ({ agent: a.name, format: a.format, examples: a.n, fingerprint: shortHash(a.fingerprint) })), ['agent', 'format', 'examples', 'fingerprint']));
  for (const x of data.refused) lines.push(`refused ${x.name}: ${x.reason}`);
  const v0 = r.versions.find((v) => v.version === 0);
  const initial = metricText(v0?.centralMetrics, t.metrics);
  if (initial) lines.push(`initial model (version 0): ${initial}`);
  return lines;
}

/** A metric column of the rounds table: its header and its cell for one round. */
type RoundColumn = readonly [header: string, cell: (x: RoundRecord) => string | undefined];

/** Per round: participation, train loss, the given metric columns, time, epsilon (private runs only) and failures. */
function roundsTable(r: RunView, metrics: readonly RoundColumn[]): string {
  return table(
    r.rounds.map((x) => ({
      round: x.round,
      version: x.version,
      status: x.status,
      agents: ((c) => `${c.completed}/${c.total}`)(completedOf(x)),
      'train loss': num(x.trainLoss),
      ...Object.fromEntries(metrics.map(([header, cell]) => [header, cell(x)])),
      time: duration(x.seconds),
      epsilon: num(x.epsilon),
      failures: x.reason,
    })),
    ['round', 'version', 'status', 'agents', 'train loss', ...metrics.map(([header]) => header), 'time', ...(r.config.privacy ? ['epsilon'] : []), 'failures'],
  );
}

/** The task's metrics, federated then central; metric columns no round has are left out. */
function taskRoundsTable(r: RunView, names: readonly string[]): string {
  const cols = [...names.map((m) => ['fed', 'federatedMetrics', m] as const), ...names.map((m) => ['central', 'centralMetrics', m] as const)];
  const present = cols.filter(([, key, m]) => r.rounds.some((x) => x[key]?.[m] !== undefined));
  return roundsTable(r, present.map(([label, key, m]): RoundColumn => [`${label} ${m}`, (x) => metricValue(m, x[key]?.[m])]));
}

/** Runs without a task: federated and central accuracy, as `fedge run show` always printed them. */
const ACCURACY_COLUMNS: readonly RoundColumn[] = [
  ['fed acc', (x) => pct(x.federatedAccuracy)],
  ['central acc', (x) => pct(x.centralAccuracy)],
];

/**
 * Which data trained each version: the completed participants and their dataset fingerprints (a round too large to
 * list says how many datasets and where its list is); [] when none was recorded.
 */
function lineageLines(runId: string, rounds: readonly RoundRecord[]): string[] {
  const rows = rounds.flatMap((x) => {
    if (x.version === undefined) return [];
    if (!x.participants) {
      const s = roundSummary(x);
      return s.datasets ? [{ version: x.version, round: x.round, data: `${s.outcomes.completed ?? 0} agents, ${s.datasets} datasets (fedge run participants ${runId} --round ${x.round})` }] : [];
    }
    const used = x.participants.filter((p) => p.outcome === 'completed' && p.fingerprint).sort((a, b) => a.name.localeCompare(b.name)); // same fleet, same line
    return used.length ? [{ version: x.version, round: x.round, data: used.map((p) => `${p.name} ${shortHash(p.fingerprint)}`).join(', ') }] : [];
  });
  return rows.length ? ['', 'which data trained each version', table(rows, ['version', 'round', 'data'])] : [];
}

/**
 * A root's rounds per aggregator site (fedge serve --upstream): a site's result carries its round's completed and
 * invited agents (site_participants, site_invited) and their examples; a failed site its reason. [] without sites.
 */
export function siteLines(rounds: readonly RoundRecord[]): string[] {
  const rows = rounds.flatMap((x) => (roundSummary(x).sites ?? []).map((p) => ({
    round: x.round, site: p.name, outcome: p.outcome,
    agents: p.agents !== undefined ? `${p.agents}/${p.invited ?? '?'}` : '',
    examples: p.examples, reason: p.reason,
  })));
  return rows.length ? ['', 'aggregator sites (agents: completed/invited in the site\'s own round)', table(rows, ['round', 'site', 'outcome', 'agents', 'examples', 'reason'])] : [];
}

/** The whole human-readable `fedge run show`; runs without a task print exactly what they always did. */
/** The server strategy (unless plain FedAvg) and, for async runs, the buffer: what the defaults chose is visible here. */
function strategyLines(c: RunView['config']): string[] {
  const { name, ...options } = c.strategy;
  const opts = Object.entries(options).map(([k, v]) => `${k} ${v}`).join(', ');
  const out = name === 'fedavg' && c.strategy.serverLearningRate === 1 && Object.keys(options).length === 1 ? [] : [`strategy ${name} (${opts})`];
  if (c.mode === 'async') {
    const s = c.staleness;
    const fn = s.fn === 'polynomial' ? `polynomial a ${s.a}` : s.fn === 'hinge' ? `hinge a ${s.a} b ${s.b}` : 'constant';
    out.push(`async: buffer ${c.async.bufferSize === 'auto' ? 'auto (chosen when the run starts)' : `${c.async.bufferSize} updates`} per version, concurrency ${c.async.concurrency ?? 'all agents'}, staleness ${fn}, max staleness ${c.async.maxStaleness}, speed weighting ${c.async.speedWeighting ? 'on' : 'off'}`);
  }
  return out;
}

/** The run config's promotion gate: configured (while the run goes on), then passed (and what was started) or why it failed. */
function promotionLines(r: RunView): string[] {
  const p = r.config.promotion;
  if (!p?.auto) return [];
  const g = r.promotionGate;
  if (!g) return [`promotion: at the end, the best version through a ${Math.round(p.canary * 100)}% canary for ${p.window} if its ${p.metric ?? 'task metric'} reaches ${p.minMetric}`];
  return [`promotion: ${g.passed ? '' : 'ALERT '}${g.message}`];
}

/** Rounds too large to list inline (more than INLINE_PARTICIPANTS): where their participants are. */
function participantsLines(r: RunView): string[] {
  const big = r.rounds.filter((x) => x.participantsNote);
  return big.length ? ['', `participants of ${big.length === 1 ? `round ${big[0]!.round}` : `${big.length} rounds`} (${roundSummary(big[0]!).participants} or more each) are not listed here: fedge run participants ${r.id} --round N [--status failed] [--limit 100]`] : [];
}

export function renderRunShow(r: RunView): string[] {
  const lines = [`run ${r.id}  ${r.status}${r.statusMessage ? ` (${r.statusMessage})` : ''}`];
  const model = r.data ? modelLabel(r.config.model) : JSON.stringify(r.config.model);
  lines.push(`model ${model}  version ${r.modelVersion}  round ${r.round}/${r.config.rounds}${r.modelPath ? `  saved ${r.modelPath}` : ''}`);
  if (r.live) lines.push(statusLine(r));
  lines.push(...promotionLines(r));
  lines.push(...strategyLines(r.config));
  const cmp = r.config.compression;
  if (compressesUplink(cmp) || cmp.downlink) lines.push(`compression: uplink ${uplinkName(cmp)}${cmp.errorFeedback ? ' with error feedback' : ''}${cmp.momentum ? ` (momentum ${cmp.momentum})` : ''}${cmp.warmupRounds ? `, warm-up ${cmp.warmupRounds} rounds` : ''}; downlink ${cmp.downlink ?? 'full float32 models'}`);
  const wire = trafficLine(r.rounds);
  if (wire) lines.push(wire);
  const dp = r.config.privacy;
  if (dp)
    lines.push(
      `privacy ${dp.mode} DP: clip norm ${dp.clipNorm}${dp.adaptiveClipping ? ' (adaptive)' : ''}, noise multiplier ${dp.noiseMultiplier}, epsilon ${num(r.rounds.at(-1)?.epsilon) ?? 0} at delta ${dp.delta}${dp.maxEpsilon !== undefined ? ` (max ${dp.maxEpsilon})` : ''}`,
    );
  if (!r.data) {
    if (r.config.task && !r.endedAt) lines.push(`task ${r.config.task.type}: waiting for the statistics step (the agents' data schemas and statistics)`);
    if (r.config.task && r.rounds.length === 0) return lines; // no rounds before the statistics step: nothing to tabulate
    lines.push(r.config.task ? taskRoundsTable(r, taskMetricNames(r)!) : roundsTable(r, ACCURACY_COLUMNS));
    return [...lines, ...lineageLines(r.id, r.rounds), ...siteLines(r.rounds), ...secaggLines(r.rounds), ...participantsLines(r)];
  }
  lines.push(...taskLines(r, r.data), '', taskRoundsTable(r, r.data.task.metrics), ...lineageLines(r.id, r.rounds), ...siteLines(r.rounds), ...secaggLines(r.rounds), ...participantsLines(r));
  return lines;
}
