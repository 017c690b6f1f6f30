/**
 * Synthetic(alpha, beta) of Li et al. 2020 ("Federated Optimization in Heterogeneous Networks", section 5.1), in JS,
 * seeded. Follows the recipe of the paper's published generator (FedProx repo, data/synthetic_1_1/
 * generate_synthetic.py), with our own seeded RNG (so the numbers differ from numpy's, the distribution does not):
 *
 *   samples per device  n_k = floor(lognormal(4, 2)) + 50          (a heavy, power-law-like tail)
 *   u_k ~ N(0, alpha)   (mean of device k's W and b)     B_k ~ N(0, beta)
 *   v_k ~ N(B_k, 1)^60  (mean of device k's x)           x ~ N(v_k, diag(j^-1.2)), j = 1..60
 *   W_k ~ N(u_k, 1)^(60x10), b_k ~ N(u_k, 1)^10          y = argmax softmax(x W_k + b_k)
 *
 * then each device's rows are shuffled and split 90% train / 10% test, as the generator's main() does.
 * (The generator passes alpha and beta as numpy's scale, i.e. standard deviations; with (1, 1) that is the same.)
 */
import { createRng } from '@fedge/proto';

/** Standard normal (Box-Muller; 1 - u keeps the log finite). */
function normal(rng) {
  const u = 1 - rng();
  const v = rng();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
}

/**
 * @returns {{ devices: Array<{ name: string, train: { x: Float32Array, y: Int32Array, n: number }, test: { x: Float32Array, y: Int32Array, n: number } }>, dimension: number, classes: number }}
 */
export function generateSynthetic({ alpha = 1, beta = 1, devices: numDevices = 30, dimension = 60, classes = 10, seed = 0 } = {}) {
  const rng = createRng(seed);
  const samples = Array.from({ length: numDevices }, () => Math.floor(Math.exp(4 + 2 * normal(rng))) + 50);
  const meanW = Array.from({ length: numDevices }, () => alpha * normal(rng));
  const B = Array.from({ length: numDevices }, () => beta * normal(rng));
  const sd = Float64Array.from({ length: dimension }, (_, j) => Math.sqrt(Math.pow(j + 1, -1.2)));
  const meanX = B.map((b) => Float64Array.from({ length: dimension }, () => b + normal(rng)));
  const out = [];
  for (let k = 0; k < numDevices; k++) {
    const W = Float64Array.from({ length: dimension * classes }, () => meanW[k] + normal(rng));
    const bias = Float64Array.from({ length: classes }, () => meanW[k] + normal(rng));
    const n = samples[k];
    const x = new Float32Array(n * dimension);
    const y = new Int32Array(n);
    const logits = new Float64Array(classes);
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < dimension; j++) x[i * dimension + j] = meanX[k][j] + sd[j] * normal(rng);
      logits.set(bias);
      for (let j = 0; j < dimension; j++) {
        const xv = x[i * dimension + j];
        for (let c = 0; c < classes; c++) logits[c] += xv * W[j * classes + c];
      }
      // argmax of softmax is argmax of the logits.
      let best = 0;
      for (let c = 1; c < classes; c++) if (logits[c] > logits[best]) best = c;
      y[i] = best;
    }
    // Shuffle, then 90% train / 10% test (int(0.9 n) train rows).
    const order = Array.from({ length: n }, (_, i) => i);
    for (let i = n - 1; i > 0; i--) {
      const j = Math.floor(rng() * (i + 1));
      [order[i], order[j]] = [order[j], order[i]];
    }
    const trainLen = Math.floor(0.9 * n);
    const take = (idx) => {
      const xs = new Float32Array(idx.length * dimension);
      const ys = new Int32Array(idx.length);
      idx.forEach((r, p) => {
        xs.set(x.subarray(r * dimension, (r + 1) * dimension), p * dimension);
        ys[p] = y[r];
      });
      return { x: xs, y: ys, n: idx.length };
    };
    out.push({ name: `f_${String(k).padStart(5, '0')}`, train: take(order.slice(0, trainLen)), test: take(order.slice(trainLen)) });
  }
  return { devices: out, dimension, classes };
}

/** One device's rows as CSV with a header (f0..f59, y): what a real `fedge-agent --data csv:FILE --target y` reads. */
export function deviceCsv(split, dimension) {
  const header = [...Array.from({ length: dimension }, (_, j) => `f${j}`), 'y'].join(',');
  const lines = [header];
  for (let i = 0; i < split.n; i++) {
    const row = Array.from(split.x.subarray(i * dimension, (i + 1) * dimension), (v) => v.toPrecision(7));
    row.push(String(split.y[i]));
    lines.push(row.join(','));
  }
  return lines.join('\n') + '\n';
}
