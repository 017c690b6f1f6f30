import { describe, expect, it } from 'vitest';
import { secaggParams } from '@fedge/proto';
import { parseRunConfig } from './run-config.js';
import { roundParams } from '../engine/secagg-round.js';

describe('secureAggregation config', () => {
  it('fills defaults; threshold and neighbors come from the cohort size per round', () => {
    const c = parseRunConfig({ secureAggregation: {} });
    // bits and maxWeight are filled per round (roundParams): under quantization int8 both derive from the cohort.
    expect(c.secureAggregation).toEqual({ advertiseSeconds: 30, shareSeconds: 30, unmaskSeconds: 30 });
    const p = roundParams(c.secureAggregation!, 8, { uniformWeights: false, clipDefault: 1 });
    expect(p).toEqual(secaggParams(8, { bits: 32, maxWeight: 100_000, clipRange: 1 }));
    expect(p.threshold).toBeGreaterThanOrEqual(2);
    expect(p.threshold).toBeLessThanOrEqual(p.neighbors + 1);
  });

  it('central DP: weights of 1 fill the grid, and the clip range defaults to the L2 clip norm', () => {
    const c = parseRunConfig({ secureAggregation: { threshold: 3 }, privacy: { clipNorm: 0.5, noiseMultiplier: 1 } });
    const p = roundParams(c.secureAggregation!, 6, { uniformWeights: true, clipDefault: c.privacy!.clipNorm });
    expect(p).toMatchObject({ maxWeight: 1, clipRange: 0.5, threshold: 3, nAgents: 6 });
  });

  it('quantization int8: the ring is derived from the cohort (12 bits for 10 agents), maxWeight from its largest example count', () => {
    const c = parseRunConfig({ secureAggregation: { quantization: 'int8', clip: 0.05 } });
    const p = roundParams(c.secureAggregation!, 10, { uniformWeights: false, clipDefault: 1, cohortMaxExamples: 750 });
    expect(p).toMatchObject({ bits: 12, levels: 255, maxWeight: 750, clipRange: 0.05, nAgents: 10 });
    expect(roundParams(c.secureAggregation!, 100, { uniformWeights: true, clipDefault: 1 })).toMatchObject({ bits: 15, levels: 255, maxWeight: 1 });
    const given = parseRunConfig({ secureAggregation: { quantization: 'int8', maxWeight: 300 } });
    expect(roundParams(given.secureAggregation!, 10, { uniformWeights: false, clipDefault: 1, cohortMaxExamples: 750 }).maxWeight).toBe(300);
  });

  it('neighbors above the cohort are capped to a complete graph', () => {
    const c = parseRunConfig({ secureAggregation: { neighbors: 50 } });
    expect(roundParams(c.secureAggregation!, 5, { uniformWeights: false, clipDefault: 1 }).neighbors).toBe(4);
  });

  it.each([
    [{ mode: 'async' }, /secureAggregation cannot run with mode async: pairwise masks cancel only when the same fixed cohort/],
    [{ sync: { lateResults: 'next-round' } }, /secureAggregation cannot run with sync\.lateResults next-round/],
    [{ compression: { codec: 'topk' } }, /secureAggregation cannot run with compression\.codec topk: a masked input is uniform noise/],
    [{ compression: { codec: 'int8' } }, /secureAggregation cannot run with compression\.codec int8: the masked vector is its own encoding/],
    [{ strategy: { name: 'median' } }, /secureAggregation cannot run with strategy\.name median, .*masked inputs hide each update's coordinates and norm/],
    [{ strategy: { name: 'krum' } }, /strategy\.name krum/],
    [{ strategy: { name: 'scaffold' } }, /strategy\.name scaffold/],
    [{ strategy: { name: 'fedavg', normBound: 3 } }, /secureAggregation cannot run with strategy\.normBound/],
    [{ secureAggregation: { threshold: 9, neighbors: 4 } }, /threshold 9 above neighbors \+ 1 \(5\)/],
    [{ secureAggregation: { threshold: 1 } }, /secureAggregation\.threshold: at least 2/],
    [{ secureAggregation: { bits: 8 } }, /secureAggregation\.bits: use 16 to 32/],
    [{ secureAggregation: { quantization: 'int8', bits: 16 } }, /secureAggregation\.bits 16 with quantization int8: the ring is derived from the cohort/],
    [{ compression: { uplink: 'q8' } }, /compression\.uplink q8: .*set secureAggregation\.quantization "int8"/],
    [{ compression: { codec: 'int8' } }, /use compression\.codec float32 with secureAggregation\.quantization "int8"/],
    [{ compression: { uplink: 'topk:0.01+q8' } }, /compression\.uplink topk:0\.01\+q8: .*nothing to sparsify/],
  ])('refuses %j naming both settings', (extra, msg) => {
    const { secureAggregation, ...rest } = extra as { secureAggregation?: object };
    expect(() => parseRunConfig({ ...rest, secureAggregation: secureAggregation ?? {} })).toThrow(msg);
  });

  it('composes with central and local DP and with the fedavg family', () => {
    for (const name of ['fedavg', 'fedavgm', 'fedadam', 'fedyogi', 'fedadagrad', 'fedprox'])
      expect(() => parseRunConfig({ strategy: { name }, secureAggregation: {} })).not.toThrow();
    expect(() => parseRunConfig({ secureAggregation: {}, privacy: { clipNorm: 1, noiseMultiplier: 1 } })).not.toThrow();
    expect(() => parseRunConfig({ secureAggregation: {}, privacy: { mode: 'local', clipNorm: 1, noiseMultiplier: 1 } })).not.toThrow();
  });
});
