/**
 * Server optimizers as strategies: FedAvgM (Hsu et al. 2019) and FedAdam / FedYogi / FedAdagrad (Reddi et al. 2021).
 * Selection, weights and the aggregate are FedAvg's (sync: the example-weighted mean of the deltas; async: FedBuff's
 * staleness-weighted step; under DP: the noised mean); only the server step differs: the mean is the pseudo-gradient
 * Δ a rule in rules/server-opt.ts turns into the next model, keeping its moments. The four share everything but the
 * rule, so they are one class; a new server optimizer is its rule plus a registry line in index.ts.
 *
 * State: the moments are model-sized (m, and v for the adaptive rules), so they are not put in the JSON run record:
 * stateBlobs() hands them to the run context as one content-addressed blob (stored like a model version), and the
 * snapshot names it by sha256 with its step and options. The blob is built (copied and hashed) once per step.
 */
import { blobDigest, type ModelBlob } from '@fedge/proto';
import { FedAvg, type FedAvgOptions } from './fedavg.js';
import { createServerOptimizer, type AdaptiveOptions, type FedAvgMOptions, type ServerOptimizer, type ServerOptName } from './rules/server-opt.js';
import type { ServerOptStateRef, StateBlob, ResumeProgress, StrategyState } from './strategy.js';

/** The blob's topology.format: a state blob can never be mistaken for a model (its digest covers the topology). */
const SERVER_OPT_STATE_FORMAT = 'fedge-server-opt-state/1';

export class ServerOptStrategy extends FedAvg {
  private opt: ServerOptimizer | undefined;
  /** The blob of the optimizer's current step (built on the first snapshot after the step). */
  private cached: { step: number; ref: ServerOptStateRef; blob: ModelBlob } | undefined;

  constructor(
    readonly rule: ServerOptName,
    fedavg: Omit<FedAvgOptions, 'name'>,
    private readonly ruleOptions: FedAvgMOptions & AdaptiveOptions,
  ) {
    super({ ...fedavg, name: rule });
  }

  /** The optimizer, created on the first step (the model's size is known then). */
  private optimizer(numParams: number): ServerOptimizer {
    this.opt ??= createServerOptimizer(this.rule, numParams, this.ruleOptions);
    if (this.opt.numParams !== numParams) throw new RangeError(`${this.rule}: the optimizer holds ${this.opt.numParams} params, the model has ${numParams}`);
    return this.opt;
  }

  /** Rounds applied so far (0 before the first). */
  get step(): number {
    return this.opt?.step ?? 0;
  }

  /** w ← rule(w, Δ): a new array; the moments advance one step. */
  override serverStep(base: Float32Array, delta: Float32Array): Float32Array {
    const next = base.slice();
    this.optimizer(base.length).apply(next, delta);
    return next;
  }

  private current(): { ref: ServerOptStateRef; blob: ModelBlob } | undefined {
    const opt = this.opt;
    if (!opt || opt.step === 0) return undefined;
    if (this.cached?.step === opt.step) return this.cached;
    const s = opt.exportState();
    const n = opt.numParams;
    const weights = new Float32Array(s.v ? 2 * n : n);
    weights.set(s.m);
    if (s.v) weights.set(s.v, n);
    const blob: ModelBlob = {
      topology: { format: SERVER_OPT_STATE_FORMAT, name: this.rule, step: s.step, options: s.options },
      tensors: [{ name: 'm', dtype: 'float32', shape: [n] }, ...(s.v ? [{ name: 'v', dtype: 'float32' as const, shape: [n] }] : [])],
      weights,
    };
    const ref: ServerOptStateRef = { name: this.rule, numParams: n, step: s.step, options: s.options, sha256: blobDigest(blob) };
    this.cached = { step: s.step, ref, blob };
    return this.cached;
  }

  snapshot(): StrategyState {
    const c = this.current();
    return c ? { serverOptState: c.ref } : {};
  }

  stateBlobs(): StateBlob[] {
    const c = this.current();
    return c ? [{ sha256: c.ref.sha256, blob: c.blob }] : [];
  }

  resumeBlocker(state: StrategyState, progress: ResumeProgress): string | undefined {
    // Moments lost: continuing from fresh ones would silently change the run (and its final model).
    if (progress.modelVersion > 0 && !state.serverOptState)
      return `this ${this.rule} run has no saved server optimizer state for version ${progress.modelVersion}`;
    return undefined;
  }

  restore(state: StrategyState, blobs?: ReadonlyMap<string, ModelBlob>): void {
    const ref = state.serverOptState;
    if (!ref) return;
    if (ref.name !== this.rule) throw new Error(`${this.rule}: the saved server state is ${ref.name}'s; resume with the run's original strategy`);
    const blob = blobs?.get(ref.sha256);
    if (!blob) throw new Error(`${this.rule}: the server optimizer state ${ref.sha256} was not loaded`);
    const top = blob.topology as { format?: unknown; name?: unknown; step?: unknown } | null;
    if (top?.format !== SERVER_OPT_STATE_FORMAT || top.name !== this.rule || top.step !== ref.step)
      throw new Error(`${this.rule}: blob ${ref.sha256} is not the ${this.rule} state of step ${ref.step}`);
    const n = ref.numParams;
    const hasV = blob.tensors.length === 2;
    if (blob.weights.length !== (hasV ? 2 * n : n)) throw new Error(`${this.rule}: blob ${ref.sha256} holds ${blob.weights.length} values, expected ${hasV ? 2 * n : n}`);
    const opt = createServerOptimizer(this.rule, n, this.ruleOptions);
    opt.importState({ step: ref.step, options: ref.options, m: blob.weights.subarray(0, n), ...(hasV ? { v: blob.weights.subarray(n, 2 * n) } : {}) });
    this.opt = opt;
    this.cached = undefined;
  }
}
