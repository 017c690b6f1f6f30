/** FedAvg (McMahan et al. 2017): sample a fraction of agents, average their deltas weighted by example count. */
import { buffedStep } from './fedbuff.js';
import type { AcceptedResult, AggregateOutcome, AggregateView, CandidateAgent, FailedResult, Strategy } from './strategy.js';

export interface FedAvgOptions {
  fraction: number;
  minAgents: number;
  minResults: number;
  serverLearningRate: number;
  /** Recorded name (default "fedavg"; "fedprox" is FedAvg on the server, the proximal term being the agents'). */
  name?: string;
}

/** Samples max(minAgents, ceil(fraction * n)) agents without replacement (partial Fisher-Yates on a copy). */
export function sampleAgents<T>(available: readonly T[], fraction: number, minAgents: number, rng: () => number): T[] {
  const k = Math.min(available.length, Math.max(minAgents, Math.ceil(fraction * available.length)));
  const pool = available.slice();
  for (let i = 0; i < k; i++) {
    const j = i + Math.floor(rng() * (pool.length - i));
    [pool[i], pool[j]] = [pool[j]!, pool[i]!];
  }
  return pool.slice(0, k);
}

/** base + lr * delta, as a new array. */
export function applyDelta(base: Float32Array, delta: Float32Array, lr: number): Float32Array {
  if (base.length !== delta.length) throw new RangeError(`delta has ${delta.length} params, model has ${base.length}`);
  const out = new Float32Array(base.length);
  for (let i = 0; i < base.length; i++) out[i] = base[i]! + lr * delta[i]!;
  return out;
}

/** Example-weighted mean of metric `key` over the entries that report it finitely; undefined if none do. */
export function weightedMetric(entries: ReadonlyArray<{ weight: number; metrics: Record<string, number> }>, key: string): number | undefined {
  let sum = 0;
  let w = 0;
  for (const e of entries) {
    const v = e.metrics[key];
    if (v === undefined || !Number.isFinite(v) || e.weight <= 0) continue;
    sum += v * e.weight;
    w += e.weight;
  }
  return w > 0 ? sum / w : undefined;
}

export class FedAvg implements Strategy {
  readonly name: string;
  constructor(private readonly opts: FedAvgOptions) {
    this.name = opts.name ?? 'fedavg';
  }

  selectAgents(available: readonly CandidateAgent[], rng: () => number): CandidateAgent[] {
    return sampleAgents(available, this.opts.fraction, this.opts.minAgents, rng);
  }

  weightOf(numExamples: number): number {
    return numExamples;
  }

  aggregate(base: Float32Array, agg: AggregateView, results: readonly AcceptedResult[], failures: readonly FailedResult[]): AggregateOutcome {
    if (results.length < this.opts.minResults || agg.count === 0) {
      const why = failures.length ? `; failures: ${summarizeFailures(failures)}` : '';
      return { ok: false, reason: `only ${results.length} of the ${this.opts.minResults} required results arrived${why}` };
    }
    return { ok: true, weights: this.serverStep(base, agg.mean()) };
  }

  /** FedBuff: the staleness-weighted sum over the buffer's examples (see fedbuff.ts), then the server step. */
  aggregateBuffered(base: Float32Array, agg: AggregateView, results: readonly AcceptedResult[]): AggregateOutcome {
    const examples = results.reduce((s, a) => s + a.numExamples, 0);
    return { ok: true, weights: this.serverStep(base, buffedStep(agg.mean(), agg.totalWeight, examples)) };
  }

  serverStep(base: Float32Array, delta: Float32Array): Float32Array {
    return applyDelta(base, delta, this.opts.serverLearningRate);
  }
}

export function summarizeFailures(failures: readonly FailedResult[]): string {
  const counts = new Map<string, number>();
  for (const f of failures) counts.set(`${f.outcome}:${f.reason}`, (counts.get(`${f.outcome}:${f.reason}`) ?? 0) + 1);
  return [...counts].map(([k, n]) => `${n}x ${k}`).join(', ');
}
