import { describe, expect, it } from 'vitest';
import { checkFraction, pickVersion, splitPoint, type SplitConfig } from './ab-split.js';
import { ServingStats } from './serving-stats.js';

const split = (fraction: number): SplitConfig => ({ stable: '3', candidate: '4', fraction, source: 'canary' });

describe('A/B split', () => {
  it('is sticky: the same request id always gets the same version', () => {
    for (let i = 0; i < 200; i++) {
      const id = `user-${i}`;
      const first = pickVersion(split(0.3), id);
      for (let k = 0; k < 5; k++) expect(pickVersion(split(0.3), id)).toBe(first);
    }
  });

  it('sends the configured fraction of ids to the candidate, within tolerance', () => {
    const n = 20_000;
    for (const f of [0.05, 0.2, 0.5, 0.9]) {
      let c = 0;
      // Sequential ids (req-0, req-1, ...) are the worst case for a weak hash.
      for (let i = 0; i < n; i++) if (pickVersion(split(f), `req-${i}`) === '4') c++;
      // Binomial sd at n = 20k is <= 0.0036; 4 sd of tolerance.
      expect(Math.abs(c / n - f)).toBeLessThan(0.015);
    }
  });

  it('grows the candidate set monotonically: raising the fraction never moves an id back to stable', () => {
    for (let i = 0; i < 1000; i++) {
      const id = `u${i}`;
      if (pickVersion(split(0.1), id) === '4') expect(pickVersion(split(0.5), id)).toBe('4');
    }
  });

  it('spreads points uniformly over [0, 1) (10 bins within 10% of n/10)', () => {
    const bins = new Array(10).fill(0);
    for (let i = 0; i < 50_000; i++) bins[Math.floor(splitPoint(String(i)) * 10)]++;
    for (const b of bins) expect(Math.abs(b - 5000)).toBeLessThan(500);
  });

  it('without an id draws at random (not sticky), and the edges 0 and 1 are exact', () => {
    expect(pickVersion(split(0.5), undefined, () => 0.49)).toBe('4');
    expect(pickVersion(split(0.5), '', () => 0.51)).toBe('3');
    for (let i = 0; i < 100; i++) {
      expect(pickVersion(split(0), `x${i}`)).toBe('3');
      expect(pickVersion(split(1), `x${i}`)).toBe('4');
    }
  });

  it('refuses fractions outside [0, 1], naming the setting', () => {
    expect(() => checkFraction(1.5, '--serve-ab-fraction')).toThrow(/--serve-ab-fraction must be a fraction in \[0, 1\], got 1.5/);
    expect(() => checkFraction(Number.NaN, 'canary')).toThrow(/canary/);
    expect(checkFraction(0.2, 'x')).toBe(0.2);
  });
});

describe('ServingStats', () => {
  it('counts outcomes, NaN outputs, classes and latency percentiles per version', () => {
    const s = new ServingStats();
    for (let i = 0; i < 100; i++) s.observe({ version: '3', outcome: 'ok', ms: i + 1, output: { data: Float32Array.from([0.1, 0.9, 0.0]), shape: [1, 3] } });
    s.observe({ version: '4', outcome: 'ok', ms: 5, output: { data: Float32Array.from([NaN, 0, 1]), shape: [1, 3] } });
    s.observe({ version: '4', outcome: 'error', ms: 2 });
    s.observe({ version: '4', outcome: 'invalid', ms: 1 });
    const w = s.windowView();
    // The first 3 latencies (1, 2, 3 ms) are warm-up, left out of the percentiles: 4..100 remain.
    expect(w['3']).toMatchObject({ requests: 100, errors: 0, nan: 0, p50Ms: 52, p99Ms: 100, classes: [0, 100] });
    expect(w['4']).toMatchObject({ requests: 3, errors: 1, nan: 1, invalid: 1 });
    const text = s.render().join('\n');
    expect(text).toContain('fedge_serving_requests_total{version="3",outcome="ok"} 100');
    expect(text).toContain('fedge_serving_requests_total{version="4",outcome="nan"} 1');
    expect(text).toContain('fedge_serving_request_duration_seconds_count{version="3"} 100');
    expect(text).toContain('fedge_serving_predictions_total{version="3",class="1"} 100');
    s.resetWindow();
    expect(s.windowView()).toEqual({});
    // Prometheus counters are cumulative across windows.
    expect(s.render().join('\n')).toContain('fedge_serving_requests_total{version="3",outcome="ok"} 100');
  });

  it('keeps mean and std of single-value outputs (regression)', () => {
    const s = new ServingStats();
    s.observe({ version: '1', outcome: 'ok', ms: 1, output: { data: Float32Array.from([1, 2, 3, 4]), shape: [4, 1] } });
    const sc = s.windowView()['1']!.scalar!;
    expect(sc.n).toBe(4);
    expect(sc.mean).toBeCloseTo(2.5, 6);
    expect(sc.std).toBeCloseTo(Math.sqrt(5 / 3), 6);
  });
});
