/** The run page: a header, a chart per round (or version) for every figure a run records, and who took part in each round. */
import { metricNames, metricOf, type Participant, type RoundRecord, type RunSummary } from './api.js';
import { renderChart, type ChartSpec } from './charts.js';
import { badge, bytes, el, link, metricText, pct, sig } from './dom.js';

const BLUE = '#1f6feb';
const ORANGE = '#d9730d';
const GREEN = '#2da44e';
const RED = '#cf222e';
const AMBER = '#bf8700';
const GREY = '#6e7781';

const OUTCOMES = [['completed', GREEN], ['late', AMBER], ['dropped', GREY], ['rejected', RED]] as const;

/** A round's count of one outcome: its summary's (records written before summaries: counted from the list). */
const outcomeCount = (x: RoundRecord, o: Participant['outcome']): number => x.summary?.outcomes[o] ?? (x.participants ?? []).filter((p) => p.outcome === o).length;

const val = (v: number | undefined | null): number | null => (v === undefined || v === null || !Number.isFinite(v) ? null : v);

/**
 * Bytes on the wire over what they weigh as dense float32, as `fedge run show` prints it ("0.1x"); records from
 * before the dense counters count as uncompressed (cli/traffic.ts does the same).
 */
function wireRatio(x: RoundRecord, direction: 'up' | 'down'): number | null {
  const sent = direction === 'up' ? x.bytesReceived : x.bytesSent;
  const dense = (direction === 'up' ? x.bytesReceivedDense : x.bytesSentDense) ?? sent;
  return sent > 0 && dense > 0 ? sent / dense : null;
}

export function chartSpecs(r: RunSummary): ChartSpec[] {
  const async = r.config.mode === 'async';
  const xLabel = async ? 'version' : 'round';
  const rounds = r.roundsDetail;
  const xs = rounds.map((x) => (async ? x.version ?? x.round : x.round));
  const specs: ChartSpec[] = metricNames(r).map((m) => ({
    key: `metric-${m}`,
    title: `${m}: federated and central evaluation`,
    xLabel,
    series: [{ label: `federated ${m}`, color: BLUE }, { label: `central ${m}`, color: ORANGE }],
    data: [xs, rounds.map((x) => val(metricOf(x, m, 'federated'))), rounds.map((x) => val(metricOf(x, m, 'central')))],
    ...(m === 'accuracy' ? { yFormat: (v: number) => `${(v * 100).toFixed(0)}%` } : {}),
  }));
  specs.push({ key: 'train-loss', title: 'training loss', xLabel, series: [{ label: 'train loss', color: BLUE }], data: [xs, rounds.map((x) => val(x.trainLoss))] });
  const dp = r.config.privacy;
  if (dp) {
    const budget = dp.maxEpsilon;
    specs.push({
      key: 'epsilon',
      title: `privacy: epsilon spent (delta ${dp.delta})${budget !== undefined ? ` against the budget ${budget}` : ''}`,
      xLabel,
      series: [{ label: 'epsilon', color: RED }, ...(budget !== undefined ? [{ label: 'budget', color: GREY, dash: [6, 4] }] : [])],
      data: [xs, rounds.map((x) => val(x.epsilon)), ...(budget !== undefined ? [rounds.map(() => budget)] : [])],
    });
  }
  specs.push({
    key: 'participants',
    title: `participants per ${xLabel}`,
    xLabel,
    series: OUTCOMES.map(([o, color]) => ({ label: o, color })),
    integerY: true,
    fromZero: true,
    data: [xs, ...OUTCOMES.map(([o]) => rounds.map((x) => outcomeCount(x, o)))],
  });
  specs.push({
    key: 'bytes',
    title: 'bytes up (updates) and down (models)',
    xLabel,
    series: [{ label: 'up', color: BLUE }, { label: 'down', color: ORANGE }],
    data: [xs, rounds.map((x) => x.bytesReceived), rounds.map((x) => x.bytesSent)],
    yFormat: (v) => bytes(v) ?? '',
  });
  specs.push({
    key: 'compression',
    title: 'compression: bytes on the wire / dense float32',
    xLabel,
    series: [{ label: 'uplink', color: BLUE }, { label: 'downlink', color: ORANGE }],
    data: [xs, rounds.map((x) => wireRatio(x, 'up')), rounds.map((x) => wireRatio(x, 'down'))],
    yFormat: (v) => `${Number(v.toPrecision(2))}x`,
    fromZero: true,
  });
  if (async) {
    const hist = new Map<number, number>();
    for (const x of rounds) for (const [s, n] of Object.entries(x.stalenessHistogram ?? {})) hist.set(Number(s), (hist.get(Number(s)) ?? 0) + n);
    const keys = [...hist.keys()].sort((a, b) => a - b);
    specs.push({ key: 'staleness', title: 'staleness of folded updates (versions behind)', xLabel: 'staleness', series: [{ label: 'updates', color: AMBER, bars: true }], integerY: true, fromZero: true, data: [keys, keys.map((k) => hist.get(k)!)] });
  }
  specs.push({ key: 'duration', title: `${xLabel} duration (s)`, xLabel, series: [{ label: 'seconds', color: GREY }], data: [xs, rounds.map((x) => x.seconds)] });
  return specs;
}

/** Best value of the headline metric over completed rounds (central preferred), and its name. */
export function bestMetric(r: RunSummary): { name: string; value: number | undefined } {
  const name = metricNames(r)[0] ?? 'accuracy';
  const lower = /loss|rmse|mae|mse/.test(name);
  let best: number | undefined;
  for (const x of r.roundsDetail) {
    const v = val(metricOf(x, name, 'central') ?? metricOf(x, name, 'federated'));
    if (v !== null && (best === undefined || (lower ? v < best : v > best))) best = v;
  }
  return { name, value: best };
}

function participantsStrip(r: RunSummary): HTMLElement {
  const rows = r.roundsDetail.slice(-30).reverse();
  // Sync rounds record staleness 0 for everyone: only async versions say how far behind an update was.
  const async = r.config.mode === 'async';
  return el(
    'section',
    { class: 'strip' },
    el('h2', {}, 'who took part (latest 30; hover for the reason)'),
    ...rows.map((x) =>
      el(
        'div',
        { class: 'strip-row' },
        el('span', { class: 'strip-label' }, `${r.config.mode === 'async' ? 'v' : 'r'}${r.config.mode === 'async' ? x.version ?? x.round : x.round}`),
        ...(x.participants ?? []).map((p) =>
          el('span', { class: `dot dot-${p.outcome}`, title: `${p.name}: ${p.outcome}${p.reason ? ` (${p.reason})` : ''}${async && p.staleness !== undefined ? `, staleness ${p.staleness}` : ''}${p.seconds !== undefined ? `, ${p.seconds.toFixed(1)} s` : ''}` }),
        ),
        // A round too large for a dot each: its counts, and where the list is.
        x.participants ? undefined : el('span', { class: 'strip-counts', title: x.participantsNote ?? '' }, OUTCOMES.map(([o]) => `${outcomeCount(x, o)} ${o}`).join(', ')),
        x.status === 'failed' ? el('span', { class: 'strip-failed', title: x.reason ?? '' }, `failed: ${x.reason ?? ''}`) : undefined,
      ),
    ),
  );
}

export function renderRun(main: HTMLElement, r: RunSummary): void {
  if (main.dataset['run'] !== r.id) {
    main.replaceChildren(el('div', { id: 'run-head' }), el('div', { id: 'charts', class: 'charts' }), el('div', { id: 'strip' }));
    main.dataset['run'] = r.id;
  }
  const best = bestMetric(r);
  const last = r.roundsDetail.at(-1);
  main.querySelector('#run-head')!.replaceChildren(
    el('h1', {}, `run ${r.id} `, badge(r.status)),
    el(
      'p',
      { class: 'summary' },
      `${r.config.mode ?? 'sync'} · ${r.config.strategy.name} · round ${r.round}/${r.rounds} · version ${r.modelVersion} · best ${best.name} ${metricText(best.name, best.value) ?? '–'}`,
      last?.epsilon !== undefined ? ` · epsilon ${sig(last.epsilon)}` : '',
      r.accuracy !== undefined ? ` · latest accuracy ${pct(r.accuracy)}` : '',
      r.statusMessage ? ` · ${r.statusMessage}` : '',
      ' · ',
      link(`#/models/${encodeURIComponent(r.id)}`, 'model versions'),
    ),
  );
  const charts = main.querySelector<HTMLElement>('#charts')!;
  for (const spec of chartSpecs(r)) renderChart(charts, spec);
  main.querySelector('#strip')!.replaceChildren(participantsStrip(r));
}
