import { describe, expect, it } from 'vitest';
import { parseRunConfig } from '../config/run-config.js';

describe('run config: privacy block', () => {
  it('fills defaults', () => {
    const c = parseRunConfig({ privacy: { clipNorm: 1, noiseMultiplier: 1.1 } });
    expect(c.privacy).toEqual({ mode: 'central', clipNorm: 1, noiseMultiplier: 1.1, delta: 1e-5 });
    expect(parseRunConfig({}).privacy).toBeUndefined();
  });

  it.each([
    [{ noiseMultiplier: 1 }, /privacy\.clipNorm: give the L2 clip norm/],
    [{ clipNorm: 1 }, /privacy\.noiseMultiplier: give the noise multiplier/],
    [{ clipNorm: 0, noiseMultiplier: 1 }, /privacy\.clipNorm must be > 0/],
    [{ clipNorm: 1, noiseMultiplier: -1 }, /privacy\.noiseMultiplier must be > 0/],
    [{ clipNorm: 1, noiseMultiplier: 1, delta: 1 }, /privacy\.delta must be in \(0, 1\)/],
    [{ clipNorm: 1, noiseMultiplier: 1, maxEpsilon: 0 }, /privacy\.maxEpsilon must be > 0/],
    [{ clipNorm: 1, noiseMultiplier: 1, mode: 'both' }, /privacy\.mode: use "central"/],
    [{ clipNorm: 1, noiseMultiplier: 1, epsilon: 3 }, /privacy: unknown option\(s\) epsilon/],
    [{ clipNorm: 1, noiseMultiplier: 1, adaptiveClipping: { targetQuantile: 1 } }, /privacy\.adaptiveClipping\.targetQuantile must be in \(0, 1\)/],
    [{ clipNorm: 1, noiseMultiplier: 2, adaptiveClipping: { countNoiseStd: 1 } }, /countNoiseStd \(1\) must be greater than noiseMultiplier \/ 2/],
    [{ clipNorm: 1, noiseMultiplier: 1, mode: 'local', adaptiveClipping: {} }, /privacy\.adaptiveClipping: needs privacy\.mode "central"/],
  ])('rejects %j naming the field', (privacy, re) => {
    expect(() => parseRunConfig({ privacy })).toThrow(re);
  });

  it('rejects combinations the accountant cannot cover', () => {
    const privacy = { clipNorm: 1, noiseMultiplier: 1 };
    // Async steps are accounted with q = 1 (no sampling amplification), so async is covered.
    expect(parseRunConfig({ privacy, mode: 'async' }).privacy?.mode).toBe('central');
    expect(() => parseRunConfig({ privacy, sync: { overSelection: 0.3 } })).toThrow(/sync\.overSelection must be 0 with central DP/);
    expect(() => parseRunConfig({ privacy, sync: { lateResults: 'next-round' } })).toThrow(/sync\.lateResults must be "discard"/);
    expect(parseRunConfig({ privacy: { ...privacy, mode: 'local' }, sync: { overSelection: 0.3 } }).privacy?.mode).toBe('local');
  });
});
