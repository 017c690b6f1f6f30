#!/usr/bin/env node
/**
 * FedProx bench (issue 10, "Benchmark", second bullet): the FedProx paper's Synthetic(1,1) (Li et al. 2020, section
 * 5.1: 30 devices, 60 features, 10 classes, multinomial logistic regression, a power-law number of samples per
 * device), generated here with a seed by its published recipe (bench/synthetic-data.mjs), under 90% systems
 * heterogeneity: each round 10 of the 30 devices are selected and 9 of them are stragglers that can only do a
 * uniformly random number of local epochs in [1, E-1] (the paper's code: np.random.randint(1, E)).
 *
 * Arms (as the paper's Figure 1, same devices and same stragglers every round in every arm):
 *   fedavg (drop)          FedAvg drops the stragglers: only the one device that completes E epochs is averaged
 *   fedavg (partial)       FedAvg folds the stragglers' partial work (= FedProx with mu = 0)
 *   fedprox mu=1           the proximal term (mu/2)||w - w_global||^2, partial work folded
 * Paper settings: SGD lr 0.01, batch 10, E = 20, 10 devices per round, 200 rounds; metric: training loss over all
 * devices' training rows, and test accuracy over all devices' test rows, after every round.
 *
 * IN-PROCESS, not real agent processes (30 tfjs agents x 200 rounds x 3 arms does not fit this 2-core machine in
 * the time available): the product's own pieces run in one Node process, the way the engine and agents use them:
 *   - run config parsed by the coordinator's parseRunConfig (model { builtin: 'mlp', hidden: [] } = multinomial
 *     logistic regression, task classification with normalization 'none' like the paper's raw features),
 *   - the strategy from the coordinator's createStrategy(config): its selectAgents picks the round's devices, its
 *     weightOf weights them, its aggregate() turns the streamed mean (StreamingFedAvg, the engine's accumulator)
 *     into the next global model, with the dropped stragglers passed as failures,
 *   - agents' training is @fedge/ml trainLocal with the resolved task (resolveTask + proximalMu, as data-step.ts
 *     builds it), the model createMlp, weights via setWeights/getWeights, metrics via evaluate.
 * No gRPC, no spool, no run record. The partial work a straggler does is the same thing `fedge-agent
 * --partial-work` simulates in a real agent process.
 *
 *   npx tsc -b && node bench/fedprox-synthetic.mjs                  # 3 arms x 200 rounds (~15-25 min on 2 loaded cores)
 *   node bench/fedprox-synthetic.mjs --rounds 50 --arms fedprox-mu1,fedavg-drop --out /tmp/x.json
 *   node bench/fedprox-synthetic.mjs --seed 3 --data-seed 7 --stragglers 0.9 --epochs 20
 *
 * Writes bench/results/fedprox-synthetic.json: settings, the devices' sizes, and per round and arm the training loss,
 * test accuracy and which devices ran how many epochs.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import * as ml from '@fedge/ml';
import { createRng } from '@fedge/proto';
import { generateSynthetic } from './synthetic-data.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const dist = (p) => import(pathToFileURL(path.join(ROOT, 'packages/coordinator/dist', p)).href);
const { parseRunConfig } = await dist('config/run-config.js');
const { resolveTask } = await dist('config/task-config.js');
const { createStrategy } = await dist('strategy/index.js');
const { StreamingFedAvg } = await dist('strategy/aggregate.js');

const args = Object.fromEntries(
  process.argv.slice(2).reduce((acc, a, i, all) => (a.startsWith('--') ? [...acc, [a.slice(2), all[i + 1]]] : acc), []),
);
const ROUNDS = Number(args.rounds ?? 200);
const EPOCHS = Number(args.epochs ?? 20);
const PER_ROUND = Number(args['per-round'] ?? 10);
const STRAGGLERS = Number(args.stragglers ?? 0.9);
const LR = Number(args.lr ?? 0.01);
const BATCH = Number(args.batch ?? 10);
const SEED = Number(args.seed ?? 1);
const DATA_SEED = Number(args['data-seed'] ?? 1);
const MU = Number(args.mu ?? 1);
const OUT = path.resolve(args.out ?? path.join(ROOT, 'bench/results/fedprox-synthetic.json'));

const ARMS = [
  { id: 'fedavg-drop', label: 'fedavg (drop stragglers)', strategy: { name: 'fedavg' }, drop: true },
  { id: 'fedavg-partial', label: 'fedavg (partial work, = fedprox mu=0)', strategy: { name: 'fedavg' }, drop: false },
  { id: 'fedprox-mu1', label: `fedprox mu=${MU}`, strategy: { name: 'fedprox', proximalMu: MU }, drop: false },
];
const wanted = args.arms ? String(args.arms).split(',') : null;
const arms = wanted ? ARMS.filter((a) => wanted.includes(a.id)) : ARMS;
if (arms.length === 0) throw new Error(`--arms: none of ${wanted} in ${ARMS.map((a) => a.id).join(', ')}`);

const backend = await ml.initBackend(args.backend ?? 'auto');
const data = generateSynthetic({ alpha: 1, beta: 1, seed: DATA_SEED });
const D = data.dimension, C = data.classes;
const devices = data.devices.map((d, i) => ({
  id: `dev${String(i).padStart(2, '0')}`, name: d.name,
  train: { x: d.train.x, y: d.train.y, n: d.train.n, features: D, numClasses: C },
  test: { x: d.test.x, y: d.test.y, n: d.test.n, features: D, numClasses: C },
}));
const concat = (key) => {
  const n = devices.reduce((s, d) => s + d[key].n, 0);
  const x = new Float32Array(n * D), y = new Int32Array(n);
  let o = 0;
  for (const d of devices) {
    x.set(d[key].x, o * D);
    y.set(d[key].y, o);
    o += d[key].n;
  }
  return { x, y, n, features: D, numClasses: C };
};
const allTrain = concat('train'), allTest = concat('test');
process.stderr.write(`Synthetic(1,1) seed ${DATA_SEED}: ${devices.length} devices, ${allTrain.n} train / ${allTest.n} test rows, sizes ${devices.map((d) => d.train.n).join(' ')}; backend ${backend.name}\n`);

/**
 * The round plan shared by every arm (the paper seeds selection and stragglers by round so the arms compare on the
 * same devices): the strategy's own selectAgents with a per-round seeded rng, then round(K * (1 - s)) active devices
 * chosen among them, the others stragglers with randint(1, E) epochs.
 */
function roundPlan(strategy, round) {
  const candidates = devices.map((d) => ({ id: d.id, name: d.name, numExamples: d.train.n }));
  const rng = createRng(SEED * 1_000_003 + round);
  const selected = strategy.selectAgents(candidates, rng);
  const active = Math.round(selected.length * (1 - STRAGGLERS));
  const order = selected.map((_, i) => i);
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(rng() * (i + 1));
    [order[i], order[j]] = [order[j], order[i]];
  }
  return selected.map((c, i) => {
    const straggler = order.indexOf(i) >= active;
    return { id: c.id, straggler, epochs: straggler ? 1 + Math.floor(rng() * (EPOCHS - 1)) : EPOCHS };
  });
}

async function runArm(arm) {
  const config = parseRunConfig({
    model: { builtin: 'mlp', hidden: [] },
    strategy: arm.strategy,
    rounds: ROUNDS,
    agentsPerRound: { fraction: PER_ROUND / devices.length, min: PER_ROUND },
    minResults: 1,
    epochs: EPOCHS,
    batchSize: BATCH,
    learningRate: LR,
    seed: SEED,
    task: { type: 'classification', normalization: 'none' },
  });
  const strategy = createStrategy(config, { populationSize: () => devices.length });
  const task = resolveTask(config.task, config.learningRate, C);
  const mu = config.strategy.proximalMu;
  if (mu !== undefined && mu > 0) task.proximalMu = mu; // as data-step.ts puts it in every training task
  const model = ml.createMlp({ inputWidth: D, hidden: config.model.hidden, outputs: C, activation: 'softmax', seed: config.seed });
  let global = ml.getWeights(model).weights;
  const agg = StreamingFedAvg.create(global.length, { slots: 1, kernel: 'js' });
  const evalTask = { ...task, proximalMu: undefined };
  const evalAll = async () => {
    ml.setWeights(model, global);
    const tr = await ml.evaluate(model, allTrain, 2000, evalTask);
    const te = await ml.evaluate(model, allTest, 2000, evalTask);
    return { trainLoss: tr.loss, trainAccuracy: tr.accuracy, testAccuracy: te.accuracy };
  };
  const rows = [{ round: 0, ...(await evalAll()) }];
  const t0 = performance.now();
  let diverged = null;
  for (let round = 1; round <= ROUNDS; round++) {
    const plan = roundPlan(strategy, round);
    agg.reset();
    const results = [], failures = [];
    for (const p of plan) {
      if (p.straggler && arm.drop) {
        failures.push({ agentId: p.id, outcome: 'dropped', reason: 'straggler (did not finish E epochs)' });
        continue;
      }
      const dev = devices.find((d) => d.id === p.id);
      ml.setWeights(model, global);
      try {
        await ml.trainLocal(model, dev.train, { epochs: p.epochs, batchSize: config.batchSize, seed: config.seed * 7919 + round * 31 + Number(dev.id.slice(3)), task });
      } catch (err) {
        // trainLocal refuses a non-finite loss: the run diverged; recorded, and the arm stops.
        diverged = { round, device: p.id, message: err.message };
        break;
      }
      const w = ml.getWeights(model).weights;
      const slot = await agg.acquire();
      for (let i = 0; i < w.length; i++) slot.view[i] = w[i] - global[i];
      const weight = strategy.weightOf(dev.train.n);
      agg.fold(slot, weight);
      agg.release(slot);
      results.push({ agentId: p.id, numExamples: dev.train.n, weight, metrics: {} });
    }
    if (diverged) break;
    const view = { count: agg.count, totalWeight: agg.totalWeight, mean: () => agg.result() };
    const out = strategy.aggregate(global, view, results, failures);
    if (!out.ok) throw new Error(`${arm.id} round ${round}: ${out.reason}`);
    global = out.weights;
    const row = { round, ...(await evalAll()), trained: plan.filter((p) => !(p.straggler && arm.drop)).map((p) => [p.id, p.epochs]) };
    rows.push(row);
    if (round % 10 === 0 || round === ROUNDS)
      process.stderr.write(`  ${arm.id} round ${round}: train loss ${row.trainLoss.toFixed(4)}, test acc ${row.testAccuracy.toFixed(4)} (${((performance.now() - t0) / 1000).toFixed(0)} s)\n`);
    if (!Number.isFinite(row.trainLoss)) {
      diverged = { round, message: 'training loss is not finite' };
      break;
    }
  }
  agg.dispose();
  model.dispose();
  return { arm, seconds: (performance.now() - t0) / 1000, rows, diverged, strategyName: strategy.name, proximalMu: task.proximalMu ?? 0 };
}

/** Summary of one arm's curve: where it ends, its best, and how much the loss jumps round to round in the second half. */
function summarize(r) {
  const rows = r.rows.slice(1);
  const last = rows.at(-1);
  const tail = rows.slice(Math.floor(rows.length / 2));
  const jumps = tail.slice(1).map((row, i) => Math.abs(row.trainLoss - tail[i].trainLoss));
  const mean = (a) => a.reduce((s, v) => s + v, 0) / Math.max(1, a.length);
  const lastK = rows.slice(-20);
  return {
    arm: r.arm.id, label: r.arm.label, strategy: r.strategyName, proximalMu: r.proximalMu, dropsStragglers: r.arm.drop,
    rounds: rows.length, diverged: r.diverged,
    finalTrainLoss: last?.trainLoss ?? null, minTrainLoss: Math.min(...rows.map((x) => x.trainLoss)), maxTrainLoss: Math.max(...rows.map((x) => x.trainLoss)),
    meanTrainLossLast20: mean(lastK.map((x) => x.trainLoss)),
    finalTestAccuracy: last?.testAccuracy ?? null, bestTestAccuracy: Math.max(...rows.map((x) => x.testAccuracy)),
    meanTestAccuracyLast20: mean(lastK.map((x) => x.testAccuracy)),
    meanAbsLossJumpSecondHalf: mean(jumps),
    seconds: r.seconds,
  };
}

const results = [];
for (const arm of arms) {
  process.stderr.write(`${arm.label}: ${ROUNDS} rounds\n`);
  results.push(await runArm(arm));
}
const summaries = results.map(summarize);
const f4 = (x) => (x === null || x === undefined || !Number.isFinite(x) ? String(x) : x.toFixed(4));
console.log(`\nSynthetic(1,1), ${devices.length} devices (${allTrain.n} train rows), ${PER_ROUND} per round, ${Math.round(STRAGGLERS * 100)}% stragglers, E=${EPOCHS}, batch ${BATCH}, SGD lr ${LR}, ${ROUNDS} rounds (in-process, product's trainLocal + createStrategy)`);
console.log('| arm | final train loss | mean train loss, last 20 rounds | max train loss | mean abs loss jump, 2nd half | final test acc | mean test acc, last 20 | best test acc | diverged | s |');
console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |');
for (const s of summaries)
  console.log(`| ${s.label} | ${f4(s.finalTrainLoss)} | ${f4(s.meanTrainLossLast20)} | ${f4(s.maxTrainLoss)} | ${f4(s.meanAbsLossJumpSecondHalf)} | ${f4(s.finalTestAccuracy)} | ${f4(s.meanTestAccuracyLast20)} | ${f4(s.bestTestAccuracy)} | ${s.diverged ? `round ${s.diverged.round}` : 'no'} | ${s.seconds.toFixed(0)} |`);

mkdirSync(path.dirname(OUT), { recursive: true });
writeFileSync(OUT, JSON.stringify({
  bench: 'fedprox-synthetic', date: new Date().toISOString(), node: process.version, cpus: os.cpus().length, backend,
  mode: 'in-process (parseRunConfig + createStrategy + StreamingFedAvg + @fedge/ml trainLocal); no agent processes',
  settings: { rounds: ROUNDS, epochs: EPOCHS, perRound: PER_ROUND, stragglers: STRAGGLERS, learningRate: LR, batchSize: BATCH, seed: SEED, dataSeed: DATA_SEED, mu: MU, stragglerEpochs: `uniform integer in [1, ${EPOCHS - 1}]` },
  data: { recipe: 'Li et al. 2020 Synthetic(1,1), FedProx repo data/synthetic_1_1/generate_synthetic.py, own seeded RNG', devices: devices.map((d) => ({ name: d.name, train: d.train.n, test: d.test.n })) },
  summaries,
  curves: results.map((r) => ({ arm: r.arm.id, rows: r.rows })),
}, null, 1));
process.stderr.write(`wrote ${path.relative(ROOT, OUT)}\n`);
