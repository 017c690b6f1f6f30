/** The SecAgg+ neighbor graph: symmetric, k-regular, deterministic from the seed, complete for k >= n - 1. */
import { describe, expect, it } from 'vitest';
import { neighborGraph } from './graph.js';

const ids = (n: number) => Array.from({ length: n }, (_, i) => `agent-${i}`);

describe('neighborGraph', () => {
  it('is symmetric and k-regular without self loops', () => {
    for (const [n, k] of [[10, 4], [101, 20], [1000, 30], [7, 3]] as const) {
      const g = neighborGraph(new Uint8Array(32).fill(1), ids(n), k);
      expect(g.size).toBe(n);
      const kk = k % 2 === 0 ? k : k + 1;
      const sets = new Map([...g].map(([a, nb]) => [a, new Set(nb)]));
      const bad: string[] = [];
      for (const [a, nb] of g) {
        if (nb.length !== kk || sets.get(a)!.size !== kk || sets.get(a)!.has(a)) bad.push(`${a}: ${nb.length} neighbors`);
        for (const b of nb) if (!sets.get(b)!.has(a)) bad.push(`${a} -> ${b} not symmetric`);
      }
      expect(bad).toEqual([]);
    }
  });

  it('depends on the seed, not on the order of ids', () => {
    const a = neighborGraph(42, ids(50), 6);
    const b = neighborGraph(42, [...ids(50)].reverse(), 6);
    const c = neighborGraph(43, ids(50), 6);
    expect([...b].sort()).toEqual([...a].sort());
    expect([...c].sort()).not.toEqual([...a].sort());
  });

  it('is the complete graph when k >= n - 1, and refuses duplicate ids', () => {
    const g = neighborGraph(1, ids(5), 4);
    for (const [a, nb] of g) expect(nb).toEqual(ids(5).filter((x) => x !== a));
    expect(() => neighborGraph(1, ['a', 'a', 'b'], 1)).toThrow(/unique/);
  });
});
