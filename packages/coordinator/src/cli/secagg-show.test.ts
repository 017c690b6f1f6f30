/** The secure-aggregation table of `fedge run show`: one row per secagg round, nothing for other runs. */
import { describe, expect, it } from 'vitest';
import type { RoundRecord } from '../store/store.js';
import { secaggLines } from './secagg-show.js';

const round = (n: number, secagg?: RoundRecord['secagg']): RoundRecord => ({
  round: n, baseVersion: n - 1, status: 'completed', startedAt: '', endedAt: '', seconds: 1, participants: [], bytesReceived: 0, bytesSent: 0, ...(secagg ? { secagg } : {}),
});

describe('secaggLines', () => {
  it('tabulates survivors, the three dropouts, tampered senders and the unmask time', () => {
    const text = secaggLines([
      round(1, { bits: 11, quantization: 'int8', threshold: 5, cohort: 8, advertised: 8, shared: 8, survivors: 7, droppedBeforeShares: 0, droppedBeforeInput: 1, droppedAfterInput: 3, tampered: ['t-0'], tamperedExcluded: ['t-0'], refusedInputs: 1, unmaskSeconds: 0.42 }),
      round(2),
    ]).join('\n');
    expect(text).toMatch(/secure aggregation/);
    expect(text).toMatch(/ROUND +RING +T\/COHORT +SURVIVORS +NO SHARES +DROPPED BEFORE INPUT +DROPPED AFTER INPUT +TAMPERED +REFUSED +UNMASK/);
    expect(text).toMatch(/1 +11 bits \(int8\) +5\/8 +7 +0 +1 +3 +t-0 \(dropped\) +1 +0\.4s/);
    expect(text.split('\n').filter((l) => /^\s*2\s/.test(l))).toEqual([]);
  });

  it('prints nothing for a run without secure aggregation', () => {
    expect(secaggLines([round(1), round(2)])).toEqual([]);
  });
});
