/**
 * Per-version serving figures: request outcomes, latency and the distribution of predictions, kept twice: cumulative
 * for Prometheus (fedge_serving_*{version}) and over the current canary window (since the split last changed), which
 * is what the agent's health report tells the coordinator so it can judge a candidate against the stable version
 * answering the same traffic on the same device.
 */
import { escapeLabel } from '../prom-text.js';

/** ok: answered; error: the model failed (5xx); nan: answered with NaN or infinite outputs; invalid: a bad request (4xx). */
export type Outcome = 'ok' | 'error' | 'nan' | 'invalid';
const OUTCOMES: Outcome[] = ['ok', 'error', 'nan', 'invalid'];

const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];
/** Latencies kept per version for the window's percentiles: enough for a stable p99, bounded memory. */
const RING = 2048;
/**
 * The first requests a version answers in a window are left out of its percentiles: a freshly loaded ORT session's
 * first runs allocate and take several times longer, which would make every new candidate's p99 look slow.
 */
const WARMUP = 3;
/** Classes counted per version: argmax of the first output; wider outputs are folded into the last. */
const MAX_CLASSES = 1000;

/** What a window says about one version (the health report's per-version entry). */
export interface VersionWindow {
  requests: number;
  errors: number;
  nan: number;
  invalid: number;
  p50Ms?: number;
  p99Ms?: number;
  /** Classification: answered predictions per class (argmax of the first output). */
  classes?: number[];
  /** One output value per example (regression, binary): their count, mean and standard deviation. */
  scalar?: { n: number; mean: number; std: number };
}

class Window {
  readonly counts: Record<Outcome, number> = { ok: 0, error: 0, nan: 0, invalid: 0 };
  private readonly lat = new Float64Array(RING);
  private latN = 0;
  classes: number[] = [];
  private sn = 0;
  private mean = 0;
  private m2 = 0;

  private seen = 0;

  latency(ms: number): void {
    if (this.seen++ < WARMUP) return;
    this.lat[this.latN++ % RING] = ms;
  }

  scalar(x: number): void {
    // Welford: stable over long windows.
    this.sn++;
    const d = x - this.mean;
    this.mean += d / this.sn;
    this.m2 += d * (x - this.mean);
  }

  view(): VersionWindow {
    const lat = Array.from(this.lat.subarray(0, Math.min(this.latN, RING))).sort((a, b) => a - b);
    const q = (p: number): number => lat[Math.min(lat.length - 1, Math.ceil(p * lat.length) - 1)]!;
    const c = this.counts;
    return {
      requests: c.ok + c.error + c.nan + c.invalid,
      errors: c.error,
      nan: c.nan,
      invalid: c.invalid,
      ...(lat.length ? { p50Ms: round(q(0.5)), p99Ms: round(q(0.99)) } : {}),
      ...(this.classes.length ? { classes: Array.from(this.classes, (n) => n ?? 0) } : {}),
      ...(this.sn ? { scalar: { n: this.sn, mean: this.mean, std: this.sn > 1 ? Math.sqrt(this.m2 / (this.sn - 1)) : 0 } } : {}),
    };
  }
}

const round = (x: number): number => Math.round(x * 1000) / 1000;

interface Cumulative {
  outcomes: Record<Outcome, number>;
  buckets: number[];
  count: number;
  sum: number;
  classes: number[];
}

export interface Observation {
  version: string;
  outcome: Outcome;
  ms: number;
  /** The first output of an answered request: [batch, k] values, row-major. */
  output?: { data: Float32Array; shape: readonly number[] };
}

export class ServingStats {
  private readonly total = new Map<string, Cumulative>();
  private window = new Map<string, Window>();
  windowSince = new Date().toISOString();

  /** Starts a new window (a split was set or changed): what came before says nothing about the new candidate. */
  resetWindow(): void {
    this.window = new Map();
    this.windowSince = new Date().toISOString();
  }

  observe(o: Observation): void {
    let t = this.total.get(o.version);
    if (!t) this.total.set(o.version, (t = { outcomes: { ok: 0, error: 0, nan: 0, invalid: 0 }, buckets: LATENCY_BUCKETS.map(() => 0), count: 0, sum: 0, classes: [] }));
    let w = this.window.get(o.version);
    if (!w) this.window.set(o.version, (w = new Window()));
    let outcome = o.outcome;
    const out = o.output;
    if (outcome === 'ok' && out && out.data.some((v) => !Number.isFinite(v))) outcome = 'nan';
    t.outcomes[outcome]++;
    w.counts[outcome]++;
    const s = o.ms / 1000;
    t.count++;
    t.sum += s;
    LATENCY_BUCKETS.forEach((b, i) => {
      if (s <= b) t.buckets[i]!++;
    });
    if (outcome === 'invalid') return; // a refused request says nothing about the model's speed or predictions
    w.latency(o.ms);
    if (outcome !== 'ok' || !out) return;
    const rows = out.shape[0] ?? 1;
    const k = rows > 0 ? out.data.length / rows : 0;
    if (k > 1) {
      for (let r = 0; r < rows; r++) {
        let best = 0;
        for (let j = 1; j < k; j++) if (out.data[r * k + j]! > out.data[r * k + best]!) best = j;
        const c = Math.min(best, MAX_CLASSES - 1);
        t.classes[c] = (t.classes[c] ?? 0) + 1;
        w.classes[c] = (w.classes[c] ?? 0) + 1;
      }
    } else if (k === 1) for (const v of out.data) w.scalar(v);
  }

  /** The current window per version (the health report). */
  windowView(): Record<string, VersionWindow> {
    return Object.fromEntries([...this.window].map(([v, w]) => [v, w.view()]));
  }

  /** Prometheus exposition lines (help, type, samples) for the agent's /metrics. */
  render(): string[] {
    const out: string[] = [];
    const l = (v: string, extra = ''): string => `version="${escapeLabel(v)}"${extra}`;
    out.push('# HELP fedge_serving_requests_total Inference requests by the version that answered and outcome (ok, error, nan: NaN/Inf output, invalid: bad request).', '# TYPE fedge_serving_requests_total counter');
    for (const [v, t] of this.total) for (const o of OUTCOMES) out.push(`fedge_serving_requests_total{${l(v)},outcome="${o}"} ${t.outcomes[o]}`);
    out.push('# HELP fedge_serving_request_duration_seconds Inference request latency by the version that answered.', '# TYPE fedge_serving_request_duration_seconds histogram');
    for (const [v, t] of this.total) {
      LATENCY_BUCKETS.forEach((b, i) => out.push(`fedge_serving_request_duration_seconds_bucket{${l(v)},le="${b}"} ${t.buckets[i]}`));
      out.push(`fedge_serving_request_duration_seconds_bucket{${l(v)},le="+Inf"} ${t.count}`, `fedge_serving_request_duration_seconds_sum{${l(v)}} ${t.sum}`, `fedge_serving_request_duration_seconds_count{${l(v)}} ${t.count}`);
    }
    out.push('# HELP fedge_serving_predictions_total Predicted classes (argmax of the first output) by the version that answered.', '# TYPE fedge_serving_predictions_total counter');
    for (const [v, t] of this.total) t.classes.forEach((n, c) => out.push(`fedge_serving_predictions_total{${l(v)},class="${c}"} ${n ?? 0}`));
    return out;
  }
}
