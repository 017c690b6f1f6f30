/**
 * A running RDP accountant and the planner functions behind `fedge privacy epsilon|noise`.
 *
 * Arguments from users are checked here with messages that name the flag's quantity, so the CLI and the run config
 * report the same thing.
 */
import { ValidationError } from '@fedge/proto';
import { epsilonFromRdp, type Conversion, type EpsilonResult } from './conversion.js';
import { DEFAULT_ORDERS, computeRdp } from './rdp.js';

export interface MechanismParams {
  /** Poisson sampling rate of one step, in (0, 1]. */
  samplingRate: number;
  /** Noise std divided by the L2 sensitivity (clip norm), > 0. */
  noiseMultiplier: number;
}

export interface EpsilonQuery extends MechanismParams {
  steps: number;
  delta: number;
  orders?: readonly number[];
  conversion?: Conversion;
}

export function checkSamplingRate(q: number, what = 'sampling rate'): void {
  if (!(Number.isFinite(q) && q > 0 && q <= 1)) throw new ValidationError(`${what} must be in (0, 1], got ${q}`);
}
export function checkNoiseMultiplier(z: number, what = 'noise multiplier'): void {
  if (!(Number.isFinite(z) && z > 0)) throw new ValidationError(`${what} must be greater than 0, got ${z}`);
}
export function checkDelta(delta: number, what = 'delta'): void {
  if (!(Number.isFinite(delta) && delta > 0 && delta < 1)) throw new ValidationError(`${what} must be in (0, 1), got ${delta}`);
}
export function checkSteps(steps: number, what = 'steps'): void {
  if (!(Number.isInteger(steps) && steps >= 1)) throw new ValidationError(`${what} must be an integer of at least 1, got ${steps}`);
}
export function checkOrders(orders: readonly number[], what = 'orders'): void {
  if (orders.length === 0) throw new ValidationError(`${what}: give at least one RDP order`);
  for (const a of orders)
    if (!(Number.isFinite(a) && a > 1)) throw new ValidationError(`${what}: every RDP order must be a finite number greater than 1, got ${a}`);
}

/** Accumulates RDP over heterogeneous steps (each with its own q and z) and reports epsilon at any delta. */
export class RdpAccountant {
  readonly orders: readonly number[];
  private readonly rdp: number[];
  private stepCount = 0;

  constructor(orders: readonly number[] = DEFAULT_ORDERS) {
    checkOrders(orders);
    this.orders = [...orders];
    this.rdp = orders.map(() => 0);
  }

  get steps(): number {
    return this.stepCount;
  }

  /** Composes `steps` steps of the Poisson-subsampled Gaussian mechanism. */
  compose(p: MechanismParams, steps = 1): this {
    this.add(this.rdpOf(p, steps));
    this.stepCount += steps;
    return this;
  }

  /** Epsilon at `delta` after the steps composed so far. */
  epsilon(delta: number, conversion: Conversion = 'improved'): EpsilonResult {
    return epsilonFromRdp(this.orders, this.rdp, delta, conversion);
  }

  /** Epsilon at `delta` if `steps` more steps with `p` were composed (the accountant is not changed). */
  epsilonAfter(p: MechanismParams, delta: number, steps = 1, conversion: Conversion = 'improved'): EpsilonResult {
    const extra = this.rdpOf(p, steps);
    return epsilonFromRdp(this.orders, this.rdp.map((r, i) => r + extra[i]!), delta, conversion);
  }

  private rdpOf(p: MechanismParams, steps: number): number[] {
    checkSamplingRate(p.samplingRate);
    checkNoiseMultiplier(p.noiseMultiplier);
    checkSteps(steps);
    return computeRdp(p.samplingRate, p.noiseMultiplier, steps, this.orders);
  }

  private add(r: readonly number[]): void {
    for (let i = 0; i < r.length; i++) this.rdp[i]! += r[i]!;
  }
}

/** Epsilon of `steps` steps of the Poisson-subsampled Gaussian mechanism at `delta`, and the optimal order. */
export function planEpsilon(q: EpsilonQuery): EpsilonResult {
  checkSamplingRate(q.samplingRate);
  checkNoiseMultiplier(q.noiseMultiplier);
  checkSteps(q.steps);
  checkDelta(q.delta);
  const acc = new RdpAccountant(q.orders ?? DEFAULT_ORDERS);
  return acc.compose(q, q.steps).epsilon(q.delta, q.conversion ?? 'improved');
}

export interface NoiseQuery {
  targetEpsilon: number;
  samplingRate: number;
  steps: number;
  delta: number;
  orders?: readonly number[];
}

/**
 * Smallest noise multiplier whose epsilon at `delta` after `steps` steps is at most `targetEpsilon`, to a relative
 * precision of 1e-9 (the value returned always meets the target). Epsilon decreases monotonically in z, so this is a
 * bisection on a bracket found by doubling.
 */
export function planNoise(q: NoiseQuery): { noiseMultiplier: number; epsilon: number; order: number } {
  if (!(Number.isFinite(q.targetEpsilon) && q.targetEpsilon > 0)) throw new ValidationError(`target epsilon must be greater than 0, got ${q.targetEpsilon}`);
  checkSamplingRate(q.samplingRate);
  checkSteps(q.steps);
  checkDelta(q.delta);
  const orders = q.orders ?? DEFAULT_ORDERS;
  checkOrders(orders);
  const eps = (z: number): EpsilonResult => planEpsilon({ samplingRate: q.samplingRate, noiseMultiplier: z, steps: q.steps, delta: q.delta, orders });
  let hi = 1;
  let hiEps = eps(hi);
  while (hiEps.epsilon > q.targetEpsilon) {
    hi *= 2;
    if (hi > 1e7) throw new ValidationError(`target epsilon ${q.targetEpsilon} is not reachable with a noise multiplier below 1e7; raise it or lower the steps`);
    hiEps = eps(hi);
  }
  let lo = hi / 2;
  while (eps(lo).epsilon <= q.targetEpsilon) {
    hi = lo;
    lo /= 2;
    if (lo < 1e-9) break;
  }
  hiEps = eps(hi);
  while (hi - lo > 1e-9 * hi) {
    const mid = (lo + hi) / 2;
    const e = eps(mid);
    if (e.epsilon <= q.targetEpsilon) {
      hi = mid;
      hiEps = e;
    } else lo = mid;
  }
  return { noiseMultiplier: hi, epsilon: hiEps.epsilon, order: hiEps.order };
}
