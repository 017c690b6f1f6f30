/**
 * Charts of the run page, drawn by uPlot (loaded by index.html as /vendor/uPlot.iife.min.js, the npm package's own
 * file). A chart keeps its instance across live updates: new rounds only change its data.
 */
import type UPlot from 'uplot';
import { el } from './dom.js';

declare global {
  interface Window {
    uPlot: typeof UPlot;
  }
}

export interface SeriesSpec {
  label: string;
  color: string;
  /** Bars instead of a line (counts). */
  bars?: boolean;
  dash?: number[];
}

export interface ChartSpec {
  key: string;
  title: string;
  xLabel: string;
  series: SeriesSpec[];
  /** x values, then one array per series (null: no value for that x). */
  data: [number[], ...(number | null)[][]];
  yFormat?: (v: number) => string;
  /** Counts: ticks on whole numbers only. */
  integerY?: boolean;
  /** The y axis starts at 0 (counts, ratios), not at the smallest value. */
  fromZero?: boolean;
}

interface Live {
  plot: UPlot;
  box: HTMLElement;
  signature: string;
}

const charts = new Map<string, Live>();

const MIN_WIDTH = 320;
const HEIGHT = 220;
/** Rounds, versions and counts are whole numbers: no ticks at 1.5. */
const WHOLE = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000];

/** The data points a chart holds (x values with at least one series value): what tests and people count. */
function points(spec: ChartSpec): number {
  return spec.data[0].filter((_x, i) => spec.data.slice(1).some((s) => s[i] !== null && s[i] !== undefined)).length;
}

function options(spec: ChartSpec, width: number): UPlot.Options {
  const bars = window.uPlot.paths.bars?.({ size: [0.6, 40] });
  return {
    width: Math.max(MIN_WIDTH, width),
    height: HEIGHT,
    scales: {
      // Bars are centred on their x: half a step of room at both ends so the first and last are not cut in half.
      x: { time: false, ...(spec.series.some((s) => s.bars) ? { range: (_u: UPlot, min: number, max: number): UPlot.Range.MinMax => [min - 0.5, max + 0.5] } : {}) },
      ...(spec.fromZero ? { y: { range: (_u: UPlot, _min: number, max: number): UPlot.Range.MinMax => [0, max > 0 ? max * 1.1 : 1] } } : {}),
    },
    legend: { show: true },
    axes: [
      { label: spec.xLabel, stroke: '#555', grid: { stroke: '#eee' }, incrs: WHOLE },
      { stroke: '#555', grid: { stroke: '#eee' }, size: 76, ...(spec.integerY ? { incrs: WHOLE } : {}), ...(spec.yFormat ? { values: (_u: UPlot, vals: number[]) => vals.map((v) => spec.yFormat!(v)) } : {}) },
    ],
    series: [
      { label: spec.xLabel },
      ...spec.series.map((s): UPlot.Series => ({
        label: s.label,
        stroke: s.color,
        width: 2,
        spanGaps: true,
        ...(s.dash ? { dash: s.dash } : {}),
        ...(s.bars && bars ? { paths: bars, fill: `${s.color}99`, points: { show: false } } : { points: { show: true, size: 5 } }),
      })),
    ],
  };
}

/**
 * Creates or updates the chart `spec.key` inside `parent`; `data-points` on its box tells how many x values have a
 * value, so a watcher (or a test) sees the chart grow round by round.
 */
export function renderChart(parent: HTMLElement, spec: ChartSpec): void {
  const signature = JSON.stringify([spec.title, spec.series]);
  let live = charts.get(spec.key);
  if (live && (live.signature !== signature || !live.box.isConnected)) {
    live.plot.destroy();
    live.box.remove();
    charts.delete(spec.key);
    live = undefined;
  }
  if (!live) {
    const box = el('figure', { class: 'chart', 'data-chart': spec.key }, el('figcaption', {}, spec.title));
    parent.append(box);
    // As wide as its grid cell (the figure's padding aside); fixed afterwards, as uPlot draws at a set size.
    const plot = new window.uPlot(options(spec, box.clientWidth - 12), spec.data as UPlot.AlignedData, box);
    live = { plot, box, signature };
    charts.set(spec.key, live);
  } else {
    if (live.box.parentElement !== parent) parent.append(live.box);
    live.plot.setData(spec.data as UPlot.AlignedData);
  }
  live.box.setAttribute('data-points', String(points(spec)));
}

/** Drops every chart (leaving the run page). */
export function clearCharts(): void {
  for (const c of charts.values()) c.plot.destroy();
  charts.clear();
}
