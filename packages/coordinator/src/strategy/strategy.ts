/** Strategy interface: which agents train, how an update is weighted, how results become the next global model. */
import type { ParticipantOutcome } from '../store/store.js';

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
  outcome: Exclude<ParticipantOutcome, 'completed'>;
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

export interface Strategy {
  readonly name: string;
  /** Picks the agents for a round from those available (stable order), using `rng` for sampling. */
  selectAgents(available: readonly CandidateAgent[], rng: () => number): CandidateAgent[];
  /** Weight of one accepted update in the aggregate. */
  weightOf(numExamples: number): number;
  /** Combines the round's results into the next global weights, or explains why the round produced none. */
  aggregate(base: Float32Array, agg: AggregateView, results: readonly AcceptedResult[], failures: readonly FailedResult[]): AggregateOutcome;
}
