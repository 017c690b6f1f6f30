/**
 * Robust aggregation as strategies: coordinate-wise median, trimmed mean (Yin et al. 2018), Krum and Multi-Krum
 * (Blanchard et al. 2017). FedAvg's selection; the aggregate is computed over every accepted update of the round
 * (rules/robust.ts, chunked over the spool) and applied as the delta of FedAvg's server step.
 */
import { applyDelta, sampleAgents, summarizeFailures } from './fedavg.js';
import { coordinateMedian, multiKrum, trimmedMean, type ChunkOptions, type UpdateSource } from './rules/robust.js';
import type { AcceptedResult, AggregateOutcome, AggregateView, CandidateAgent, FailedResult, Strategy } from './strategy.js';
import type { FedAvgOptions } from './fedavg.js';

export type RobustName = 'median' | 'trimmed-mean' | 'krum' | 'multi-krum';

export interface RobustOptions {
  /** trimmed-mean: share dropped at each end. */
  beta?: number;
  /** krum / multi-krum: Byzantine updates tolerated. */
  f?: number;
  /** multi-krum: updates averaged (default K - f). */
  m?: number;
  /** Params per pass over the spool (tests use small chunks). */
  chunk?: number;
}

/** The robust aggregate of a source (pure; what the strategy applies as its delta). */
function robustAggregate(name: RobustName, src: UpdateSource, o: RobustOptions): Float32Array {
  const chunk: ChunkOptions = o.chunk ? { chunk: o.chunk } : {};
  switch (name) {
    case 'median':
      return coordinateMedian(src, chunk).aggregate;
    case 'trimmed-mean':
      return trimmedMean(src, o.beta ?? 0.1, chunk).aggregate;
    case 'krum':
      return multiKrum(src, o.f ?? 1, 1, chunk).aggregate;
    case 'multi-krum':
      return multiKrum(src, o.f ?? 1, o.m, chunk).aggregate;
  }
}

export class RobustStrategy implements Strategy {
  constructor(
    readonly name: RobustName,
    private readonly opts: FedAvgOptions,
    private readonly robust: RobustOptions = {},
  ) {}

  selectAgents(available: readonly CandidateAgent[], rng: () => number): CandidateAgent[] {
    return sampleAgents(available, this.opts.fraction, this.opts.minAgents, rng);
  }

  weightOf(numExamples: number): number {
    return numExamples;
  }

  /** Reached only if the engine did not keep the round's updates (it always does for this strategy). */
  aggregate(_base: Float32Array, _agg: AggregateView, results: readonly AcceptedResult[]): AggregateOutcome {
    return { ok: false, reason: `${this.name} needs every update of the round, but the engine kept only their mean (${results.length} results)` };
  }

  aggregateUpdates(base: Float32Array, source: UpdateSource, results: readonly AcceptedResult[], failures: readonly FailedResult[]): AggregateOutcome {
    if (results.length < this.opts.minResults || source.count === 0) {
      const why = failures.length ? `; failures: ${summarizeFailures(failures)}` : '';
      return { ok: false, reason: `only ${results.length} of the ${this.opts.minResults} required results arrived${why}` };
    }
    let delta: Float32Array;
    try {
      delta = robustAggregate(this.name, source, this.robust);
    } catch (err) {
      // Too few updates for Krum's f (K <= 2f + 2), an m above K - f: the round makes no model and says why.
      if (err instanceof RangeError) return { ok: false, reason: err.message };
      throw err;
    }
    return { ok: true, weights: this.serverStep(base, delta) };
  }

  aggregateBuffered(): AggregateOutcome {
    return { ok: false, reason: `${this.name} runs in sync mode only (it needs a whole round of updates)` };
  }

  serverStep(base: Float32Array, delta: Float32Array): Float32Array {
    return applyDelta(base, delta, this.opts.serverLearningRate);
  }
}
