/** Strategy interface: which agents train, how an update is weighted, how results become the next global model. */
import type { TrainConfigMsg } from '@fedge/proto';

export interface CandidateAgent { id: string; name: string; numExamples: number }

/** A result that passed validation and was folded into the aggregate. */
export interface AcceptedResult {
  agentId: string;
  numExamples: number;
  weight: number;
  metrics: Record<string, number>;
  /** The global version the update was trained from (older than the round's base for late or async updates). */
  baseVersion?: number;
}

/** Failures are data: strategies see them next to results instead of catching exceptions. */
export interface FailedResult {
  agentId: string;
  outcome: 'rejected' | 'dropped' | 'late';
  reason: string;
}

/** Read access to the streamed weighted sum of deltas of the accepted results. */
export interface AggregateView {
  readonly count: number;
  readonly totalWeight: number;
  /** Weighted mean of the folded deltas (a new array). */
  mean(): Float32Array;
}

export type AggregateOutcome = { ok: true; weights: Float32Array } | { ok: false; reason: string };

/** The differential-privacy accountant's side of a private strategy (strategy/dp.ts), as the engine needs it. */
export interface PrivacyHooks {
  /** Called before each round (async: each step): why the run must stop (the next step would exceed maxEpsilon), else undefined. */
  budgetStop(round: number): string | undefined;
  /** Privacy spent after the steps so far (composed when each round is aggregated). */
  spent(): { epsilon: number; delta: number; order: number; steps: number; clipNorm: number };
}

/** DP accounting state a restarted coordinator needs to continue a private run (RunRecord.privacyState). */
export interface PrivacyState {
  /** Accounted steps so far (each identical: the run's q and z). */
  steps: number;
  /** The fixed denominator q * N, once the first round has fixed it. */
  denominator?: number;
  /** The clip norm the next round's agents use (adapted after every round with adaptive clipping). */
  clipNorm: number;
  /** The clip norm the last aggregated round used (reported in spent()). */
  lastClipNorm?: number;
  /** Gaussian-mechanism steps of the statistics step before round 1 (q = 1, the run's noise multiplier). */
  statisticsSteps?: number;
}

/**
 * A strategy's own state, as the run record fields it owns (the run context copies them in on every save and hands
 * them back on resume). A strategy with new state (server optimizer moments, control variates) adds its field here
 * and to RunRecord.
 */
export interface StrategyState {
  privacyState?: PrivacyState;
}

export interface Strategy {
  readonly name: string;
  /** Picks the agents for a round from those available (stable order), using `rng` for sampling. */
  selectAgents(available: readonly CandidateAgent[], rng: () => number): CandidateAgent[];
  /** Weight of one accepted update in the aggregate. */
  weightOf(numExamples: number): number;
  /** Sync: combines the round's results into the next global weights, or explains why the round produced none. */
  aggregate(base: Float32Array, agg: AggregateView, results: readonly AcceptedResult[], failures: readonly FailedResult[]): AggregateOutcome;
  /** Async (FedBuff): the next global weights from a full buffer of K updates (weights include the staleness discount). */
  aggregateBuffered(base: Float32Array, agg: AggregateView, results: readonly AcceptedResult[], failures: readonly FailedResult[]): AggregateOutcome;
  /**
   * The server step: next weights from the base and an aggregated pseudo-gradient (the update direction, a new array
   * the strategy may keep). FedAvg adds it scaled by the server learning rate; server optimizers keep their moments
   * here; wrappers (DP) hand their noised aggregate to the inner strategy's step.
   */
  serverStep(base: Float32Array, delta: Float32Array): Float32Array;
  /** Fields this strategy adds to every training task (DP clip and noise). */
  taskConfig?(): Partial<TrainConfigMsg>;
  /** Present on private strategies: budget stop and epsilon per round; such a strategy takes one update per agent per async step. */
  readonly privacy?: PrivacyHooks;
  /** The strategy's state to save with the run record (see StrategyState). */
  snapshot?(): StrategyState;
  /** Restores a snapshot into a fresh strategy (a resumed run). */
  restore?(state: StrategyState): void;
}
