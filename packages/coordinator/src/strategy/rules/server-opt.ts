/** Server optimizers on the round's pseudo-gradient Δ: FedAvgM (Hsu et al. 2019) and FedAdagrad / FedAdam / FedYogi (Reddi et al. 2021, Algorithm 2), with lossless snapshot/restore. */

// Conventions, shared by every rule here:
//  - Δ is the pseudo-gradient the strategy already aggregated (e.g. the weighted mean of the
//    agents' deltas w_k − w). Its sign points to where the agents went, so every rule ADDS
//    its step (w ← w + …), exactly as the paper writes x_{t+1} = x_t + η m_t / (√v_t + τ).
//  - Per coordinate the arithmetic runs in float64 and only the stored state (m, v, w) is
//    rounded to float32. The state is the same bytes after a snapshot/restore, and the step is
//    a deterministic function of (state, Δ), so a restarted coordinator continues bit-identically.
//  - No bias correction: Algorithm 2 has none (unlike Kingma & Ba's Adam); τ plays that role
//    early on by bounding the denominator from below.
//  - Δ is checked for NaN/±Infinity BEFORE any state is touched: one poisoned round would
//    otherwise live in m and v for the rest of the run.

export type ServerOptName = 'fedavgm' | 'fedadam' | 'fedyogi' | 'fedadagrad';

export const SERVER_OPT_NAMES: readonly ServerOptName[] = ['fedavgm', 'fedadam', 'fedyogi', 'fedadagrad'];

export interface FedAvgMOptions {
  /** η, server learning rate. Default 1: with momentum 0 the rule is plain FedAvg (w ← w + Δ). */
  serverLr?: number;
  /** β, server momentum. Default 0.9 (Hsu et al. 2019 sweep it; 0.9 is the usual choice and what Reddi et al. use for FedAvgM). */
  momentum?: number;
}

export interface AdaptiveOptions {
  /** η, server learning rate. Default 1e-2 (a value from the paper's tuning grid; tune per task). */
  serverLr?: number;
  /** β1, first-moment decay. Default 0.9 for fedadam/fedyogi; 0 for fedadagrad (plain Adagrad has no momentum; set it to use Algorithm 2's momentum form). */
  beta1?: number;
  /** β2, second-moment decay (fedadam, fedyogi; unused by fedadagrad). Default 0.99. */
  beta2?: number;
  /** τ, adaptivity: floor of the denominator √v + τ. Default 1e-3. */
  tau?: number;
}

/** JSON-safe state of a server optimizer (goes into the run record). */
export interface ServerOptSnapshot {
  name: ServerOptName;
  numParams: number;
  /** Rounds applied so far. */
  step: number;
  /** Resolved options (defaults filled in); restore() refuses a snapshot taken with different ones. */
  options: Record<string, number>;
  /** First moment / momentum buffer: float32 little-endian bytes, base64. */
  m: string;
  /** Second moment (adaptive rules only), same encoding. */
  v?: string;
}

export interface ServerOptimizer {
  readonly name: ServerOptName;
  readonly numParams: number;
  readonly options: Readonly<Record<string, number>>;
  /** Rounds applied so far. */
  readonly step: number;
  /** One server step: updates the state and `weights` in place from the pseudo-gradient `delta`. */
  apply(weights: Float32Array, delta: Float32Array): void;
  snapshot(): ServerOptSnapshot;
  /** Replaces the state with a snapshot of an optimizer of the same name, size and options. */
  restore(snapshot: ServerOptSnapshot): void;
  /** The raw state (copies of m and v), for stores that keep model-sized state as binary rather than base64 in JSON. */
  exportState(): ServerOptRawState;
  /** Replaces the state with exportState()'s of an optimizer of the same name, size and options (checked as restore does). */
  importState(state: ServerOptRawState): void;
}

/** exportState()'s form: the same content as a snapshot, with m and v as float32 arrays. */
export interface ServerOptRawState {
  step: number;
  options: Record<string, number>;
  m: Float32Array;
  v?: Float32Array;
}

// ---------------------------------------------------------------------------------------
// Lossless Float32Array <-> base64. Explicitly little-endian so a record written on one host
// restores on any other; on little-endian hosts (all Node targets in practice) the bytes are
// used as they are, without a per-element DataView pass.

const HOST_LE = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Float32 values as base64 of their little-endian bytes (exact: every bit pattern, NaN payloads and -0 included). */
export function float32ToBase64(values: Float32Array): string {
  if (HOST_LE) return Buffer.from(values.buffer, values.byteOffset, values.byteLength).toString('base64');
  const out = Buffer.alloc(values.byteLength);
  const dv = new DataView(out.buffer, out.byteOffset, out.byteLength);
  for (let i = 0; i < values.length; i++) dv.setFloat32(i * 4, values[i]!, true);
  return out.toString('base64');
}

/** Inverse of float32ToBase64; `expectedLength` guards against a truncated or foreign record. */
export function base64ToFloat32(b64: string, expectedLength: number): Float32Array {
  const bytes = Buffer.from(b64, 'base64');
  if (bytes.byteLength !== expectedLength * 4) {
    throw new RangeError(`snapshot buffer holds ${bytes.byteLength} bytes, expected ${expectedLength * 4} (${expectedLength} float32 values)`);
  }
  const out = new Float32Array(expectedLength);
  if (HOST_LE) new Uint8Array(out.buffer).set(bytes);
  else {
    const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    for (let i = 0; i < expectedLength; i++) out[i] = dv.getFloat32(i * 4, true);
  }
  return out;
}

// ---------------------------------------------------------------------------------------

function checkOption(name: ServerOptName, key: string, value: number, ok: (x: number) => boolean, range: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || !ok(value)) {
    throw new RangeError(`${name}: option ${key} must be ${range}, got ${value}`);
  }
  return value;
}

const inUnit = (x: number): boolean => x >= 0 && x < 1;
const positive = (x: number): boolean => x > 0;

function resolveOptions(name: ServerOptName, o: FedAvgMOptions & AdaptiveOptions): Record<string, number> {
  if (name === 'fedavgm') {
    return {
      serverLr: checkOption(name, 'serverLr', o.serverLr ?? 1, positive, 'a positive number'),
      momentum: checkOption(name, 'momentum', o.momentum ?? 0.9, inUnit, 'in [0, 1)'),
    };
  }
  const r: Record<string, number> = {
    serverLr: checkOption(name, 'serverLr', o.serverLr ?? 1e-2, positive, 'a positive number'),
    beta1: checkOption(name, 'beta1', o.beta1 ?? (name === 'fedadagrad' ? 0 : 0.9), inUnit, 'in [0, 1)'),
    tau: checkOption(name, 'tau', o.tau ?? 1e-3, positive, 'a positive number (it keeps √v + τ away from 0)'),
  };
  if (name !== 'fedadagrad') r.beta2 = checkOption(name, 'beta2', o.beta2 ?? 0.99, inUnit, 'in [0, 1)');
  return r;
}

class ServerOpt implements ServerOptimizer {
  readonly options: Readonly<Record<string, number>>;
  #step = 0;
  #m: Float32Array;
  #v: Float32Array | null;

  constructor(
    readonly name: ServerOptName,
    readonly numParams: number,
    opts: FedAvgMOptions & AdaptiveOptions,
  ) {
    if (!Number.isSafeInteger(numParams) || numParams < 0) throw new RangeError(`${name}: numParams must be a non-negative integer, got ${numParams}`);
    this.options = Object.freeze(resolveOptions(name, opts));
    this.#m = new Float32Array(numParams);
    // Initial v: Algorithm 2 asks for v_{-1} ≥ τ². We take the smallest allowed value, τ²: the
    // closest the paper permits to "v starts empty" (Flower and TFF start from v = 0), so early
    // steps are not damped by a made-up second moment, while the first denominator is already at
    // least √(β2)·τ + τ instead of depending on τ alone. m starts at 0 as in the paper.
    this.#v = name === 'fedavgm' ? null : new Float32Array(numParams).fill(this.options.tau! * this.options.tau!);
  }

  get step(): number {
    return this.#step;
  }

  apply(weights: Float32Array, delta: Float32Array): void {
    const n = this.numParams;
    if (weights.length !== n || delta.length !== n) {
      throw new RangeError(`${this.name}: weights (${weights.length}) and delta (${delta.length}) must both have ${n} values`);
    }
    for (let i = 0; i < n; i++) {
      if (!Number.isFinite(delta[i]!)) throw new RangeError(`${this.name}: delta[${i}] is ${delta[i]}; refusing to fold a non-finite pseudo-gradient into the optimizer state`);
    }
    const m = this.#m;
    const o = this.options;
    const lr = o.serverLr!;
    if (this.name === 'fedavgm') {
      // Hsu et al.: m ← β m + Δ; w ← w + η m (heavy-ball momentum on the pseudo-gradient).
      const beta = o.momentum!;
      for (let i = 0; i < n; i++) {
        const mi = beta * m[i]! + delta[i]!;
        m[i] = mi;
        weights[i] = weights[i]! + lr * mi;
      }
    } else {
      const v = this.#v!;
      const b1 = o.beta1!;
      const b2 = o.beta2 ?? 0;
      const tau = o.tau!;
      const kind = this.name;
      for (let i = 0; i < n; i++) {
        const d = delta[i]!;
        const d2 = d * d;
        const mi = b1 * m[i]! + (1 - b1) * d;
        const vPrev = v[i]!;
        let vi: number;
        if (kind === 'fedadam') vi = b2 * vPrev + (1 - b2) * d2;
        else if (kind === 'fedyogi') vi = vPrev - (1 - b2) * d2 * Math.sign(vPrev - d2);
        else vi = vPrev + d2; // fedadagrad
        m[i] = mi;
        v[i] = vi;
        // The step uses the float64 mi, vi just computed; they are pure functions of the stored
        // float32 state and Δ, so this stays deterministic across a restore.
        weights[i] = weights[i]! + (lr * mi) / (Math.sqrt(vi) + tau);
      }
    }
    this.#step++;
  }

  snapshot(): ServerOptSnapshot {
    const s: ServerOptSnapshot = {
      name: this.name,
      numParams: this.numParams,
      step: this.#step,
      options: { ...this.options },
      m: float32ToBase64(this.#m),
    };
    if (this.#v) s.v = float32ToBase64(this.#v);
    return s;
  }

  restore(s: ServerOptSnapshot): void {
    if (s.name !== this.name) throw new Error(`cannot restore a ${s.name} snapshot into ${this.name}`);
    if (s.numParams !== this.numParams) throw new Error(`${this.name}: snapshot is for ${s.numParams} params, this model has ${this.numParams}`);
    this.checkOptionsAndStep(s.options, s.step);
    const m = base64ToFloat32(s.m, this.numParams);
    let v: Float32Array | null = null;
    if (this.#v) {
      if (typeof s.v !== 'string') throw new Error(`${this.name}: snapshot has no second moment v`);
      v = base64ToFloat32(s.v, this.numParams);
    }
    // Assign only after every field decoded, so a bad snapshot leaves the optimizer as it was.
    this.#m = m;
    this.#v = v;
    this.#step = s.step;
  }

  exportState(): ServerOptRawState {
    return { step: this.#step, options: { ...this.options }, m: this.#m.slice(), ...(this.#v ? { v: this.#v.slice() } : {}) };
  }

  importState(s: ServerOptRawState): void {
    this.checkOptionsAndStep(s.options, s.step);
    if (s.m.length !== this.numParams) throw new RangeError(`${this.name}: state m has ${s.m.length} values, this model has ${this.numParams}`);
    if (this.#v && s.v?.length !== this.numParams) throw new RangeError(`${this.name}: state v has ${s.v?.length ?? 'no'} values, this model has ${this.numParams}`);
    this.#m = s.m.slice();
    this.#v = this.#v ? s.v!.slice() : null;
    this.#step = s.step;
  }

  private checkOptionsAndStep(options: Record<string, number> | undefined, step: number): void {
    // Different hyper-parameters would silently continue a different run; refuse and say which.
    const keys = new Set([...Object.keys(options ?? {}), ...Object.keys(this.options)]);
    for (const k of keys) {
      if (!Object.is(options?.[k], this.options[k])) {
        throw new Error(`${this.name}: snapshot option ${k}=${options?.[k]} differs from the configured ${k}=${this.options[k]}; resume with the run's original options`);
      }
    }
    if (!Number.isSafeInteger(step) || step < 0) throw new RangeError(`${this.name}: snapshot step must be a non-negative integer, got ${step}`);
  }
}

export function createServerOptimizer(name: 'fedavgm', numParams: number, options?: FedAvgMOptions): ServerOptimizer;
export function createServerOptimizer(name: 'fedadam' | 'fedyogi' | 'fedadagrad', numParams: number, options?: AdaptiveOptions): ServerOptimizer;
export function createServerOptimizer(name: ServerOptName, numParams: number, options?: FedAvgMOptions | AdaptiveOptions): ServerOptimizer;
/** A fresh optimizer (m = 0, v = τ²) for a model of `numParams` float32 values. */
export function createServerOptimizer(name: ServerOptName, numParams: number, options: FedAvgMOptions | AdaptiveOptions = {}): ServerOptimizer {
  if (!SERVER_OPT_NAMES.includes(name)) throw new Error(`unknown server optimizer ${JSON.stringify(name)}; expected one of ${SERVER_OPT_NAMES.join(', ')}`);
  return new ServerOpt(name, numParams, options);
}

/** An optimizer rebuilt from a snapshot alone (its recorded options). */
export function restoreServerOptimizer(snapshot: ServerOptSnapshot): ServerOptimizer {
  const opt = createServerOptimizer(snapshot.name, snapshot.numParams, snapshot.options);
  opt.restore(snapshot);
  return opt;
}
