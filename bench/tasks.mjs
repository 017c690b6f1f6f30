#!/usr/bin/env node
/**
 * Tasks bench: each example of examples/ federated (IID over 4 agents) vs the same model trained centrally on the
 * union of the agents' training rows for the same number of epochs. Prints a table and writes bench/results/tasks.json.
 *
 *   npx tsc -b                                       # the demo and @fedge/ml run from dist
 *   node bench/tasks.mjs                             # 4 examples x 5 seeds (~4 min on 2 cores)
 *   node bench/tasks.mjs --examples wine,auto-mpg --seeds 1,2,3,4,5 --out /tmp/tasks.json
 *
 * Federated: `fedge demo --config <the example's run.json without stopAt> --agents 4 --seed S --format json`, i.e.
 * R rounds x E local epochs exactly (R, E, batch size, optimizer, loss, model from run.json). The demo holds out 10%
 * of the file for central evaluation (evaluation.holdout, seed S) and every agent keeps 10% of its partition for
 * federated evaluation; the metric reported is the central evaluation of the last version (the demo's finalMetrics).
 *
 * Centralized: in this process, with the @fedge/ml functions the agents and the coordinator use. The agents' training
 * rows are rebuilt exactly as fedge-agent builds them (loadTable, splitTable off the central holdout, partitionTable
 * iid 4, splitTable off the local holdout) and concatenated; they are encoded with the federated run's own
 * preprocessing and task (saved beside its final model; the bench checks that the union's combined statistics give
 * the same preprocessing, i.e. that it rebuilt the same rows); the same built-in MLP with the same initial weights
 * (createMlp, seed S) is trained with trainLocal for R x E epochs with one optimizer (no restart per round), batch
 * size B; it is evaluated on the same central holdout with evaluate. The bench also evaluates the federated final model
 * in this process and checks it gets the demo's numbers, so both columns come from the same evaluation code.
 *
 * Gap = how much worse federated is, relative to centralized: (central - federated) / central for accuracy-like
 * metrics, (federated - central) / central for rmse/mae. The issue's goal: within 2% (gap <= 0.02).
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const CLI = path.join(ROOT, 'packages/coordinator/dist/cli/main.js');
const CENTRAL_HOLDOUT = 0.1; // fedge demo's
const LOCAL_HOLDOUT = 0.1; // fedge-agent's --holdout default

/** Each example: its data spec and agent flags as in its README, and the metric its stopAt names. */
const EXAMPLES = {
  'auto-mpg': { data: 'csv:examples/auto-mpg/auto-mpg.csv', target: ['mpg'], missing: 'mean', primary: 'rmse' },
  'breast-cancer': { data: 'csv:examples/breast-cancer/breast-cancer.csv', target: ['diagnosis'], primary: 'accuracy' },
  wine: { data: 'csv:examples/wine/wine.csv', target: ['cultivar'], primary: 'accuracy' },
  'digits-images': { data: 'images:examples/digits-images/images', target: [], primary: 'accuracy' },
};
const LOWER_IS_BETTER = new Set(['rmse', 'mae', 'loss']);

function parseArgs(argv) {
  const o = { examples: Object.keys(EXAMPLES), seeds: [42, 1, 2, 3, 4], agents: 4, out: path.join(ROOT, 'bench/results/tasks.json'), keep: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = () => {
      const v = argv[++i];
      if (v === undefined) usage(`${a} needs a value`);
      return v;
    };
    if (a === '--examples') o.examples = next().split(',');
    else if (a === '--seeds') o.seeds = next().split(',').map(Number);
    else if (a === '--agents') o.agents = Number(next());
    else if (a === '--out') o.out = path.resolve(next());
    else if (a === '--keep') o.keep = true;
    else if (a === '--help' || a === '-h') usage();
    else usage(`unknown option ${a}`);
  }
  for (const e of o.examples) if (!EXAMPLES[e]) usage(`unknown example ${e}; known: ${Object.keys(EXAMPLES).join(', ')}`);
  if (o.seeds.some((s) => !Number.isInteger(s) || s < 1)) usage('--seeds: positive integers, comma-separated');
  if (!Number.isInteger(o.agents) || o.agents < 1) usage('--agents: a positive integer');
  return o;
}

function usage(msg) {
  if (msg) process.stderr.write(`tasks.mjs: ${msg}\n`);
  process.stderr.write('usage: node bench/tasks.mjs [--examples auto-mpg,breast-cancer,wine,digits-images] [--seeds 42,1,2,3,4] [--agents 4] [--out FILE] [--keep]\n');
  process.exit(msg ? 2 : 0);
}

/** Runs the federated side; resolves with the demo's JSON result. */
function runDemo(args) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, 'demo', ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '', err = '';
    child.stdout.on('data', (b) => (out += b));
    child.stderr.on('data', (b) => (err += b));
    child.on('exit', (code) => {
      if (code !== 0) return reject(new Error(`fedge demo ${args.join(' ')} exited ${code}:\n${err.slice(-3000)}`));
      resolve(JSON.parse(out.trim().split('\n').at(-1)));
    });
  });
}

const gapOf = (metric, fed, central) => (LOWER_IS_BETTER.has(metric) ? (fed - central) / central : (central - fed) / central);
const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
const std = (xs) => Math.sqrt(mean(xs.map((x) => (x - mean(xs)) ** 2)));
const fmt = (m, v) => (v === undefined || v === null ? '-' : ['rmse', 'mae'].includes(m) ? v.toFixed(3) : v.toFixed(4));
const pct = (g) => `${g >= 0 ? '+' : ''}${(100 * g).toFixed(1)}%`;

/** Concatenates encoded datasets (same features and target layout). */
function concat(sets) {
  const n = sets.reduce((a, d) => a + d.n, 0);
  const x = new Float32Array(n * sets[0].features);
  const Y = sets[0].y.constructor;
  const y = new Y(sets.reduce((a, d) => a + d.y.length, 0));
  let xo = 0, yo = 0;
  for (const d of sets) {
    x.set(d.x, xo);
    y.set(d.y, yo);
    xo += d.x.length;
    yo += d.y.length;
  }
  const { x: _x, y: _y, n: _n, ...rest } = sets[0];
  return { ...rest, x, y, n };
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  const ml = await import('@fedge/ml');
  const backend = await ml.initBackend();
  const work = mkdtempSync(path.join(os.tmpdir(), 'fedge-bench-tasks-'));
  const started = Date.now();
  const runs = [];
  for (const name of o.examples) {
    const ex = EXAMPLES[name];
    const config = JSON.parse(readFileSync(path.join(ROOT, 'examples', name, 'run.json'), 'utf8'));
    const { stopAt: _s, targetAccuracy: _t, ...fixed } = config;
    const cfgPath = path.join(work, `${name}.json`);
    writeFileSync(cfgPath, JSON.stringify(fixed, null, 2));
    const R = config.rounds, E = config.epochs, B = config.batchSize;
    for (const seed of o.seeds) {
      // ---- federated
      const dataDir = path.join(work, `${name}-${seed}`);
      const t0 = Date.now();
      const fed = await runDemo(['--config', cfgPath, '--data', ex.data, ...ex.target.flatMap((t) => ['--target', t]), ...(ex.missing ? ['--missing', ex.missing] : []),
        '--agents', String(o.agents), '--partition', 'iid', '--seed', String(seed), '--data-dir', dataDir, '--format', 'json']);
      const fedSeconds = (Date.now() - t0) / 1000;
      if (fed.status !== 'completed' || fed.rounds !== R) throw new Error(`${name} seed ${seed}: demo ${fed.status} after ${fed.rounds} of ${R} rounds`);
      const meta = await ml.loadModelDirMeta(fed.modelPath);
      const { task, preprocessing: pre } = meta;

      // ---- the agents' training rows, rebuilt as fedge-agent builds them
      const opts = { ...(ex.target.length ? { target: ex.target } : {}), ...(ex.missing ? { missing: ex.missing } : {}), baseDir: ROOT };
      const table = await ml.loadTable(ex.data, opts);
      const { train: pool, holdout: centralRows } = ml.splitTable(table, CENTRAL_HOLDOUT, seed);
      const trains = Array.from({ length: o.agents }, (_, i) =>
        ml.splitTable(ml.partitionTable(pool, { kind: 'iid', numPartitions: o.agents, partitionId: i, seed }), LOCAL_HOLDOUT, seed + i).train);
      // Same rows as the fleet's: the union's combined statistics rebuild the federated run's preprocessing.
      const combined = ml.combineProfiles(trains.map((t, i) => ({ agentId: String(i), name: `agent-${i}`, profile: ml.profileTable(t) })));
      const again = ml.buildPreprocessing(combined.columns, {
        targets: pre.targets.map((t) => t.name), features: pre.features.map((f) => f.name), normalization: pre.normalization, taskType: task.type,
        ...(pre.imageShape ? { imageShape: pre.imageShape } : {}),
      });
      for (const [k, f] of pre.features.entries()) {
        const g = again.features[k];
        const same = f.kind !== 'numeric' ? JSON.stringify(f) === JSON.stringify(g) : Math.abs(f.shift - g.shift) <= 1e-9 * Math.max(1, Math.abs(f.shift)) && Math.abs(f.scale - g.scale) <= 1e-9 * Math.max(1, f.scale);
        if (!same) throw new Error(`${name} seed ${seed}: feature ${f.name}: the rebuilt union gives ${JSON.stringify(g)}, the federated run had ${JSON.stringify(f)}`);
      }
      const union = concat(trains.map((t) => ml.encodeTable(t, pre, task)));
      const test = ml.encodeTable(centralRows, pre, task);

      // The federated final model, evaluated here: must give the demo's central metrics.
      const fedModel = await ml.modelFromBlob(await ml.loadModelDir(fed.modelPath));
      const fedHere = (await ml.evaluate(fedModel, test, 500, task)).metrics;
      fedModel.dispose();
      for (const [m, v] of Object.entries(fed.finalMetrics))
        if (Math.abs(fedHere[m] - v) > 1e-4 * Math.max(1, Math.abs(v))) throw new Error(`${name} seed ${seed}: ${m} of the federated model here ${fedHere[m]} vs the demo's ${v}`);

      // ---- centralized: same model, same initial weights, R x E epochs on the union, one optimizer
      const model = ml.createMlp({ inputWidth: pre.inputWidth, hidden: config.model.hidden, outputs: task.outputs, activation: ml.outputActivationFor(task.type), seed });
      const t1 = Date.now();
      await ml.trainLocal(model, union, { epochs: R * E, batchSize: B, seed, task });
      const centralSeconds = (Date.now() - t1) / 1000;
      const central = (await ml.evaluate(model, test, 500, task)).metrics;
      model.dispose();

      const metrics = task.metrics.map((m) => ({ metric: m, federated: fed.finalMetrics[m], centralized: central[m], gap: gapOf(m, fed.finalMetrics[m], central[m]) }));
      const run = {
        example: name, seed, task: task.type, rounds: R, epochs: E, batchSize: B, optimizer: task.optimizer, loss: task.loss,
        trainRows: union.n, agentRows: trains.map((t) => t.n), holdoutRows: test.n, federatedSeconds: fedSeconds, centralSeconds, metrics,
      };
      runs.push(run);
      const p = metrics.find((m) => m.metric === ex.primary);
      process.stderr.write(`${name} seed ${seed}: ${ex.primary} federated ${fmt(p.metric, p.federated)} centralized ${fmt(p.metric, p.centralized)} gap ${pct(p.gap)} (${union.n} training rows, ${test.n} held out; ${fedSeconds.toFixed(1)} s federated, ${centralSeconds.toFixed(1)} s central)\n`);
      if (!o.keep) rmSync(dataDir, { recursive: true, force: true });
    }
  }

  // ---- summary: mean over seeds per example and metric
  const summary = [];
  for (const name of o.examples) {
    const rs = runs.filter((r) => r.example === name);
    for (const metric of rs[0].metrics.map((m) => m.metric)) {
      const f = rs.map((r) => r.metrics.find((m) => m.metric === metric).federated);
      const c = rs.map((r) => r.metrics.find((m) => m.metric === metric).centralized);
      const g = gapOf(metric, mean(f), mean(c));
      summary.push({ example: name, metric, primary: metric === EXAMPLES[name].primary, federated: mean(f), federatedStd: std(f), centralized: mean(c), centralizedStd: std(c), gap: g, within2pct: g <= 0.02, seeds: rs.length });
    }
  }
  const lines = ['| example | metric | federated | centralized | gap | within 2% |', '| --- | --- | --- | --- | --- | --- |'];
  for (const s of summary)
    lines.push(`| ${s.example} | ${s.primary ? `**${s.metric}**` : s.metric} | ${fmt(s.metric, s.federated)} ± ${fmt(s.metric, s.federatedStd)} | ${fmt(s.metric, s.centralized)} ± ${fmt(s.metric, s.centralizedStd)} | ${pct(s.gap)} | ${s.within2pct ? 'yes' : 'no'} |`);
  const perSeed = ['| example | seed | metric | federated | centralized | gap |', '| --- | --- | --- | --- | --- | --- |'];
  for (const r of runs) {
    const p = r.metrics.find((m) => m.metric === EXAMPLES[r.example].primary);
    perSeed.push(`| ${r.example} | ${r.seed} | ${p.metric} | ${fmt(p.metric, p.federated)} | ${fmt(p.metric, p.centralized)} | ${pct(p.gap)} |`);
  }
  process.stdout.write(`\nMean over seeds ${o.seeds.join(', ')} (± std over seeds); gap > 0: federated worse\n\n${lines.join('\n')}\n\nPer seed, the example's stopAt metric:\n\n${perSeed.join('\n')}\n`);

  let commit = null;
  try {
    commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim();
  } catch { /* not a checkout */ }
  const result = {
    bench: 'tasks', date: new Date().toISOString(), commit,
    machine: { cpu: os.cpus()[0]?.model, cores: os.cpus().length, node: process.version, loadavg: os.loadavg(), tfjsBackend: backend.name },
    options: { examples: o.examples, seeds: o.seeds, agents: o.agents, partition: 'iid', centralHoldout: CENTRAL_HOLDOUT, localHoldout: LOCAL_HOLDOUT },
    wallSeconds: (Date.now() - started) / 1000,
    summary, runs,
  };
  mkdirSync(path.dirname(o.out), { recursive: true });
  writeFileSync(o.out, JSON.stringify(result, null, 2) + '\n');
  process.stderr.write(`wrote ${o.out} (${result.wallSeconds.toFixed(0)} s)\n`);
  if (!o.keep) rmSync(work, { recursive: true, force: true });
}

main().catch((err) => {
  process.stderr.write(`${err.stack ?? err}\n`);
  process.exit(1);
});
