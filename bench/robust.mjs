#!/usr/bin/env node
/**
 * Robust aggregation bench (issue 10, "Benchmark", third bullet), two parts:
 *
 * 1. Accuracy under sign-flip attackers. Each configuration is one real `fedge demo` (a coordinator and 10 agent
 *    processes over gRPC on loopback; mnist-mlp, IID, the demo's defaults otherwise) with
 *    `--attackers F --attack sign-flip:10` for F in 0.1, 0.2, 0.3 and `--strategy` fedavg (none), median,
 *    trimmed-mean:beta=F, multi-krum:f=round(10F), norm-bound:bound=B; plus fedavg without attackers as the reference.
 *    Reports the final central accuracy (997 held-out digits) after --rounds rounds.
 *    The norm bound B is measured, not guessed (unless --bound is given): two 1-round demos with the same seed, so the
 *    same initial model: one with `norm-bound:bound=0.000001` (its saved model is the initial one within 1e-6) and one
 *    plain fedavg without attackers (initial + the mean of 10 honest round-1 updates). B = ceil(||difference||), the
 *    round-1 FedAvg update norm rounded up; by the triangle inequality individual honest updates average at least
 *    that, and a sign-flip:10 attacker sends 10x an honest norm.
 *
 * 2. Peak RSS of `median` over K = 25, 50, 100 updates of 1,663,370 params (the mnist-cnn size, 6.65 MB each).
 *    In-process, not a full coordinator: K spool files of 1,663,370 float32 are written to a temp dir, then a fresh
 *    Node process per K imports the coordinator's dist, holds a base model, opens the files with openSpoolSource
 *    (engine/spool-source.js, what sync rounds aggregate from) and calls RobustStrategy('median').aggregateUpdates
 *    (strategy/robust.js: chunked coordinate-wise median over the spool + the server step), sampling
 *    process.memoryUsage() on every 64th chunk read and process.resourceUsage().maxRSS (the kernel's peak) at the end.
 *    No gRPC, no intake, no agent registry: it measures the aggregation path's memory, not the whole coordinator's.
 *
 *   npx tsc -b && node bench/robust.mjs                        # everything (~10 min on 2 cores)
 *   node bench/robust.mjs --rounds 10 --fractions 0.3 --skip-memory
 *   node bench/robust.mjs --skip-accuracy --ks 25,100
 *
 * Writes bench/results/robust.json (--out): every run's command, per-round central accuracy, the norm probe, the
 * memory samples.
 */
import { spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const args = Object.fromEntries(
  process.argv.slice(2).reduce((acc, a, i, all) => (a.startsWith('--') ? [...acc, [a.slice(2), all[i + 1]?.startsWith('--') || all[i + 1] === undefined ? 'true' : all[i + 1]]] : acc), []),
);

// ---- child mode: one memory measurement -------------------------------------------------------
if (args.child === 'median') {
  const dir = args.dir;
  const K = Number(args.k);
  const N = Number(args.n);
  const dist = path.join(ROOT, 'packages/coordinator/dist');
  const { openSpoolSource } = await import(pathToFileURL(path.join(dist, 'engine/spool-source.js')).href);
  const { RobustStrategy } = await import(pathToFileURL(path.join(dist, 'strategy/robust.js')).href);
  const { DEFAULT_CHUNK } = await import(pathToFileURL(path.join(dist, 'strategy/rules/robust.js')).href);
  const base = new Float32Array(N); // the global model the coordinator holds
  for (let i = 0; i < N; i++) base[i] = ((i * 2654435761) % 1000) / 1e4;
  globalThis.gc?.();
  const mem = () => process.memoryUsage();
  const before = mem();
  const maxRssBeforeKB = process.resourceUsage().maxRSS;
  const files = readdirSync(dir).filter((f) => f.endsWith('.f32')).sort().slice(0, K);
  if (files.length !== K) throw new Error(`${dir}: ${files.length} spool files, need ${K}`);
  const src = openSpoolSource(files.map((f) => ({ name: f, file: path.join(dir, f), weight: 1 })), N);
  let peakRss = before.rss;
  let peakAb = before.arrayBuffers;
  let reads = 0;
  const sampled = {
    ...src,
    read: (k, o, l) => {
      if ((reads++ & 63) === 0) {
        const m = mem();
        if (m.rss > peakRss) peakRss = m.rss;
        if (m.arrayBuffers > peakAb) peakAb = m.arrayBuffers;
      }
      return src.read(k, o, l);
    },
  };
  const strategy = new RobustStrategy('median', { fraction: 1, minAgents: 1, minResults: 1, serverLearningRate: 1 });
  const results = files.map((f) => ({ name: f }));
  const t0 = performance.now();
  const out = strategy.aggregateUpdates(base, sampled, results, []);
  const seconds = (performance.now() - t0) / 1000;
  if (!out.ok) throw new Error(out.reason);
  const after = mem();
  peakRss = Math.max(peakRss, after.rss);
  peakAb = Math.max(peakAb, after.arrayBuffers);
  src.close();
  const checksum = out.weights.reduce((s, x, i) => (i % 9973 === 0 ? s + x : s), 0);
  process.stdout.write(JSON.stringify({
    K, N, chunk: DEFAULT_CHUNK, seconds, reads, before, after, peakRss, peakArrayBuffers: peakAb,
    maxRssBeforeKB, maxRssKB: process.resourceUsage().maxRSS, checksum,
  }) + '\n');
  process.exit(0);
}

// ---- parent ---------------------------------------------------------------------------------
const CLI = path.resolve(args.cli ?? path.join(ROOT, 'packages/coordinator/dist/cli/main.js'));
const AGENTS = Number(args.agents ?? 10);
const ROUNDS = Number(args.rounds ?? 5);
const SEED = Number(args.seed ?? 42);
const FRACTIONS = String(args.fractions ?? '0.1,0.2,0.3').split(',').map(Number);
const KS = String(args.ks ?? '25,50,100').split(',').map(Number);
const N = Number(args.params ?? 1_663_370);
const OUT = path.resolve(args.out ?? path.join(ROOT, 'bench/results/robust.json'));
const MB = 1e6;
const MODEL_MB = (N * 4) / MB;
const r4 = (x) => (x === null || x === undefined ? null : Math.round(x * 1e4) / 1e4);
const r2 = (x) => Math.round(x * 100) / 100;
const load = () => os.loadavg().map(r2);
const pct = (x) => (x === null || x === undefined ? 'n/a' : `${(x * 100).toFixed(1)}%`);

function demo(extra, keepDir = false) {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'fedge-bench-robust-'));
  const argv = [CLI, 'demo', '--agents', String(AGENTS), '--partition', 'iid', '--seed', String(SEED), ...extra, '--format', 'json', '--data-dir', dataDir];
  const command = `fedge ${argv.slice(1).join(' ').replace(dataDir, 'DIR')}`;
  process.stderr.write(`[${new Date().toISOString()}] ${command}\n`);
  const loadBefore = load();
  const t0 = performance.now();
  const r = spawnSync(process.execPath, argv, { cwd: ROOT, encoding: 'utf8', maxBuffer: 64 << 20 });
  const processSeconds = r2((performance.now() - t0) / 1000);
  let out;
  try {
    out = JSON.parse(r.stdout.trim().split('\n').at(-1));
  } catch {
    process.stderr.write(r.stderr.slice(-4000));
    rmSync(dataDir, { recursive: true, force: true });
    throw new Error(`${command}: exited with ${r.status} and no JSON result`);
  }
  let weights = null;
  if (keepDir && out.modelPath) {
    const b = readFileSync(path.join(path.dirname(out.modelPath), 'weights.bin'));
    weights = new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4).slice();
  }
  rmSync(dataDir, { recursive: true, force: true });
  return { command, out, processSeconds, loadBefore, loadAfter: load(), weights };
}

const result = {
  date: new Date().toISOString(),
  node: process.version,
  cpu: os.cpus()[0]?.model,
  cores: os.cpus().length,
  cli: path.relative(ROOT, CLI),
  build: args.build ?? null,
  note: 'run under nice -n 10 while a CI job shared the 2 cores; timings are indicative only',
};

// ---- part 1: accuracy ----------------------------------------------------------------------
if (args['skip-accuracy'] !== 'true') {
  let bound = args.bound !== undefined ? Number(args.bound) : null;
  if (bound === null) {
    const init = demo(['--rounds', '1', '--strategy', 'norm-bound:bound=0.000001'], true);
    const step = demo(['--rounds', '1'], true);
    let s = 0;
    for (let i = 0; i < init.weights.length; i++) s += (step.weights[i] - init.weights[i]) ** 2;
    const norm = Math.sqrt(s);
    bound = Math.ceil(norm);
    result.normProbe = {
      how: 'B = ceil(||w1 - w0||): w0 from a 1-round demo with norm-bound:bound=0.000001 (the initial model within 1e-6), w1 from a 1-round plain fedavg demo without attackers, same seed (same initial model)',
      commands: [init.command, step.command],
      fedavgRound1UpdateNorm: r4(norm),
      bound,
      params: init.weights.length,
    };
    process.stderr.write(`norm probe: round-1 FedAvg update norm ${norm.toFixed(4)} -> bound ${bound}\n`);
  }
  const configs = [{ fraction: 0, name: 'fedavg', spec: null }];
  for (const F of FRACTIONS) {
    const f = Math.round(F * AGENTS);
    configs.push(
      { fraction: F, name: 'fedavg', spec: null },
      { fraction: F, name: 'median', spec: 'median' },
      { fraction: F, name: `trimmed-mean beta=${F}`, spec: `trimmed-mean:beta=${F}` },
      { fraction: F, name: `multi-krum f=${f}`, spec: `multi-krum:f=${f}` },
      { fraction: F, name: `norm-bound bound=${bound}`, spec: `norm-bound:bound=${bound}` },
    );
  }
  const runs = [];
  for (const c of configs) {
    const extra = ['--rounds', String(ROUNDS), ...(c.fraction ? ['--attackers', String(c.fraction), '--attack', 'sign-flip:10'] : []), ...(c.spec ? ['--strategy', c.spec] : [])];
    const d = demo(extra);
    const metrics = d.out.metrics ?? [];
    runs.push({
      attackerFraction: c.fraction,
      attackers: d.out.attackers ?? 0,
      config: c.name,
      strategyFlag: c.spec,
      command: d.command,
      status: d.out.status,
      finalAccuracy: r4(d.out.finalAccuracy),
      initialAccuracy: r4(d.out.initialAccuracy),
      accuracy: metrics.map((m) => r4(m.centralAccuracy ?? null)),
      roundStatus: metrics.map((m) => m.status),
      totalSeconds: d.out.totalSeconds,
      processSeconds: d.processSeconds,
      loadavgBefore: d.loadBefore,
      loadavgAfter: d.loadAfter,
    });
    process.stderr.write(`  ${c.fraction * 100}% ${c.name}: final ${pct(d.out.finalAccuracy)} (${d.processSeconds} s)\n`);
  }
  result.accuracy = { agents: AGENTS, rounds: ROUNDS, seed: SEED, model: 'mnist-mlp', partition: 'iid', attack: 'sign-flip:10', runs };

  // table: rows = strategy, columns = attacker fraction
  const cols = [0, ...FRACTIONS];
  const rowNames = ['fedavg', 'median', 'trimmed-mean beta=F', 'multi-krum f=10F', `norm-bound bound=${bound}`];
  const key = (n) => (n.startsWith('trimmed-mean') ? 'trimmed-mean beta=F' : n.startsWith('multi-krum') ? 'multi-krum f=10F' : n);
  console.log(`\nFinal central accuracy after ${ROUNDS} rounds, mnist-mlp, ${AGENTS} agents IID, sign-flip:10 attackers`);
  console.log(`| strategy | ${cols.map((F) => `${F * 100}% attackers`).join(' | ')} |`);
  console.log(`| --- | ${cols.map(() => '---:').join(' | ')} |`);
  for (const rn of rowNames) {
    const cells = cols.map((F) => {
      const r = runs.find((x) => x.attackerFraction === F && key(x.config) === rn);
      return r ? pct(r.finalAccuracy) : '';
    });
    console.log(`| ${rn} | ${cells.join(' | ')} |`);
  }
  writeFileSync(OUT, JSON.stringify(result, null, 2) + '\n');
}

// ---- part 2: memory ------------------------------------------------------------------------
if (args['skip-memory'] !== 'true') {
  const maxK = Math.max(...KS);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'fedge-bench-robust-spool-'));
  try {
    const t0 = performance.now();
    const buf = new Float32Array(N);
    let x = 12345;
    for (let i = 0; i < N; i++) {
      x = (x * 1103515245 + 12345) >>> 0;
      buf[i] = (x / 2 ** 32 - 0.5) * 0.01;
    }
    for (let k = 0; k < maxK; k++) {
      // each update differs: a per-update offset and scale; every 10th is a sign-flip x10 attacker
      const scale = (k % 10 === 0 ? -10 : 1) * (1 + k / maxK);
      const u = new Float32Array(N);
      for (let i = 0; i < N; i++) u[i] = buf[(i + k * 7919) % N] * scale;
      const fd = openSync(path.join(dir, `update-${String(k).padStart(3, '0')}.f32`), 'w');
      writeSync(fd, new Uint8Array(u.buffer));
      closeSync(fd);
    }
    const writeSeconds = r2((performance.now() - t0) / 1000);
    process.stderr.write(`wrote ${maxK} spool files of ${N} float32 (${r2((maxK * N * 4) / MB)} MB) in ${writeSeconds} s\n`);
    const samples = [];
    for (const K of KS) {
      const argv = [fileURLToPath(import.meta.url), '--child', 'median', '--dir', dir, '--k', String(K), '--n', String(N)];
      const t1 = performance.now();
      const r = spawnSync(process.execPath, argv, { cwd: ROOT, encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`memory child K=${K} exited ${r.status}: ${r.stderr.slice(-2000)}`);
      const s = JSON.parse(r.stdout.trim().split('\n').at(-1));
      s.processSeconds = r2((performance.now() - t1) / 1000);
      const chunkBufferMB = (4 * K * s.chunk) / MB;
      const growth = (s.peakRss - s.before.rss) / MB;
      const maxRssGrowth = (s.maxRssKB * 1024 - s.before.rss) / MB;
      Object.assign(s, {
        baselineRssMB: r2(s.before.rss / MB),
        peakRssMB: r2(s.peakRss / MB),
        maxRssMB: r2((s.maxRssKB * 1024) / MB),
        rssGrowthMB: r2(growth),
        maxRssGrowthMB: r2(maxRssGrowth),
        rssGrowthModels: r2(growth / MODEL_MB),
        arrayBuffersBeforeMB: r2(s.before.arrayBuffers / MB),
        peakArrayBuffersMB: r2(s.peakArrayBuffers / MB),
        arrayBuffersGrowthModels: r2((s.peakArrayBuffers - s.before.arrayBuffers) / MB / MODEL_MB),
        chunkBufferMB: r2(chunkBufferMB),
        growthMinusChunkBufferModels: r2((Math.max(growth, maxRssGrowth) - chunkBufferMB) / MODEL_MB),
      });
      samples.push(s);
      process.stderr.write(`  median K=${K}: baseline ${s.baselineRssMB} MB, peak ${s.peakRssMB} MB (maxRSS ${s.maxRssMB}), ${r2(s.seconds)} s\n`);
    }
    result.memory = {
      what: 'in-process: openSpoolSource over K spool files + RobustStrategy(median).aggregateUpdates (chunked median + server step), one fresh node process per K holding a base model; not a full coordinator (no gRPC, intake, registry, store)',
      params: N,
      modelMB: r2(MODEL_MB),
      writeSeconds,
      samples,
    };
    console.log(`\nPeak RSS of median over K updates of ${N.toLocaleString('en-US')} params (model ${MODEL_MB.toFixed(2)} MB), in-process over spool files`);
    console.log('| K | baseline RSS MB | peak RSS MB (sampled / kernel maxRSS) | growth MB | growth in model sizes | chunk buffer MB | growth − chunk buffer, model sizes | peak arrayBuffers MB | median s |');
    console.log('| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
    for (const s of samples)
      console.log(`| ${s.K} | ${s.baselineRssMB} | ${s.peakRssMB} / ${s.maxRssMB} | ${Math.max(s.rssGrowthMB, s.maxRssGrowthMB)} | ${r2(Math.max(s.rssGrowthMB, s.maxRssGrowthMB) / MODEL_MB)} | ${s.chunkBufferMB} | ${s.growthMinusChunkBufferModels} | ${s.peakArrayBuffersMB} | ${r2(s.seconds)} |`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  writeFileSync(OUT, JSON.stringify(result, null, 2) + '\n');
}
process.stderr.write(`wrote ${path.relative(ROOT, OUT)}\n`);
