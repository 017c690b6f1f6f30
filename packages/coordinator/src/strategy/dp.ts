/**
 * Differential privacy as a wrapper around a compatible strategy (its server step takes the noised aggregate).
 *
 * Central (DP-FedAvg, McMahan et al. 2018, user-level DP with add/remove-one adjacency): every available agent is
 * included in a round independently with probability q (Poisson sampling). Each agent clips its update (model delta)
 * to L2 norm S; the coordinator sums the clipped updates with weight 1 each, adds N(0, (z S)^2) noise per parameter
 * and divides by a fixed denominator D = q * N, where N is the number of agents registered when the first round starts
 * (treated as public, fixed for the run). One agent changes the noised sum by at most S, so each round is one step of
 * the Poisson-subsampled Gaussian mechanism with rate q and noise multiplier z, and the RDP accountant composes steps.
 * A round always publishes (sum + noise) / D, even when few or no results arrive: whether a round "failed" would
 * otherwise depend on who took part.
 *
 * Adaptive clipping (Andrew et al. 2021, "Differentially Private Learning with Adaptive Clipping"): agents report a
 * bit (update was clipped or not); the coordinator releases the noisy fraction of unclipped updates
 * b = (sum(b_i - 1/2) + N(0, sb^2)) / D + 1/2 and moves the clip norm geometrically, S <- S exp(-eta (b - gamma)).
 * The centred count has sensitivity 1/2, so it is a Gaussian query with noise multiplier 2 sb; the update itself gets
 * z_delta = (z^-2 - (2 sb)^-2)^(-1/2), and the two queries together are exactly one Gaussian with multiplier z: the
 * accountant charges z, so the count's cost is included.
 *
 * Local: agents clip to S and add N(0, (z S)^2) themselves, so the coordinator sees only noised updates. One agent's
 * update can change by 2S between any two datasets of that agent, so each update it sends is a Gaussian mechanism with
 * multiplier z / 2; no amplification by sampling is assumed (the coordinator is not trusted to sample). An agent gets
 * at most one training task per round, so after T rounds every agent is (epsilon, delta)-DP for T steps at q = 1,
 * multiplier z / 2.
 *
 * Not covered by the guarantee: metrics agents report in the clear (train loss, evaluation accuracy, example counts)
 * and the run record's participant lists; the guarantee covers the sequence of published global models.
 */
import { GaussianSampler, type ModelBlob, type TrainConfigMsg } from '@fedge/proto';
import { RdpAccountant } from '../privacy/accountant.js';
import type { PrivacyConfig } from '../privacy/config.js';
import type {
  AcceptedResult,
  AggregateOutcome,
  AggregateView,
  CandidateAgent,
  FailedResult,
  PrivacyHooks,
  PrivacyState,
  StateBlob,
  ResumeProgress,
  Strategy,
  StrategyState,
} from './strategy.js';

export type { PrivacyHooks, PrivacyState } from './strategy.js';

export interface DpOptions {
  privacy: PrivacyConfig;
  /** Poisson sampling rate q (central); local mode leaves selection to the inner strategy. */
  samplingRate: number;
  /** Number of registered agents; read once, when the first round selects agents (central mode). */
  populationSize: () => number;
  /** Noise source; default: the OS CSPRNG. Seeded sources are for tests only. */
  noise?: GaussianSampler;
  orders?: readonly number[];
  /**
   * Async (FedBuff) runs: every step sums at most one clipped update per agent, each weighted <= 1 (the staleness
   * discount), adds the noise and divides by the fixed buffer size K. Agents are not sampled at random there, so no
   * amplification is claimed: each step is accounted as a Gaussian mechanism with q = 1.
   */
  buffered?: { bufferSize: number };
}

/** Central DP replaces selection, weights and the aggregate; local DP only accounts; both leave the server step to `inner`. */
export class DpStrategy implements Strategy, PrivacyHooks {
  readonly name: string;
  readonly privacy: PrivacyHooks = this;
  private readonly p: PrivacyConfig;
  private readonly accountant: RdpAccountant;
  private readonly noise: GaussianSampler;
  private readonly local: boolean;
  private clip: number;
  private denom: number | undefined;
  /** Steps the accountant holds from the statistics step (not the run's per-round mechanism). */
  private statisticsSteps = 0;
  /** The clip norm the last aggregated round's agents used (the current one may have adapted since). */
  private lastClip: number | undefined;
  /** Noise multiplier of the update sum (z, or z_delta with adaptive clipping). */
  readonly updateNoiseMultiplier: number;
  /** Local DP around a robust aggregator: every update of the round, as the inner strategy takes them (central DP never). */
  declare readonly aggregateUpdates?: NonNullable<Strategy['aggregateUpdates']>;

  constructor(
    private readonly inner: Strategy,
    private readonly opts: DpOptions,
  ) {
    this.p = opts.privacy;
    this.local = this.p.mode === 'local';
    // The names runs have always recorded: "dp-fedavg" (central) and "fedavg-local-dp" around FedAvg.
    this.name = this.local ? `${inner.name}-local-dp` : `dp-${inner.name}`;
    this.accountant = new RdpAccountant(opts.orders);
    this.noise = opts.noise ?? new GaussianSampler();
    this.clip = this.p.clipNorm;
    const a = this.p.adaptiveClipping;
    const z = this.p.noiseMultiplier;
    if (a) {
      const sb = a.countNoiseStd ?? z;
      this.updateNoiseMultiplier = 1 / Math.sqrt(1 / (z * z) - 1 / (4 * sb * sb));
    } else this.updateNoiseMultiplier = z;
    const robust = inner.aggregateUpdates?.bind(inner);
    if (robust) {
      // The config refuses robust aggregators with central DP (the noise is calibrated to the clipped mean's sensitivity).
      if (!this.local) throw new Error(`strategy ${inner.name} cannot run with central differential privacy; use privacy.mode "local" or a non-robust strategy`);
      (this as { aggregateUpdates?: Strategy['aggregateUpdates'] }).aggregateUpdates = (base, source, results, failures) => {
        this.accountant.compose(this.step);
        this.lastClip = this.clip;
        return robust(base, source, results, failures);
      };
    }
  }

  /** The fixed denominator q * N (undefined before the first round). */
  get denominator(): number | undefined {
    return this.denom;
  }

  get clipNorm(): number {
    return this.clip;
  }

  /** The accountant's state (RunRecord.privacyState) next to the inner strategy's own. */
  snapshot(): StrategyState {
    return { ...this.inner.snapshot?.(), privacyState: this.privacyState() };
  }

  /** Restores a snapshot into a fresh strategy: composes `steps` steps, fixes the denominator and the clip norms. */
  restore(state: StrategyState, blobs?: ReadonlyMap<string, ModelBlob>): void {
    this.inner.restore?.(state, blobs);
    if (state.privacyState) this.restorePrivacy(state.privacyState);
  }

  /** A private run that aggregated rounds without a saved accountant would under-report epsilon; then the inner strategy's needs. */
  resumeBlocker(state: StrategyState, progress: ResumeProgress): string | undefined {
    if (!state.privacyState && progress.roundsDone > 0) return 'this differentially private run has no persisted privacy accountant state';
    return this.inner.resumeBlocker?.(state, progress);
  }

  accountStatistics(): void {
    this.accountant.compose({ samplingRate: 1, noiseMultiplier: this.p.noiseMultiplier });
    this.statisticsSteps++;
  }

  /** The inner strategy's blobs (server optimizer moments). */
  stateBlobs(): StateBlob[] {
    return this.inner.stateBlobs?.() ?? [];
  }

  private privacyState(): PrivacyState {
    return {
      steps: this.accountant.steps - this.statisticsSteps,
      ...(this.statisticsSteps ? { statisticsSteps: this.statisticsSteps } : {}),
      ...(this.denom !== undefined ? { denominator: this.denom } : {}),
      clipNorm: this.clip,
      ...(this.lastClip !== undefined ? { lastClipNorm: this.lastClip } : {}),
    };
  }

  private restorePrivacy(state: PrivacyState): void {
    if (this.accountant.steps !== 0) throw new Error('DpStrategy.restore: the accountant has already composed steps');
    if (!(Number.isInteger(state.steps) && state.steps >= 0)) throw new Error(`DpStrategy.restore: bad step count ${state.steps}`);
    if (!(Number.isFinite(state.clipNorm) && state.clipNorm > 0)) throw new Error(`DpStrategy.restore: bad clip norm ${state.clipNorm}`);
    if (state.steps > 0) this.accountant.compose(this.step, state.steps);
    if (state.statisticsSteps) {
      if (!(Number.isInteger(state.statisticsSteps) && state.statisticsSteps > 0)) throw new Error(`DpStrategy.restore: bad statistics step count ${state.statisticsSteps}`);
      this.accountant.compose({ samplingRate: 1, noiseMultiplier: this.p.noiseMultiplier }, state.statisticsSteps);
      this.statisticsSteps = state.statisticsSteps;
    }
    if (state.denominator !== undefined) this.denom = state.denominator;
    this.clip = state.clipNorm;
    if (state.lastClipNorm !== undefined) this.lastClip = state.lastClipNorm;
  }

  /** The accountant's mechanism per step. */
  private get step(): { samplingRate: number; noiseMultiplier: number } {
    return this.local
      ? { samplingRate: 1, noiseMultiplier: this.p.noiseMultiplier / 2 }
      : { samplingRate: this.opts.buffered ? 1 : this.opts.samplingRate, noiseMultiplier: this.p.noiseMultiplier };
  }

  selectAgents(available: readonly CandidateAgent[], rng: () => number): CandidateAgent[] {
    if (this.local) return this.inner.selectAgents(available, rng);
    this.denom ??= Math.max(this.opts.samplingRate * Math.max(this.opts.populationSize(), available.length), Number.MIN_VALUE);
    const q = this.opts.samplingRate;
    return available.filter(() => rng() < q);
  }

  weightOf(numExamples: number): number {
    return this.local ? this.inner.weightOf(numExamples) : 1;
  }

  /** DP fields of a training task's TrainConfig. */
  trainConfig(): Pick<TrainConfigMsg, 'clipNorm' | 'noiseStd' | 'reportClipped'> {
    if (this.local) return { clipNorm: this.clip, noiseStd: this.p.noiseMultiplier * this.clip, reportClipped: false };
    return { clipNorm: this.clip, noiseStd: 0, reportClipped: this.p.adaptiveClipping !== undefined };
  }

  taskConfig(): Partial<TrainConfigMsg> {
    return { ...this.inner.taskConfig?.(), ...this.trainConfig() };
  }

  budgetStop(round: number): string | undefined {
    const max = this.p.maxEpsilon;
    if (max === undefined) return undefined;
    const next = this.accountant.epsilonAfter(this.step, this.p.delta);
    if (next.epsilon <= max) return undefined;
    const now = this.accountant.steps ? this.accountant.epsilon(this.p.delta).epsilon : 0;
    return `privacy budget: stopped before round ${round}, which would take epsilon from ${now.toFixed(4)} to ${next.epsilon.toFixed(4)} > maxEpsilon ${max} (delta ${this.p.delta})`;
  }

  spent(): { epsilon: number; delta: number; order: number; steps: number; clipNorm: number } {
    const e = this.accountant.steps ? this.accountant.epsilon(this.p.delta) : { epsilon: 0, order: NaN };
    return { epsilon: e.epsilon, delta: this.p.delta, order: e.order, steps: this.accountant.steps, clipNorm: this.lastClip ?? this.clip };
  }

  aggregate(base: Float32Array, agg: AggregateView, results: readonly AcceptedResult[], failures: readonly FailedResult[]): AggregateOutcome {
    // Every aggregation is a step: agents have released their updates whatever the outcome.
    this.accountant.compose(this.step);
    this.lastClip = this.clip;
    if (this.local) return this.inner.aggregate(base, agg, results, failures);
    const D = this.opts.buffered
      ? this.opts.buffered.bufferSize
      : this.denom ?? Math.max(this.opts.samplingRate * this.opts.populationSize(), Number.MIN_VALUE);
    return this.noisedStep(base, agg, results, D);
  }

  /**
   * A private async step is the same mechanism with D = K (opts.buffered): the noise already fixes the denominator,
   * so the FedBuff rescaling is not applied. Local DP keeps the inner strategy's plain mean, as runs always have.
   */
  aggregateBuffered(base: Float32Array, agg: AggregateView, results: readonly AcceptedResult[], failures: readonly FailedResult[]): AggregateOutcome {
    return this.aggregate(base, agg, results, failures);
  }

  serverStep(base: Float32Array, delta: Float32Array): Float32Array {
    return this.inner.serverStep(base, delta);
  }

  /** Central DP: (sum of clipped, weight <= 1 updates + N(0, (z S)^2)) / D, then the adaptive clip-norm update. */
  private noisedStep(base: Float32Array, agg: AggregateView, results: readonly AcceptedResult[], D: number): AggregateOutcome {
    const sum = agg.count > 0 ? agg.mean() : new Float32Array(base.length);
    const scale = agg.count > 0 ? agg.totalWeight : 0; // weights are 1, so mean * totalWeight is the sum
    const std = this.updateNoiseMultiplier * this.clip;
    const out = new Float32Array(base.length);
    for (let i = 0; i < out.length; i++) out[i] = (sum[i]! * scale + std * this.noise.next()) / D;

    const a = this.p.adaptiveClipping;
    if (a) {
      const sb = a.countNoiseStd ?? this.p.noiseMultiplier;
      // b_i = 1 when the update was within the clip norm; a result without the bit counts as clipped.
      let centred = 0;
      for (const r of results) centred += (r.metrics.dp_clipped === 0 ? 1 : 0) - 0.5;
      const unclipped = (centred + sb * this.noise.next()) / D + 0.5;
      this.clip *= Math.exp(-a.learningRate * (unclipped - a.targetQuantile));
    }
    return { ok: true, weights: this.inner.serverStep(base, out) };
  }
}
