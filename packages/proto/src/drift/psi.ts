/**
 * Population Stability Index between a reference and a live histogram on the same bins.
 *
 * PSI = sum over bins of (a - e) * ln(a / e), with e and a the bins' proportions in the reference and the live data.
 * An empty bin on either side would make the term infinite, so proportions below PSI_EPSILON are raised to it
 * (1e-4, as in common practice: one empty bin against a 10% bin then adds about 0.1 * ln(1000) = 0.69, a clear
 * signal, instead of infinity). Bands by convention: < 0.1 stable, 0.1-0.25 moderate shift, > 0.25 significant.
 */
import { proportions, total } from './histogram.js';
import { ValidationError } from '../errors.js';

export const PSI_EPSILON = 1e-4;
export const PSI_BANDS = { moderate: 0.1, significant: 0.25 } as const;
export type PsiBand = 'stable' | 'moderate' | 'significant';

export function psi(reference: readonly number[], live: readonly number[], epsilon = PSI_EPSILON): number {
  if (reference.length !== live.length) throw new ValidationError(`psi: ${reference.length} reference bins vs ${live.length} live bins`);
  // Nothing to compare on one side: no evidence of drift (the caller shows the sample size beside it).
  if (total(reference) === 0 || total(live) === 0) return 0;
  const e = proportions(reference);
  const a = proportions(live);
  let s = 0;
  for (let i = 0; i < e.length; i++) {
    const ei = Math.max(e[i]!, epsilon);
    const ai = Math.max(a[i]!, epsilon);
    s += (ai - ei) * Math.log(ai / ei);
  }
  return s;
}

export function psiBand(v: number): PsiBand {
  return v > PSI_BANDS.significant ? 'significant' : v >= PSI_BANDS.moderate ? 'moderate' : 'stable';
}
