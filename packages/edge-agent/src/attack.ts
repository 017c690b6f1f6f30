/**
 * Simulated attackers (`fedge-agent --attack KIND`), for tests, benchmarks and demos of robust aggregation.
 *
 * Model attacks replace or distort the trained delta before packUpdate, so error feedback, clipping, local noise and
 * compression still apply to it, as they would to an update from a modified client running the real client code.
 * label-flip poisons the data instead: the worker trains on flipped training labels (the held-out split stays
 * honest, so the agent's federated evaluation is still a true measurement of the global model).
 */
import type { Dataset } from '@fedge/ml';

export type Attack =
  /** delta := -scale * delta. */
  | { kind: 'sign-flip'; scale: number }
  /** delta := N(0, std^2) per parameter; the honest delta is discarded. */
  | { kind: 'gaussian'; std: number }
  /** Every parameter of the delta := value. */
  | { kind: 'constant'; value: number }
  /** Train on flipped labels (classification y := K-1-y; binary/multilabel y := 1-y; regression y := -y). */
  | { kind: 'label-flip' };

export const ATTACK_KINDS = 'sign-flip[:SCALE] (default 1), gaussian:STD, constant:VALUE or label-flip';

/** A bad --attack: the message names the flag, what was wrong and an example that works. */
export class AttackSpecError extends Error {
  override readonly name = 'AttackSpecError';
}

/** Parses `sign-flip[:SCALE]`, `gaussian:STD`, `constant:VALUE` or `label-flip`; errors name `flag` and the fix. */
export function parseAttack(spec: string, flag = '--attack'): Attack {
  const s = spec.trim();
  const colon = s.indexOf(':');
  const kind = (colon < 0 ? s : s.slice(0, colon)).toLowerCase();
  const arg = colon < 0 ? undefined : s.slice(colon + 1).trim();
  const num = (what: string, example: string, ok: (n: number) => boolean, must: string): number => {
    if (arg === undefined || arg === '') throw new AttackSpecError(`${flag} ${kind} needs ${what}: ${kind}:${what}, e.g. ${flag} ${example}`);
    const n = Number(arg);
    if (!Number.isFinite(n) || !ok(n)) throw new AttackSpecError(`${flag} ${kind}:${what}: ${what} must be ${must}, got "${arg}" (e.g. ${flag} ${example})`);
    return n;
  };
  switch (kind) {
    case 'sign-flip':
      return { kind, scale: arg === undefined ? 1 : num('SCALE', 'sign-flip:10', (n) => n > 0, 'a positive number') };
    case 'gaussian':
      return { kind, std: num('STD', 'gaussian:1', (n) => n > 0, 'a positive number') };
    case 'constant':
      return { kind, value: num('VALUE', 'constant:0.5', () => true, 'a finite number') };
    case 'label-flip':
      if (arg !== undefined) throw new AttackSpecError(`${flag} label-flip takes no value, got "${s}" (use ${flag} label-flip)`);
      return { kind };
    default:
      throw new AttackSpecError(`${flag}: unknown attack "${spec}"; use ${ATTACK_KINDS}, e.g. ${flag} sign-flip:10`);
  }
}

/** The spec back as text (`sign-flip:10`): what the demo passes on and logs show. */
export function formatAttack(a: Attack): string {
  switch (a.kind) {
    case 'sign-flip': return `sign-flip:${a.scale}`;
    case 'gaussian': return `gaussian:${a.std}`;
    case 'constant': return `constant:${a.value}`;
    case 'label-flip': return 'label-flip';
  }
}

/** One line for the attacker's start-up warning. */
export function describeAttack(a: Attack): string {
  switch (a.kind) {
    case 'sign-flip': return `${formatAttack(a)}: sends -${a.scale} x its honest update`;
    case 'gaussian': return `${formatAttack(a)}: sends Gaussian noise (std ${a.std}) instead of its update`;
    case 'constant': return `${formatAttack(a)}: sends ${a.value} for every parameter of its update`;
    case 'label-flip': return 'label-flip: trains on flipped labels (its held-out evaluation stays honest)';
  }
}

/** True for the attacks that change the delta (label-flip changes the training data instead). */
export function isModelAttack(a: Attack | undefined): a is Exclude<Attack, { kind: 'label-flip' }> {
  return !!a && a.kind !== 'label-flip';
}

/**
 * Applies a model attack to `delta` in place (label-flip: unchanged). `rng` (uniform in [0, 1)) drives gaussian;
 * pass a seeded one for reproducible runs.
 */
export function attackDelta(delta: Float32Array, a: Attack, rng: () => number = Math.random): void {
  switch (a.kind) {
    case 'sign-flip':
      for (let i = 0; i < delta.length; i++) delta[i] = -a.scale * delta[i]!;
      return;
    case 'gaussian':
      // Box-Muller, both outputs used; 1 - u keeps log away from 0.
      for (let i = 0; i < delta.length; i += 2) {
        const r = a.std * Math.sqrt(-2 * Math.log(1 - rng()));
        const t = 2 * Math.PI * rng();
        delta[i] = r * Math.cos(t);
        if (i + 1 < delta.length) delta[i + 1] = r * Math.sin(t);
      }
      return;
    case 'constant':
      delta.fill(a.value);
      return;
    case 'label-flip':
      return;
  }
}

export type FlipTaskType = 'classification' | 'binary' | 'multilabel' | 'regression';

/**
 * A copy of `ds` with flipped labels: classification y := K-1-y (K = ds.numClasses), binary and multilabel
 * y := 1-y, regression y := -y (of the encoded target). Features are shared, not copied.
 */
export function flipLabels(ds: Dataset, type: FlipTaskType): Dataset {
  if (type === 'classification') {
    const k = ds.numClasses;
    if (!(k >= 2)) throw new Error(`label-flip: a classification dataset needs at least 2 classes, got ${k}`);
    const y = new Int32Array(ds.y.length);
    for (let i = 0; i < y.length; i++) y[i] = k - 1 - ds.y[i]!;
    return { ...ds, y };
  }
  const y = new Float32Array(ds.y.length);
  if (type === 'regression') for (let i = 0; i < y.length; i++) y[i] = -ds.y[i]!;
  else for (let i = 0; i < y.length; i++) y[i] = 1 - ds.y[i]!;
  return { ...ds, y };
}
