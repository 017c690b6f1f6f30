#!/usr/bin/env node
/**
 * Privacy bench: MNIST accuracy vs epsilon for central DP-FedAvg at several noise multipliers.
 *
 * In-process simulation (no gRPC: thousands of local trainings would be dominated by process start-up), using the
 * same code paths a run uses: @fedge/ml local training of mnist-mlp, clipping from @fedge/proto (what agents run),
 * and the DP strategy around FedAvg (Poisson sampling at rate q, fixed denominator q*N, Gaussian noise on the clipped sum,
 * RDP accountant). N simulated agents each hold an iid shard of the 9,000 bundled training digits; accuracy is
 * measured on the coordinator's 1,000 held-out digits. The noise comes from a seeded sampler so that the table is
 * reproducible; real runs use the OS CSPRNG.
 *
 *   npx tsc -b && node bench/privacy.mjs                  # defaults below (~5 min on 2 cores)
 *   node bench/privacy.mjs --agents 300 --rounds 20 --z 0.5,1
 *
 * Writes bench/results/privacy.json and bench/results/privacy.svg (accuracy vs epsilon, one curve per z).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const ml = await import('@fedge/ml');
const { clipToNorm, createRng, GaussianSampler, seededUniform } = await import('@fedge/proto');
const { DpStrategy } = await import(path.join(ROOT, 'packages/coordinator/dist/strategy/dp.js'));
const { FedAvg } = await import(path.join(ROOT, 'packages/coordinator/dist/strategy/fedavg.js'));

const args = Object.fromEntries(
  process.argv.slice(2).reduce((acc, a, i, all) => (a.startsWith('--') ? [...acc, [a.slice(2), all[i + 1]]] : acc), []),
);
const N = Number(args.agents ?? 1000);
const Q = Number(args.q ?? 0.05);
const ROUNDS = Number(args.rounds ?? 40);
const CLIP = Number(args.clip ?? 0.5);
const DELTA = Number(args.delta ?? 1e-4);
const LR = Number(args.lr ?? 0.1);
const SERVER_LR = Number(args['server-lr'] ?? 1);
const ZS = String(args.z ?? "0,0.5,1,2").split(',').map(Number);
const EVERY = Number(args.every ?? 5);

await ml.initBackend();
const { train, test } = ml.loadMnist();
const parts = ml.partitionIndices(train.y, { kind: 'iid', numPartitions: N, seed: 1 }).map((idx) => ml.subset(train, idx));
const model = ml.createBuiltinModel('mnist-mlp', 1);
const init = ml.getWeights(model).weights.slice();

async function runOne(z) {
  // z = 0 is the non-private baseline: the same sampling, clipping and estimator, with no noise (epsilon = infinity).
  // Central DP around FedAvg (its server step applies the noised mean at SERVER_LR), as a run with a privacy block gets.
  const fedavg = new FedAvg({ fraction: Q, minAgents: 1, minResults: 1, serverLearningRate: SERVER_LR });
  const strategy = new DpStrategy(fedavg, {
    privacy: { mode: 'central', clipNorm: CLIP, noiseMultiplier: z > 0 ? z : 1, delta: DELTA },
    samplingRate: Q,
    populationSize: () => N,
    noise: z > 0 ? new GaussianSampler(seededUniform(7)) : { next: () => 0 },
  });
  const rng = createRng(42);
  let global = init.slice();
  const curve = [];
  const t0 = performance.now();
  for (let r = 1; r <= ROUNDS; r++) {
    const chosen = strategy.selectAgents(parts.map((_, i) => ({ id: String(i), name: String(i), numExamples: parts[i].n })), rng);
    const sum = new Float32Array(global.length);
    let clipped = 0;
    for (const a of chosen) {
      ml.setWeights(model, global);
      await ml.trainLocal(model, parts[Number(a.id)], { epochs: 1, batchSize: 10, learningRate: LR, seed: r * 1000 + Number(a.id) });
      const w = ml.getWeights(model).weights;
      const delta = new Float32Array(w.length);
      for (let i = 0; i < w.length; i++) delta[i] = w[i] - global[i];
      if (clipToNorm(delta, CLIP).clipped) clipped++;
      for (let i = 0; i < w.length; i++) sum[i] += delta[i];
    }
    const n = chosen.length;
    const view = { count: n, totalWeight: n, mean: () => sum.map((x) => x / Math.max(1, n)) };
    const out = strategy.aggregate(global, view, [], []);
    global = out.weights;
    if (r % EVERY === 0 || r === ROUNDS) {
      ml.setWeights(model, global);
      const ev = await ml.evaluate(model, test);
      const eps = z > 0 ? strategy.spent().epsilon : Infinity;
      curve.push({ round: r, epsilon: eps, accuracy: ev.accuracy, sampled: n, clippedFraction: n ? clipped / n : 0 });
      process.stderr.write(`z=${z} round ${r}: ${n} agents, ${(n ? (100 * clipped) / n : 0).toFixed(0)}% clipped, epsilon ${eps.toFixed(3)}, accuracy ${(100 * ev.accuracy).toFixed(2)}%\n`);
    }
  }
  return { z, curve, seconds: (performance.now() - t0) / 1000 };
}

const results = [];
for (const z of ZS) results.push(await runOne(z));

// ---------------------------------------------------------------- table
const rows = results.map((r) => {
  const last = r.curve.at(-1);
  return { z: r.z, epsilon: last.epsilon, accuracy: last.accuracy, noiseStdOfMean: (r.z * CLIP) / (Q * N), seconds: r.seconds };
});
console.log(`\nMNIST mnist-mlp, N=${N} agents (iid, ${Math.floor(train.n / N)} digits each), Poisson q=${Q} (~${Q * N}/round), clip S=${CLIP}, ${ROUNDS} rounds, delta=${DELTA}\n`);
console.log('| noise multiplier z | epsilon | accuracy | noise std of the mean update (zS/qN) |');
console.log('| --- | --- | --- | --- |');
for (const r of rows)
  console.log(`| ${r.z === 0 ? '0 (no noise)' : r.z} | ${Number.isFinite(r.epsilon) ? r.epsilon.toFixed(2) : 'inf'} | ${(100 * r.accuracy).toFixed(2)}% | ${r.noiseStdOfMean.toExponential(2)} |`);

// ---------------------------------------------------------------- plot (SVG)
const W = 640, H = 400, L = 60, R = 150, T = 30, B = 50;
const finite = results.flatMap((r) => r.curve.map((c) => c.epsilon)).filter(Number.isFinite);
const maxEps = Math.max(1, ...finite) * 1.05;
const x = (e) => L + (Math.min(e, maxEps) / maxEps) * (W - L - R);
const y = (a) => T + (1 - a) * (H - T - B);
const colors = ['#444', '#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd'];
let svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">\n<rect width="100%" height="100%" fill="white"/>\n`;
svg += `<text x="${W / 2}" y="18" text-anchor="middle">MNIST accuracy vs epsilon (delta=${DELTA}), DP-FedAvg, N=${N}, q=${Q}, S=${CLIP}</text>\n`;
svg += `<line x1="${L}" y1="${H - B}" x2="${W - R}" y2="${H - B}" stroke="black"/><line x1="${L}" y1="${T}" x2="${L}" y2="${H - B}" stroke="black"/>\n`;
for (let i = 0; i <= 5; i++) {
  const e = (maxEps * i) / 5;
  svg += `<text x="${x(e)}" y="${H - B + 16}" text-anchor="middle">${e.toFixed(1)}</text>\n`;
  const a = i / 5;
  svg += `<text x="${L - 6}" y="${y(a) + 4}" text-anchor="end">${(a * 100).toFixed(0)}%</text><line x1="${L}" y1="${y(a)}" x2="${W - R}" y2="${y(a)}" stroke="#eee"/>\n`;
}
svg += `<text x="${(L + W - R) / 2}" y="${H - 12}" text-anchor="middle">epsilon</text><text x="16" y="${H / 2}" transform="rotate(-90 16 ${H / 2})" text-anchor="middle">test accuracy</text>\n`;
results.forEach((r, k) => {
  const c = colors[k % colors.length];
  if (r.z === 0) {
    const a = r.curve.at(-1).accuracy;
    svg += `<line x1="${L}" y1="${y(a)}" x2="${W - R}" y2="${y(a)}" stroke="${c}" stroke-dasharray="5,4"/>\n`;
  } else {
    const pts = r.curve.map((p) => `${x(p.epsilon).toFixed(1)},${y(p.accuracy).toFixed(1)}`).join(' ');
    svg += `<polyline points="${pts}" fill="none" stroke="${c}" stroke-width="2"/>\n`;
    for (const p of r.curve) svg += `<circle cx="${x(p.epsilon).toFixed(1)}" cy="${y(p.accuracy).toFixed(1)}" r="3" fill="${c}"/>\n`;
  }
  svg += `<rect x="${W - R + 12}" y="${T + 10 + k * 20}" width="14" height="3" fill="${c}"/><text x="${W - R + 32}" y="${T + 15 + k * 20}">${r.z === 0 ? 'no noise (eps = inf)' : `z = ${r.z}`}</text>\n`;
});
svg += '</svg>\n';

mkdirSync(path.join(ROOT, 'bench/results'), { recursive: true });
writeFileSync(path.join(ROOT, 'bench/results/privacy.json'), JSON.stringify({ N, q: Q, rounds: ROUNDS, clip: CLIP, delta: DELTA, lr: LR, serverLr: SERVER_LR, results }, (k, v) => (v === Infinity ? 'inf' : v), 1));
writeFileSync(path.join(ROOT, 'bench/results/privacy.svg'), svg);
console.log('\nwrote bench/results/privacy.json and bench/results/privacy.svg');
