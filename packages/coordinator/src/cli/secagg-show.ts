/** `fedge run show`'s secure-aggregation table: per round, how far the cohort got through the protocol and the unmask time. */
import type { RoundRecord } from '../store/store.js';
import { duration, table } from './format.js';

/**
 * One row per secure-aggregation round: the ring, survivors of the cohort, the three kinds of dropout (before sharing
 * keys, after sharing but before the masked input, after the masked input), senders reported for tampered share
 * boxes, refused masked inputs and the unmask stage's time. [] for runs without secure aggregation.
 */
export function secaggLines(rounds: readonly RoundRecord[]): string[] {
  const rows = rounds.flatMap((x) => {
    const s = x.secagg;
    if (!s) return [];
    return [{
      round: x.round,
      ring: `${s.bits} bits${s.quantization === 'int8' ? ' (int8)' : ''}`,
      't/cohort': `${s.threshold}/${s.cohort}`,
      survivors: s.survivors,
      'no shares': s.droppedBeforeShares,
      'dropped before input': s.droppedBeforeInput,
      'dropped after input': s.droppedAfterInput,
      tampered: s.tampered.length ? s.tampered.map((n) => `${n}${s.tamperedExcluded.includes(n) ? ' (dropped)' : ' (kept: input already summed)'}`).join(', ') : '0',
      refused: s.refusedInputs,
      unmask: duration(s.unmaskSeconds),
    }];
  });
  if (!rows.length) return [];
  return ['', 'secure aggregation (dropped after input: no unmask shares when the stage closed)', table(rows, ['round', 'ring', 't/cohort', 'survivors', 'no shares', 'dropped before input', 'dropped after input', 'tampered', 'refused', 'unmask'])];
}
