import { describe, expect, it } from 'vitest';
import { loadMnist } from './mnist.js';
import { labelCounts, splitHoldout, subset } from './dataset.js';

describe('loadMnist', () => {
  const { train, test } = loadMnist();

  it('has the 10,000 bundled digits, split 9,003 / 997', () => {
    expect(train.n + test.n).toBe(10000);
    expect(test.n).toBe(997);
    expect(train.x.length).toBe(train.n * 784);
    expect(test.features).toBe(784);
    expect(train.numClasses).toBe(10);
  });

  it('holds out 10% of every digit (floor)', () => {
    const tr = labelCounts(train.y, 10), te = labelCounts(test.y, 10);
    for (let d = 0; d < 10; d++) expect(te[d]).toBe(Math.floor((tr[d]! + te[d]!) / 10));
  });

  it('is cached and pixel values lie in [0,1]', () => {
    expect(loadMnist()).toBe(loadMnist());
    let min = Infinity, max = -Infinity;
    for (const v of train.x) (min = Math.min(min, v)), (max = Math.max(max, v));
    expect(min).toBe(0);
    expect(max).toBeLessThanOrEqual(1);
    expect(max).toBeGreaterThan(0.9);
  });

  it('is deterministic: a fingerprint of the data pins the split and order', () => {
    let h = 0;
    for (let i = 0; i < test.n; i++) h = (h * 31 + test.y[i]! + Math.round(test.x[i * 784 + 400]! * 1000)) % 1000000007;
    expect(test.y.slice(0, 10)).toEqual(loadMnist().test.y.slice(0, 10));
    expect(h).toMatchInlineSnapshot(`481735921`);
  });

  it('any prefix of the train set mixes the classes', () => {
    expect(labelCounts(train.y.subarray(0, 200), 10).every((c) => c > 5)).toBe(true);
  });
});

describe('subset / splitHoldout', () => {
  const { test } = loadMnist();
  it('subset copies the chosen rows', () => {
    const s = subset(test, [5, 0]);
    expect(s.n).toBe(2);
    expect(Array.from(s.x.subarray(784, 1568))).toEqual(Array.from(test.x.subarray(0, 784)));
    expect(s.y[0]).toBe(test.y[5]);
    expect(() => subset(test, [test.n])).toThrow(/outside/);
  });
  it('splitHoldout is disjoint, sized and seeded', () => {
    const { train, holdout } = splitHoldout(test, 0.2, 3);
    expect(holdout.n).toBe(Math.round(test.n * 0.2));
    expect(train.n + holdout.n).toBe(test.n);
    expect(splitHoldout(test, 0.2, 3).holdout.y).toEqual(holdout.y);
    expect(() => splitHoldout(test, 1, 0)).toThrow(/fraction/);
  });
});
