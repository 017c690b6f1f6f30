/**
 * Live data drift of a serving agent: every served example goes into a sliding window (LiveWindow) on the served
 * run's shared bins, compared by PSI and KS with the agent's own training profile and with the fleet reference the
 * coordinator sends back. Read by the status report (`drift` section) and the agent's /metrics gauges.
 */
import { driftSpec, ksBinned, psi, type DataProfileCounts, type DriftFeature, type DriftRow, type DriftSection, type DriftSpec, type FleetReference, type TaskPayload } from '@fedge/proto';
import { LiveWindow, type ExampleValue } from './live-window.js';
import type { DecodedInput, OutputTensor } from '../serving/infer-core.js';
import type { LoadedModel, TensorMeta } from '../serving/model-slot.js';
import { escapeLabel } from '../prom-text.js';

export const DEFAULT_DRIFT_WINDOW = 1000;

export interface DriftTrackerOptions {
  /** Examples in the window (--drift-window). */
  window: number;
  /** The served run's task payload (undefined: a legacy run, or not known yet). */
  payloadOf(runId: string): TaskPayload | undefined;
  /** This agent's training profile of the run on its bins (its own reference), if it has data. */
  ownProfile(runId: string, spec: DriftSpec, payload: TaskPayload | undefined): DataProfileCounts | undefined;
}

interface Current { runId: string; version: string; spec: DriftSpec; window: LiveWindow; payload?: TaskPayload }
type Reader = (inputs: readonly DecodedInput[], row: number, batch: number) => ExampleValue;

export class DriftTracker {
  private cur: Current | undefined;
  private readonly fleet = new Map<string, FleetReference>();
  private readonly own = new Map<string, DataProfileCounts | null>();
  private readers = new WeakMap<LoadedModel, (Reader | undefined)[]>();
  private cache: { at: number; seen: number; section: DriftSection | undefined } | undefined;

  constructor(private readonly opts: DriftTrackerOptions) {}

  /** The infer observer: one call per successful inference, synchronous and cheap (bins, no allocation per value). */
  observe(m: LoadedModel, inputs: readonly DecodedInput[], outputs: readonly OutputTensor[], batch: number): void {
    const runId = m.info.run === undefined ? '' : String(m.info.run);
    const cur = this.current(runId, m.version);
    const readers = this.readersFor(m, cur.spec.features);
    const out = this.predictionOutput(outputs, cur.spec, batch);
    const values: ExampleValue[] = new Array(readers.length);
    for (let row = 0; row < batch; row++) {
      for (let i = 0; i < readers.length; i++) values[i] = readers[i] ? readers[i]!(inputs, row, batch) : null;
      cur.window.add(values, out ? out.data.subarray(row * out.width, (row + 1) * out.width) : undefined);
    }
  }

  /** The coordinator's fleet reference for a run (from a report reply). */
  setFleetReference(ref: FleetReference): void {
    this.fleet.set(ref.runId, ref);
    this.cache = undefined;
  }

  /** The key of the fleet reference held for `runId` (sent back in the served section). */
  fleetReferenceKey(runId: string): string | undefined {
    return this.fleet.get(runId)?.key;
  }

  /** The report's drift section (undefined before the first served example); recomputed at most once a second. */
  section(): DriftSection | undefined {
    const cur = this.cur;
    if (!cur || cur.window.seen === 0) return undefined;
    const now = Date.now();
    if (this.cache && this.cache.seen === cur.window.seen && now - this.cache.at < 1000) return this.cache.section;
    const refs: [DriftRow['reference'], DataProfileCounts | undefined][] = [['own', this.ownOf(cur)], ['fleet', this.fleet.get(cur.runId)?.profile]];
    const features: DriftRow[] = [];
    const prediction: DriftRow[] = [];
    for (const [reference, profile] of refs) {
      if (!profile) continue;
      const byName = new Map(profile.features.map((f) => [f.feature, f.counts]));
      for (const live of cur.window.counts()) {
        const ref = byName.get(live.feature);
        if (ref && ref.length === live.counts.length) features.push(row(live.feature, reference, ref, live.counts));
      }
      const preds = cur.window.predictionCounts();
      if (preds && profile.labels?.length === preds.length) prediction.push(row('', reference, profile.labels, preds));
    }
    const section: DriftSection = { runId: cur.runId || 'legacy', version: Number(cur.version) || 0, window: cur.window.examples, features, prediction };
    this.cache = { at: now, seen: cur.window.seen, section };
    return section;
  }

  /** Prometheus lines: fedge_agent_drift_psi / _ks {feature, reference}, fedge_agent_drift_prediction_psi {reference}. */
  render(): string[] {
    const s = this.section();
    const out = [
      '# HELP fedge_agent_drift_psi Population stability index of a served feature over the drift window vs a reference (own: this agent\'s training data, fleet: every agent\'s); 0.1 moderate, 0.25 significant.',
      '# TYPE fedge_agent_drift_psi gauge',
      ...(s?.features ?? []).map((r) => `fedge_agent_drift_psi{feature="${escapeLabel(r.feature)}",reference="${r.reference}"} ${r.psi}`),
      '# HELP fedge_agent_drift_ks Two-sample Kolmogorov-Smirnov statistic (binned) of a served feature over the drift window vs a reference.',
      '# TYPE fedge_agent_drift_ks gauge',
      ...(s?.features ?? []).map((r) => `fedge_agent_drift_ks{feature="${escapeLabel(r.feature)}",reference="${r.reference}"} ${r.ks}`),
      '# HELP fedge_agent_drift_prediction_psi Population stability index of the predicted classes over the drift window vs the reference\'s label distribution.',
      '# TYPE fedge_agent_drift_prediction_psi gauge',
      ...(s?.prediction ?? []).map((r) => `fedge_agent_drift_prediction_psi{reference="${r.reference}"} ${r.psi}`),
      '# HELP fedge_agent_drift_window_examples Served examples in the drift window.',
      '# TYPE fedge_agent_drift_window_examples gauge',
      `fedge_agent_drift_window_examples ${this.cur?.window.examples ?? 0}`,
    ];
    return out;
  }

  /** Memory of the current window, per tracked feature (bench/drift.mjs). */
  get bytesPerFeature(): number {
    return this.cur?.window.bytesPerFeature ?? 0;
  }

  private current(runId: string, version: string): Current {
    const c = this.cur;
    if (c && c.runId === runId) {
      c.version = version;
      return c;
    }
    // A new run: its own bins (a new version of the same run keeps the window: inputs do not depend on the model).
    const payload = runId ? this.opts.payloadOf(runId) : undefined;
    const spec = driftSpec(payload);
    this.readers = new WeakMap();
    this.cache = undefined;
    this.cur = { runId, version, spec, window: new LiveWindow(spec.features, this.opts.window, spec.classes, spec.binary), ...(payload ? { payload } : {}) };
    return this.cur;
  }

  private ownOf(cur: Current): DataProfileCounts | undefined {
    let p = this.own.get(cur.runId);
    if (p === undefined) {
      p = this.opts.ownProfile(cur.runId, cur.spec, cur.payload) ?? null;
      this.own.set(cur.runId, p);
    }
    return p ?? undefined;
  }

  /** Per feature, how to read one example's value from a request to model `m` (by its inputs' metadata). */
  private readersFor(m: LoadedModel, features: readonly DriftFeature[]): (Reader | undefined)[] {
    let r = this.readers.get(m);
    if (!r) {
      r = features.map((f) => readerFor(f, m.inputs));
      this.readers.set(m, r);
    }
    return r;
  }

  /** The output holding class scores: [N, classes] (binary: [N, 1]); none when the spec has no classes. */
  private predictionOutput(outputs: readonly OutputTensor[], spec: DriftSpec, batch: number): { data: Float32Array; width: number } | undefined {
    if (!spec.classes) return undefined;
    const width = spec.binary ? 1 : spec.classes;
    const o = outputs.find((x) => x.data.length === batch * width);
    return o ? { data: o.data, width } : undefined;
  }
}

function row(feature: string, reference: DriftRow['reference'], ref: readonly number[], live: readonly number[]): DriftRow {
  const ks = ksBinned(ref, live);
  // Rounded: the report and the gauges need no more, and stable text keeps reports small.
  const r6 = (v: number): number => Math.round(v * 1e6) / 1e6;
  return { feature, reference, psi: r6(psi(ref, live)), ks: r6(ks.d), pValue: Math.min(1, r6(ks.pValue)) };
}

function readerFor(f: DriftFeature, inputs: readonly TensorMeta[]): Reader | undefined {
  const pick = (inp: readonly DecodedInput[], name: string): DecodedInput | undefined => inp.find((i) => i.name === name);
  if (f.kind === 'numeric') {
    const meta = inputs.find((i) => i.parameters?.kind === 'numeric' && i.parameters.columns?.includes(f.feature));
    if (!meta) return undefined;
    const j = meta.parameters!.columns!.indexOf(f.feature);
    const width = meta.parameters!.columns!.length;
    return (inp, r) => {
      const v = pick(inp, meta.name)?.values[r * width + j];
      return typeof v === 'number' ? v : null;
    };
  }
  if (f.kind === 'categorical') {
    const meta = inputs.find((i) => i.name === f.feature && i.parameters?.kind === 'categorical') ?? inputs.find((i) => i.name === f.feature);
    if (!meta) return undefined;
    return (inp, r) => {
      const v = pick(inp, meta.name)?.values[r];
      return v === null || v === undefined ? null : String(v);
    };
  }
  // A raw block: its named input, else (a legacy or single-block model) the model's only input.
  const meta = inputs.find((i) => i.parameters?.kind === 'raw' && i.parameters.columns?.[0] === f.feature) ?? (inputs.length === 1 ? inputs[0] : undefined);
  if (!meta) return undefined;
  return (inp, r, batch) => {
    const v = pick(inp, meta.name)?.values;
    if (!v) return null;
    const width = v.length / batch;
    return { data: v, from: r * width, to: (r + 1) * width };
  };
}
