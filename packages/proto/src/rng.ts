/** The one seeded PRNG every package uses, so partitions, sampling and simulated faults repeat exactly. */

/** mulberry32: tiny, fast, good enough for shuffling and sampling; seeds are taken modulo 2^32. */
export function createRng(seed: number): () => number {
  if (!Number.isFinite(seed)) throw new RangeError(`seed must be a finite number, got ${seed}`);
  // Mix the seed once so nearby seeds (0, 1, 2...) do not start on correlated streams.
  let a = Math.imul((Math.trunc(seed) >>> 0) ^ 0x9e3779b9, 0x85ebca6b) >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
