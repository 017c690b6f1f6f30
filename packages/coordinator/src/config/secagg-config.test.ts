import { describe, expect, it } from 'vitest';
import { secaggParams } from '@fedge/proto';
import { parseRunConfig } from './run-config.js';
import { roundParams } from '../engine/secagg-round.js';

describe('secureAggregation config', () => {
  it('fills defaults; threshold and neighbors come from the cohort size per round', () => {
    const c = parseRunConfig({ secureAggregation: {} });
    expect(c.secureAggregation).toEqual({ bits: 32, maxWeight: 100_000, advertiseSeconds: 30, shareSeconds: 30, unmaskSeconds: 30 });
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
