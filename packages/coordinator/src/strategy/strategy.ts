/** Strategy interface: which agents train, how an update is weighted, how results become the next global model. */
import type { ModelBlob, TrainConfigMsg } from '@fedge/proto';
import type { UpdateSource } from './rules/robust.js';

export type { UpdateSource } from './rules/robust.js';

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
  /**
   * Composes the statistics step's Gaussian mechanism (every reporting agent's noised sums: q = 1 at the run's noise
   * multiplier) before round 1; the run's snapshot then carries it, so a restart keeps counting it.
   */
  accountStatistics(): void;
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
 * A server optimizer's state as the run record keeps it: the moments are model-sized, so they live in the store's
 * model store as a content-addressed blob (StateBlob) and the record holds only its sha256, step and options.
 */
export interface ServerOptStateRef {
  name: string;
  numParams: number;
  /** Server steps applied so far. */
  step: number;
  options: Record<string, number>;
  /** The blob holding m (and v) in the model store. */
  sha256: string;
}

/** SCAFFOLD's server control variate c as the run record keeps it: a blob in the model store (also what agents download). */
export interface ScaffoldStateRef {
  numParams: number;
  /** Rounds aggregated so far. */
  step: number;
  sha256: string;
}

/**
 * Optional capability (SCAFFOLD): a model-sized server vector that every training task names by sha256 (agents download
 * it like a model version) and every update carries a delta of, so the engine's aggregate holds 2 x the model's values.
 */
export interface ControlVariates {
  /** Sizes the server variate for a model of numParams values (zeros; a restored one is kept and checked). */
  init(numParams: number): void;
  /** The variate paired with the current global model. */
  current(): StateBlob;
  /** The current or the previous variate by sha256 (an agent may fetch as a round closes), else undefined. */
  find(sha256: string): ModelBlob | undefined;
}

/**
 * A strategy's own state, as the run record fields it owns (the run context copies them in on saves and hands them
 * back on resume). A strategy with new state adds its field here and to RunRecord; a field naming a blob adds its
 * sha256 to stateBlobRefs below.
 *
 * When each field is saved (RunContext): privacyState as soon as it changes and before a version is released (what
 * was released must be accounted: a crash may over-report epsilon, never under-report it); every other field with
 * the round (or async step) record that produced the version it belongs to, so a resumed run's model and server
 * state always match.
 */
export interface StrategyState {
  privacyState?: PrivacyState;
  serverOptState?: ServerOptStateRef;
  scaffoldState?: ScaffoldStateRef;
}

/** Model-sized strategy state, stored like a model version: by the sha256 of its blob (@fedge/proto blobDigest). */
export interface StateBlob {
  sha256: string;
  blob: ModelBlob;
}

/** The blobs a state names (restore needs them loaded). */
export function stateBlobRefs(state: StrategyState): string[] {
  return [state.serverOptState?.sha256, state.scaffoldState?.sha256].filter((s): s is string => s !== undefined);
}

/** How far a stored run got (for Strategy.resumeBlocker). */
export interface ResumeProgress {
  /** The latest published version (0: only the initial model). */
  modelVersion: number;
  /** Rounds (async: steps) with a stored record. */
  roundsDone: number;
}

export interface Strategy {
  readonly name: string;
  /** Picks the agents for a round from those available (stable order), using `rng` for sampling. */
  selectAgents(available: readonly CandidateAgent[], rng: () => number): CandidateAgent[];
  /** Weight of one accepted update in the aggregate. */
  weightOf(numExamples: number): number;
  /** Sync: combines the round's results into the next global weights, or explains why the round produced none. */
  aggregate(base: Float32Array, agg: AggregateView, results: readonly AcceptedResult[], failures: readonly FailedResult[]): AggregateOutcome;
  /**
   * Optional capability (robust aggregators): the round's accepted updates themselves, read in chunks from the spool
   * (update k is results' agent in agent-name order, see the engine). A strategy with it has every accepted update of
   * a sync round kept on disk and aggregated here instead of `aggregate` over the streamed mean.
   */
  aggregateUpdates?(base: Float32Array, source: UpdateSource, results: readonly AcceptedResult[], failures: readonly FailedResult[]): AggregateOutcome;
  /** Async (FedBuff): the next global weights from a full buffer of K updates (weights include the staleness discount). */
  aggregateBuffered(base: Float32Array, agg: AggregateView, results: readonly AcceptedResult[], failures: readonly FailedResult[]): AggregateOutcome;
  /**
   * The server step: next weights from the base and an aggregated pseudo-gradient (the update direction, a new array
   * the strategy may keep). FedAvg adds it scaled by the server learning rate; server optimizers keep their moments
   * here; wrappers (DP) hand their noised aggregate to the inner strategy's step.
   */
  serverStep(base: Float32Array, delta: Float32Array): Float32Array;
  /** Present on SCAFFOLD: updates are [delta | variate delta] and tasks name the server variate (see ControlVariates). */
  readonly controlVariates?: ControlVariates;
  /** Fields this strategy adds to every training task (DP clip and noise). */
  taskConfig?(): Partial<TrainConfigMsg>;
  /** Present on private strategies: budget stop and epsilon per round; such a strategy takes one update per agent per async step. */
  readonly privacy?: PrivacyHooks;
  /** The strategy's state to save with the run record (see StrategyState); cheap when nothing changed (called on every save). */
  snapshot?(): StrategyState;
  /** The blobs the current snapshot names; the run context stores each once, before any record naming it is saved. */
  stateBlobs?(): StateBlob[];
  /**
   * Why a run cannot resume from `state` (state this strategy needs is missing, so continuing would silently change the
   * run or under-report its privacy), else undefined. `progress` is what the run record says was done.
   */
  resumeBlocker?(state: StrategyState, progress: ResumeProgress): string | undefined;
  /** Restores a snapshot into a fresh strategy (a resumed run); `blobs` holds the blobs it names, by sha256. */
  restore?(state: StrategyState, blobs?: ReadonlyMap<string, ModelBlob>): void;
}
