#!/usr/bin/env node
/**
 * Backends bench (issue 12): samples/s of mnist-mlp and mnist-cnn training and evaluation on every tfjs backend this
 * machine has (tensorflow = @tensorflow/tfjs-node, wasm with fedge's training kernels, cpu), measured where agents
 * train: in a worker thread, with fedge's own trainLocal/evaluate, at batch 10 and 50. Prints a table and writes
 * bench/results/backends.json.
 *
 *   npx tsc -b && bash scripts/install-native-backend.sh     # the native backend, if wanted
 *   node bench/backends.mjs                    # every available backend, both models, batch 10 and 50 (~3-6 min)
 *   node bench/backends.mjs --seconds 4 --backends tensorflow,wasm --demo-rounds 0 --out /tmp/b.json
 *
 * Each cell: a warm-up fit (kernels compiled, wasm heap and TF thread pools up), then as many whole epochs over a
 * fixed MNIST subset as fit in --seconds, timed together; evaluation likewise with trainLocal's sibling evaluate() at
 * the same batch size. The cpu backend runs the MLP only, unless --cpu-cnn (then one batch: well under 1 sample/s).
 * Thread scaling: `tensorflow` uses every core (libtensorflow's pools); `tensorflow-1t` is the same backend with
 * TF_NUM_INTRAOP_THREADS=1 and TF_NUM_INTEROP_THREADS=1 (a separate process: libtensorflow reads them once at load);
 * wasm and cpu run on one thread (tfjs-backend-wasm's threaded build needs SharedArrayBuffer workers fedge does not
 * set up). Then rounds/minute of `fedge demo --model mnist-cnn` on tensorflow and wasm (--demo-rounds, 0: skip).
 * The machine's load average is recorded before and after: other jobs skew everything on a shared box.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';

// libtensorflow's start-up notices: set before any worker starts (libtensorflow reads the process environment).
process.env.TF_CPP_MIN_LOG_LEVEL ??= '2';
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const ML = path.join(ROOT, 'packages/ml/dist/index.js');

if (!isMainThread) {
  // ---------------------------------------------------------------- worker: one backend, every cell
  const ml = await import(ML);
  const { backend, cells, seconds } = workerData;
  const info = await ml.initBackend(backend);
  const { train, test } = ml.loadMnist();
  const results = [];
  for (const c of cells) {
    const n = Math.min(c.samples, train.n);
    const data = ml.subset(train, Array.from({ length: n }, (_, i) => i));
    const evalData = ml.subset(test, Array.from({ length: Math.min(c.samples, test.n) }, (_, i) => i));
    const model = ml.createBuiltinModel(c.model, 1);
    const opts = { epochs: 1, batchSize: c.batch, learningRate: 0.05, seed: 1 };
    // Warm-up on a slice: first-call kernel setup must not count.
    await ml.trainLocal(model, ml.subset(data, Array.from({ length: Math.min(n, c.batch * 3) }, (_, i) => i)), opts);
    await ml.evaluate(model, ml.subset(evalData, Array.from({ length: Math.min(evalData.n, c.batch * 2) }, (_, i) => i)), c.batch);
    let done = 0;
    let t0 = performance.now();
    do {
      await ml.trainLocal(model, data, { ...opts, seed: done });
      done += n;
    } while (performance.now() - t0 < seconds * 1000);
    const trainSps = done / ((performance.now() - t0) / 1000);
    let evals = 0;
    t0 = performance.now();
    do {
      await ml.evaluate(model, evalData, c.batch);
      evals += evalData.n;
    } while (performance.now() - t0 < seconds * 1000);
    const evalSps = evals / ((performance.now() - t0) / 1000);
    model.dispose();
    results.push({ ...c, trainSamples: done, trainSps, evalSps, leakedTensors: ml.tf.memory().numTensors });
  }
  parentPort.postMessage({ info, results });
} else {
  // ---------------------------------------------------------------- main: options, one worker per backend, table
  const arg = (name, dflt) => {
    const i = process.argv.indexOf(`--${name}`);
    return i > 0 ? process.argv[i + 1] : (process.env[`BENCH_BACKENDS_${name.toUpperCase().replace(/-/g, '_')}`] ?? dflt);
  };
  const seconds = Number(arg('seconds', '6'));
  const out = arg('out', path.join(ROOT, 'bench/results/backends.json'));
  const only = arg('backends', '');
  const childMode = process.env.BENCH_BACKENDS_CHILD; // set when this script re-runs itself for tensorflow-1t

  // The CNN on cpu runs at well under 1 sample/s (minutes per cell on a loaded box): only with --cpu-cnn.
  const cpuCnn = process.argv.includes('--cpu-cnn');
  const cellsFor = (backend) =>
    ['mnist-mlp', 'mnist-cnn']
      .filter((model) => backend !== 'cpu' || model === 'mnist-mlp' || cpuCnn)
      .flatMap((model) => [10, 50].map((batch) => ({ model, batch, samples: model === 'mnist-mlp' ? 4000 : backend === 'cpu' ? batch : 1000 })));
  const runBackend = (backend) =>
    new Promise((resolve, reject) => {
      const w = new Worker(fileURLToPath(import.meta.url), { workerData: { backend, cells: cellsFor(backend), seconds } });
      w.once('message', resolve);
      w.once('error', reject);
      w.once('exit', (code) => code !== 0 && reject(new Error(`worker for ${backend} exited ${code}`)));
    });

  if (childMode) {
    const r = await runBackend('tensorflow');
    process.stdout.write(JSON.stringify(r) + '\n');
    process.exit(0);
  }

  const nativeOk = spawnSync(process.execPath, ['-e', "require('@tensorflow/tfjs-node')"], { cwd: path.join(ROOT, 'packages/ml'), env: { ...process.env, TF_CPP_MIN_LOG_LEVEL: '2' } }).status === 0;
  let backends = ['tensorflow', 'tensorflow-1t', 'wasm', 'cpu'];
  if (!nativeOk) backends = backends.filter((b) => !b.startsWith('tensorflow'));
  if (only) backends = backends.filter((b) => only.split(',').includes(b));
  const loadBefore = os.loadavg();
  const rows = [];
  const infos = {};
  for (const b of backends) {
    process.stderr.write(`backends: ${b} ...\n`);
    let r;
    if (b === 'tensorflow-1t') {
      const c = spawnSync(process.execPath, [fileURLToPath(import.meta.url), '--seconds', String(seconds)], {
        env: { ...process.env, BENCH_BACKENDS_CHILD: '1', TF_NUM_INTRAOP_THREADS: '1', TF_NUM_INTEROP_THREADS: '1', TF_CPP_MIN_LOG_LEVEL: '2' },
        encoding: 'utf8',
        maxBuffer: 1 << 24,
      });
      if (c.status !== 0) throw new Error(`tensorflow-1t child failed: ${c.stderr}`);
      r = JSON.parse(c.stdout.trim().split('\n').at(-1));
    } else r = await runBackend(b);
    infos[b] = r.info;
    for (const x of r.results) {
      rows.push({ backend: b, ...x });
      process.stderr.write(`  ${b} ${x.model} batch ${x.batch}: train ${x.trainSps.toFixed(1)}/s, eval ${x.evalSps.toFixed(1)}/s\n`);
    }
  }
  // Whole federation: rounds/minute of `fedge demo --model mnist-cnn` (4 agent processes, 2 rounds, defaults: batch
  // 10, 1 epoch) per backend, forced through FEDGE_BACKEND, which the demo's agents inherit.
  const demoRounds = Number(arg('demo-rounds', '2'));
  const demos = [];
  if (demoRounds > 0)
    for (const b of backends.filter((x) => x === 'tensorflow' || x === 'wasm')) {
      process.stderr.write(`backends: fedge demo --model mnist-cnn on ${b} ...\n`);
      const dataDir = mkdtempSync(path.join(os.tmpdir(), 'fedge-bench-backends-'));
      const t0 = performance.now();
      const d = spawnSync(process.execPath, [path.join(ROOT, 'packages/coordinator/dist/cli/main.js'), 'demo', '--model', 'mnist-cnn', '--rounds', String(demoRounds), '--data-dir', dataDir, '--format', 'json'], {
        env: { ...process.env, FEDGE_BACKEND: b },
        encoding: 'utf8',
        maxBuffer: 1 << 26,
      });
      const wall = (performance.now() - t0) / 1000;
      rmSync(dataDir, { recursive: true, force: true });
      if (d.status !== 0) throw new Error(`fedge demo on ${b} failed: ${d.stderr.slice(-2000)}`);
      const j = JSON.parse(d.stdout.trim().split('\n').at(-1));
      const roundSeconds = (j.metrics ?? []).map((m) => m.seconds).filter((x) => typeof x === 'number');
      demos.push({
        backend: j.backend,
        rounds: j.rounds,
        finalAccuracy: j.finalAccuracy,
        totalSeconds: j.totalSeconds,
        processSeconds: wall,
        // Rounds only (start-up, joins and the final evaluation excluded) when the run record has per-round times.
        roundsPerMinute: roundSeconds.length ? (60 * roundSeconds.length) / roundSeconds.reduce((a, b) => a + b, 0) : (60 * j.rounds) / j.totalSeconds,
      });
    }
  const loadAfter = os.loadavg();

  const get = (b, model, batch) => rows.find((r) => r.backend === b && r.model === model && r.batch === batch);
  const ratio = (a, b, k) => (a && b ? a[k] / b[k] : null);
  const ratios = {};
  for (const model of ['mnist-mlp', 'mnist-cnn'])
    for (const batch of [10, 50]) {
      const t = get('tensorflow', model, batch), w = get('wasm', model, batch);
      ratios[`${model}/b${batch}`] = { train: ratio(t, w, 'trainSps'), eval: ratio(t, w, 'evalSps') };
    }

  const f = (x) => (x >= 100 ? x.toFixed(0) : x.toFixed(1));
  console.log(`\nbackends bench: samples/s in a worker thread, ${os.cpus().length} cores (${os.cpus()[0]?.model}), load avg ${loadBefore.map((x) => x.toFixed(1)).join('/')} before, ${loadAfter.map((x) => x.toFixed(1)).join('/')} after\n`);
  console.log(`${'backend'.padEnd(14)} ${'model'.padEnd(10)} ${'batch'.padStart(5)} ${'train/s'.padStart(9)} ${'eval/s'.padStart(9)}`);
  for (const r of rows) console.log(`${r.backend.padEnd(14)} ${r.model.padEnd(10)} ${String(r.batch).padStart(5)} ${f(r.trainSps).padStart(9)} ${f(r.evalSps).padStart(9)}`);
  console.log('\ntensorflow / wasm:');
  for (const [k, v] of Object.entries(ratios)) console.log(`  ${k.padEnd(14)} train ${v.train?.toFixed(2) ?? 'n/a'}x  eval ${v.eval?.toFixed(2) ?? 'n/a'}x`);
  if (demos.length) {
    console.log('\nfedge demo --model mnist-cnn (4 agents, batch 10):');
    for (const d of demos) console.log(`  ${d.backend.padEnd(12)} ${d.roundsPerMinute.toFixed(2)} rounds/min, ${d.rounds} rounds in ${d.totalSeconds} s total, accuracy ${d.finalAccuracy?.toFixed(4)}`);
  }
  const cnn50 = ratios['mnist-cnn/b50']?.train;
  if (cnn50 != null) console.log(`goal (native >= 2x wasm, CNN training at batch 50): ${cnn50.toFixed(2)}x ${cnn50 >= 2 ? 'met' : 'NOT met'}`);

  mkdirSync(path.dirname(out), { recursive: true });
  writeFileSync(
    out,
    JSON.stringify(
      {
        date: new Date().toISOString(),
        node: process.version,
        cores: os.cpus().length,
        cpu: os.cpus()[0]?.model,
        loadAvgBefore: loadBefore,
        loadAvgAfter: loadAfter,
        secondsPerCell: seconds,
        backends: infos,
        rows,
        tensorflowOverWasm: ratios,
        demoCnn: demos,
      },
      null,
      2,
    ) + '\n',
  );
  console.log(`\nwrote ${path.relative(process.cwd(), out)}`);
}
