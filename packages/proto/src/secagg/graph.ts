/** The SecAgg+ communication graph: a Harary graph over a seeded random permutation of the round's agents. */
import { createHash } from 'node:crypto';
import { prgStream } from './prg.js';

/**
 * Each agent's neighbors, deterministic from `seed` and the set of `ids` (their order does not matter).
 * Bell et al. 2020 use a Harary graph H(n, k) with randomly permuted nodes: agents sit on a ring in a seeded random
 * order and each is joined to the k/2 nearest on either side. Every agent then has exactly k neighbors (k rounded
 * up to even), the relation is symmetric, and a coordinator that does not know the seed in advance cannot place
 * chosen agents next to each other. k >= n - 1 gives the complete graph (original SecAgg). `seed` may be a number
 * (hashed to 32 bytes) for configs that carry a JSON number.
 */
export function neighborGraph(seed: Uint8Array | number, ids: readonly string[], k: number): Map<string, string[]> {
  const sorted = [...new Set(ids)].sort();
  if (sorted.length !== ids.length) throw new RangeError('neighborGraph: ids must be unique');
  const n = sorted.length;
  const out = new Map<string, string[]>();
  if (!Number.isInteger(k) || k < 0) throw new RangeError(`neighborGraph: k must be a whole number >= 0, got ${k}`);
  if (k >= n - 1) {
    for (const id of sorted) out.set(id, sorted.filter((o) => o !== id));
    return out;
  }
  const order = shuffle(sorted, graphSeedBytes(seed));
  const half = Math.ceil(k / 2);
  for (let i = 0; i < n; i++) {
    const nb: string[] = [];
    for (let d = 1; d <= half; d++) nb.push(order[(i + d) % n]!, order[(i - d + n) % n]!);
    out.set(order[i]!, [...new Set(nb)].sort());
  }
  return out;
}

/** 32 bytes from a seed given as bytes or as a JSON-safe number. */
export function graphSeedBytes(seed: Uint8Array | number): Uint8Array {
  if (typeof seed === 'number') {
    if (!Number.isSafeInteger(seed) || seed < 0) throw new RangeError(`graph seed: need a safe whole number >= 0, got ${seed}`);
    return new Uint8Array(createHash('sha256').update(`fedge-secagg-graph:${seed}`).digest());
  }
  if (seed.length !== 32) throw new RangeError(`graph seed: need 32 bytes, got ${seed.length}`);
  return seed;
}

/** Fisher-Yates with unbiased draws (rejection sampling) from the PRG keyed by the seed. */
function shuffle(items: string[], seed: Uint8Array): string[] {
  const a = [...items];
  const s = prgStream(seed);
  let buf = s.next(256);
  let pos = 0;
  const draw = (): number => {
    if (pos === buf.length) {
      buf = s.next(256);
      pos = 0;
    }
    return buf[pos++]!;
  };
  for (let i = a.length - 1; i > 0; i--) {
    const range = i + 1;
    const limit = 2 ** 32 - (2 ** 32 % range);
    let r = draw();
    while (r >= limit) r = draw();
    const j = r % range;
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}
