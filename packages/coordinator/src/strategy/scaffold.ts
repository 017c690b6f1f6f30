/**
 * SCAFFOLD (Karimireddy et al. 2020, option II control variates) as a strategy: the server keeps a control variate c
 * (model-sized); every training task names it by sha256 and agents fetch it like a model version; every update is
 * [Δy | Δc] (2n float32 values, the header says so), averaged unweighted as in the paper; then x ← x + η_g·mean(Δy)
 * and c ← c + (|S|/N)·mean(Δc) (rules/scaffold.ts). The agents' side (corrected SGD steps, their own variates
 * on disk) is in @fedge/ml task/scaffold.ts and the edge agent's executor.
 *
 * State: c is the only server state; its blob is content-addressed and is at once what agents download and what the
 * run context stores in the model store (stateBlobs), so a kill -9 resumes with the c that pairs with the saved model.
 * Sync rounds only (the combinations table refuses async, central DP and compression other than float32).
 */
import { blobDigest, type ModelBlob, type TrainConfigMsg } from '@fedge/proto';
import { FedAvg, summarizeFailures, type FedAvgOptions } from './fedavg.js';
import { sampledShare, scaffoldServerStep, splitStacked } from './rules/scaffold.js';
import type { AcceptedResult, AggregateOutcome, AggregateView, ControlVariates, FailedResult, ScaffoldStateRef, StateBlob, StrategyState } from './strategy.js';

/** The variate blob's topology.format: it can never be mistaken for a model (the digest covers the topology). */
export const SCAFFOLD_VARIATE_FORMAT = 'fedge-scaffold-variate/1';

export interface ScaffoldOptions {
  /** η_g, the server learning rate (the paper's global step size; 1 is FedAvg's full step). */
  serverLr: number;
  /** N: agents that hold a variate (the registered population); c moves by |S|/N of the round's mean Δc. */
  populationSize: () => number;
}

interface Held { ref: ScaffoldStateRef; blob: ModelBlob }

export class ScaffoldStrategy extends FedAvg implements ControlVariates {
  private c: Float32Array | undefined;
  private step = 0;
  /** The blob of the current step, and the one before it (an agent may fetch just as a round closes). */
  private held: Held | undefined;
  private previous: Held | undefined;
  readonly controlVariates: ControlVariates = this;
  private readonly minResults: number;

  constructor(fedavg: Omit<FedAvgOptions, 'name'>, private readonly sopts: ScaffoldOptions) {
    super({ ...fedavg, name: 'scaffold', serverLearningRate: sopts.serverLr });
    this.minResults = fedavg.minResults;
  }

  /** The paper averages Δy and Δc over the sampled agents unweighted (x ← x + η_g/|S| Σ Δy_i). */
  override weightOf(): number {
    return 1;
  }

  init(numParams: number): void {
    if (this.c && this.c.length !== numParams) throw new RangeError(`scaffold: the server control variate holds ${this.c.length} values, the model has ${numParams}`);
    this.c ??= new Float32Array(numParams);
  }

  private variate(numParams: number): Float32Array {
    this.init(numParams);
    return this.c!;
  }

  override aggregate(base: Float32Array, agg: AggregateView, results: readonly AcceptedResult[], failures: readonly FailedResult[]): AggregateOutcome {
    if (results.length < this.minResults || agg.count === 0) {
      const why = failures.length ? `; failures: ${summarizeFailures(failures)}` : '';
      return { ok: false, reason: `only ${results.length} of the ${this.minResults} required results arrived${why}` };
    }
    const n = base.length;
    const { dy, dc } = splitStacked(agg.mean(), n);
    const weights = scaffoldServerStep(base, this.variate(n), dy, dc, this.sopts.serverLr, sampledShare(agg.count, this.sopts.populationSize()));
    this.step++;
    return { ok: true, weights };
  }

  /** Never reached: the run config refuses scaffold in async mode (a buffered step has no round of variate deltas). */
  override aggregateBuffered(): AggregateOutcome {
    return { ok: false, reason: 'scaffold runs in sync mode only (mode "async" is refused by the run config)' };
  }

  /** Every training task names the server variate the agent must fetch (and correct its steps with). */
  taskConfig(): Partial<TrainConfigMsg> {
    return { controlVariateSha256: this.current().sha256 };
  }

  current(): StateBlob {
    const h = this.heldNow();
    return { sha256: h.ref.sha256, blob: h.blob };
  }

  find(sha256: string): ModelBlob | undefined {
    if (this.held?.ref.sha256 === sha256) return this.held.blob;
    return this.previous?.ref.sha256 === sha256 ? this.previous.blob : undefined;
  }

  private heldNow(): Held {
    if (!this.c) throw new Error('scaffold: the server control variate is not initialised (init(numParams) before the first task)');
    if (this.held?.ref.step === this.step) return this.held;
    const n = this.c.length;
    const blob: ModelBlob = {
      topology: { format: SCAFFOLD_VARIATE_FORMAT, step: this.step },
      tensors: [{ name: 'c', dtype: 'float32', shape: [n] }],
      weights: this.c.slice(),
    };
    this.previous = this.held;
    this.held = { ref: { numParams: n, step: this.step, sha256: blobDigest(blob) }, blob };
    return this.held;
  }

  snapshot(): StrategyState {
    return this.c && this.step > 0 ? { scaffoldState: this.heldNow().ref } : {};
  }

  stateBlobs(): StateBlob[] {
    return this.c && this.step > 0 ? [this.current()] : [];
  }

  /** A run past version 0 without its saved c would restart the variates from zero while agents keep theirs. */
  resumeBlocker(state: StrategyState, progress: { modelVersion: number }): string | undefined {
    if (progress.modelVersion > 0 && !state.scaffoldState) return `this scaffold run has no saved server control variate for version ${progress.modelVersion}`;
    return undefined;
  }

  restore(state: StrategyState, blobs?: ReadonlyMap<string, ModelBlob>): void {
    const ref = state.scaffoldState;
    if (!ref) return;
    const blob = blobs?.get(ref.sha256);
    if (!blob) throw new Error(`scaffold: the server control variate ${ref.sha256} was not loaded`);
    const top = blob.topology as { format?: unknown; step?: unknown } | null;
    if (top?.format !== SCAFFOLD_VARIATE_FORMAT || top.step !== ref.step) throw new Error(`scaffold: blob ${ref.sha256} is not the control variate of step ${ref.step}`);
    if (blob.weights.length !== ref.numParams) throw new Error(`scaffold: blob ${ref.sha256} holds ${blob.weights.length} values, expected ${ref.numParams}`);
    this.c = blob.weights.slice();
    this.step = ref.step;
    this.held = { ref, blob };
    this.previous = undefined;
  }
}
