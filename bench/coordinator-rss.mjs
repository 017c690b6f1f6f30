#!/usr/bin/env node
/**
 * Coordinator memory bench (issue 10, "Benchmark", third bullet): peak RSS of a real `fedge serve` process while one
 * sync round with the `median` strategy aggregates N updates of 1,663,370 params (mnist-cnn, 6.65 MB of float32
 * each), for N = 25, 50, 100. Goal: <= 3 model sizes + the chunk buffers, flat in N.
 *
 * Per N: a fresh `fedge serve --data-dir TMP --no-mqtt` (or --in-memory with --store memory) on a loopback port; N scripted agents in THIS process (not
 * fedge-agent processes: 100 tfjs agents do not fit the machine), each a real gRPC client built from the agent's own
 * transport (packages/edge-agent GrpcConnection: Join, the task stream, FetchModel, SubmitResult with the chunked
 * upload). Each joins, takes its train task, downloads the global model as a real agent does, and uploads a
 * float32 delta (encodeUpdate of @fedge/proto, the agent's float32 codec) of deterministic pseudo-random values, all
 * N at once as soon as their tasks arrive; evaluate tasks of the final evaluation are answered with fixed metrics.
 * The run (AdminClient.startRun): model mnist-cnn, strategy median, 1 round, agentsPerRound { fraction 1, min N },
 * no central evaluation (it would load MNIST into the coordinator).
 *
 * Memory is read from /proc/PID/status of the coordinator: VmRSS sampled every 20 ms, and VmHWM (the kernel's peak)
 * per phase. The peak is reset (`echo 5 > /proc/PID/clear_refs`) at the start of each phase, so every phase has its
 * own kernel peak:
 *   baseline     all N agents joined, no run yet (VmRSS)
 *   start        run start -> every agent has its task (the initial model built, tasks signed and sent)
 *   download     all N download the global model
 *   upload       all N upload; ends when the N-th update is in the durable spool (DATA_DIR/updates/RUN/1/updates.spool)
 *   aggregate    -> round record visible (median over the spool, the server step, the new version stored and signed)
 *   final-eval   the final evaluation round
 * "model sizes" = (phase peak - baseline) / 6,653,480 bytes.
 *
 *   npx tsc -b && node bench/coordinator-rss.mjs              # N = 25, 50, 100 (~2-3 min)
 *   node bench/coordinator-rss.mjs --agents 10,100 --out /tmp/x.json
 *   node bench/coordinator-rss.mjs --agents 100 --upload-concurrency 2 --download-concurrency 2   # staggered fleet
 *
 * Writes bench/results/coordinator-rss.json: per N the phase peaks, baseline, the sampled VmRSS timeline, timings.
 */
import { spawn } from 'node:child_process';
import { closeSync, fstatSync, mkdirSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { ENCODING_OF, encodeUpdate } from '@fedge/proto';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const FEDGE = path.join(ROOT, 'packages/coordinator/dist/cli/main.js');
const { GrpcConnection } = await import(pathToFileURL(path.join(ROOT, 'packages/edge-agent/dist/transport/grpc/grpc-connection.js')).href);
const { AdminClient } = await import(pathToFileURL(path.join(ROOT, 'packages/coordinator/dist/cli/admin-client.js')).href);
const { DEFAULT_CHUNK } = await import(pathToFileURL(path.join(ROOT, 'packages/coordinator/dist/strategy/rules/robust.js')).href);

const args = Object.fromEntries(
  process.argv.slice(2).reduce((acc, a, i, all) => (a.startsWith('--') ? [...acc, [a.slice(2), all[i + 1]]] : acc), []),
);
const AGENTS = String(args.agents ?? '25,50,100').split(',').map(Number);
/** Downloads and uploads in flight at once (default: all N, as a fleet whose tasks arrive together). */
const DOWNLOADS = Number(args['download-concurrency'] ?? Infinity);
const UPLOADS = Number(args['upload-concurrency'] ?? Infinity);
/** disk: a fresh --data-dir (SQLite + model files, what `fedge serve` runs with by default); memory: --in-memory. */
const STORE = args.store ?? 'disk';
const OUT = path.resolve(args.out ?? path.join(ROOT, 'bench/results/coordinator-rss.json'));
const N_PARAMS = 1_663_370;
const MODEL_BYTES = N_PARAMS * 4;
const MB = 1e6;
const r2 = (x) => Math.round(x * 100) / 100;

function procStatus(pid) {
  const s = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(s)?.[1] ?? NaN) * 1024;
  return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
}
/** Resets the kernel's peak RSS (VmHWM) of a process we started (Linux clear_refs, value 5). */
const resetPeak = (pid) => writeFileSync(`/proc/${pid}/clear_refs`, '5');

function startCoordinator() {
  const dataDir = STORE === 'disk' ? mkdtempSync(path.join(os.tmpdir(), 'fedge-rss-')) : undefined;
  const store = dataDir ? ['--data-dir', dataDir] : ['--in-memory'];
  const child = spawn(process.execPath, [FEDGE, 'serve', '--listen', '127.0.0.1:0', ...store, '--no-mqtt'], {
    stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, FEDGE_LOG_LEVEL: 'info' },
  });
  let out = '';
  const waiters = [];
  const onData = (b) => {
    out += b.toString();
    for (const w of [...waiters]) if (w.re.test(out)) waiters.splice(waiters.indexOf(w), 1) && w.resolve();
  };
  child.stdout.on('data', onData);
  child.stderr.on('data', onData);
  const waitFor = (re, ms = 120_000) => new Promise((resolve, reject) => {
    if (re.test(out)) return resolve();
    const t = setTimeout(() => reject(new Error(`timed out waiting for ${re}:\n${out.slice(-2000)}`)), ms);
    waiters.push({ re, resolve: () => (clearTimeout(t), resolve()) });
  });
  return { child, waitFor, output: () => out, dataDir };
}

/** A deterministic pseudo-random delta per agent, small values (what a local step moves). */
function delta(seed) {
  const d = new Float32Array(N_PARAMS);
  let s = (seed * 2654435761) >>> 0;
  for (let i = 0; i < N_PARAMS; i++) {
    s = (s * 1664525 + 1013904223) >>> 0;
    d[i] = (s / 4294967296 - 0.5) * 1e-3;
  }
  return d;
}

/**
 * One scripted agent: join, follow the task stream, answer train tasks with a download and an upload, evaluate tasks
 * with fixed metrics. `gates` holds the fleet at each step (task received, model fetched) so every phase's memory is
 * measured on its own.
 */
async function scriptedAgent(address, i, gates, events) {
  const conn = new GrpcConnection(address);
  const reply = await conn.join({ name: `bench-agent-${String(i).padStart(3, '0')}`, agentId: '', joinToken: '', backend: 'bench', agentVersion: '0.1.0', numExamples: 600, labels: {}, dataProfileJson: '' });
  const s = { agentId: reply.agentId, sessionToken: reply.sessionToken };
  const stream = conn.tasks(s.agentId, s.sessionToken);
  const done = (async () => {
    for await (const task of stream) {
      if (task.kind !== 'train' && task.kind !== 'evaluate') continue;
      const base = { ...s, taskId: task.taskId, runId: task.runId, round: task.round, modelVersion: task.modelVersion };
      if (task.kind === 'evaluate') {
        await conn.submit({ ...base, kind: 'evaluate', numExamples: 0, tensors: [], totalBytes: 0, encoding: '', metrics: { eval_loss: 1, eval_accuracy: 0.5, eval_examples: 60 } }, new Uint8Array(0));
        continue;
      }
      events.tasked();
      await gates.fetch;
      const { header } = await gates.downloads(() => conn.fetchModel({ ...s, runId: task.runId, modelVersion: task.modelVersion }));
      let payload = encodeUpdate(delta(i + 1), { codec: 'float32', topkFraction: 0.1 });
      events.fetched();
      await gates.upload;
      const r = await gates.uploads(() => conn.submit({ ...base, kind: 'train', numExamples: 600, tensors: header.tensors, totalBytes: payload.byteLength, encoding: ENCODING_OF.float32, metrics: { train_loss: 1 } }, payload));
      payload = undefined;
      events.submitted(i, r);
    }
  })().catch((err) => {
    if (!/cancel/i.test(String(err?.message))) process.stderr.write(`agent ${i}: ${err.message}\n`);
  });
  return { stop: () => { stream.cancel(); conn.close(); }, done };
}

/** Runs at most `k` of the given functions at once (k = Infinity: all). */
function limiter(k) {
  let running = 0;
  const queue = [];
  const next = () => {
    if (running >= k || queue.length === 0) return;
    running++;
    const { fn, resolve, reject } = queue.shift();
    fn().then(resolve, reject).finally(() => {
      running--;
      next();
    });
  };
  return (fn) => new Promise((resolve, reject) => {
    queue.push({ fn, resolve, reject });
    next();
  });
}

/** Complete records in a spool segment (packages/coordinator/src/engine/spool-segment.ts: a 24-byte header, key, payload). */
function spooledRecords(file) {
  let fd;
  try {
    fd = openSync(file, 'r');
  } catch {
    return 0; // not created yet
  }
  try {
    const size = fstatSync(fd).size, h = Buffer.alloc(24);
    let at = 0, k = 0;
    while (at + 24 <= size && readSync(fd, h, 0, 24, at) === 24) {
      at += 24 + h.readUInt32LE(4) + Number(h.readBigUInt64LE(8));
      if (at <= size) k++;
    }
    return k;
  } finally {
    closeSync(fd);
  }
}

/** Resolves true once `n` updates sit in the run's round-1 spool segment, or false when `fallback` resolves first. */
async function spoolFull(dataDir, runId, n, fallback) {
  if (!dataDir) return fallback.then(() => false);
  let done = false;
  void fallback.then(() => (done = true));
  const dir = path.join(dataDir, 'updates', runId.replace(/[^A-Za-z0-9._-]/g, '_'), '1');
  while (!done) {
    try {
      if (spooledRecords(path.join(dir, 'updates.spool')) >= n) return true;
    } catch { /* being removed */ }
    await new Promise((r) => setTimeout(r, 10));
  }
  return false;
}

/** A promise resolved after `n` calls of the returned function. */
function counter(n) {
  let k = 0, resolve;
  const all = new Promise((r) => (resolve = r));
  return { all, hit: () => ++k === n && resolve() };
}

/** One measurement on a fresh coordinator, stopped (and its data directory removed) however the measurement ends. */
async function measure(N) {
  const coord = startCoordinator();
  try {
    return await measureOn(coord, N);
  } finally {
    if (coord.child.exitCode === null && coord.child.signalCode === null) {
      coord.child.kill('SIGTERM');
      await new Promise((r) => coord.child.once('exit', r));
    }
    if (coord.dataDir) rmSync(coord.dataDir, { recursive: true, force: true });
  }
}

async function measureOn(coord, N) {
  await coord.waitFor(/coordinator ready on/);
  const address = /ready on ([\d.]+:\d+)/.exec(coord.output())[1];
  const pid = coord.child.pid;
  const samples = [];
  const t0 = performance.now();
  let phase = 'join';
  const sampler = setInterval(() => {
    try {
      samples.push({ t: Math.round(performance.now() - t0), phase, rss: procStatus(pid).rss });
    } catch { /* process gone */ }
  }, 20);
  const submitted = [];
  const tasked = counter(N), fetched = counter(N), uploaded = counter(N);
  let openFetch, openUpload;
  const gates = {
    fetch: new Promise((r) => (openFetch = r)), upload: new Promise((r) => (openUpload = r)),
    downloads: limiter(DOWNLOADS), uploads: limiter(UPLOADS),
  };
  const events = {
    tasked: tasked.hit, fetched: fetched.hit,
    submitted: (k, reply) => {
      submitted.push({ agent: k, accepted: reply.accepted, reason: reply.reason, t: Math.round(performance.now() - t0) });
      uploaded.hit();
    },
  };
  const agents = [];
  for (let i = 0; i < N; i++) agents.push(await scriptedAgent(address, i, gates, events));
  await new Promise((r) => setTimeout(r, 1500)); // let the joins settle
  const phases = [];
  /** Ends the current phase: its kernel peak (VmHWM since the last reset) and the RSS it started and ended at. */
  let phaseStart = procStatus(pid).rss;
  let phaseT = performance.now();
  const endPhase = () => {
    const st = procStatus(pid);
    phases.push({ phase, startRssMB: r2(phaseStart / MB), peakMB: r2(st.hwm / MB), endRssMB: r2(st.rss / MB), growthModels: r2((st.hwm - phaseStart) / MODEL_BYTES), seconds: r2((performance.now() - phaseT) / 1000) });
    resetPeak(pid);
    phaseStart = procStatus(pid).rss;
    phaseT = performance.now();
  };
  const baseline = phaseStart;
  resetPeak(pid);
  const admin = new AdminClient(address);
  phase = 'start';
  const run = await admin.startRun({
    name: `rss-median-${N}`, model: 'mnist-cnn', strategy: { name: 'median' }, rounds: 1,
    agentsPerRound: { fraction: 1, min: N }, epochs: 1, centralEvaluation: false, roundDeadlineSeconds: 600,
  });
  await tasked.all;
  await new Promise((r) => setTimeout(r, 300));
  endPhase();
  phase = 'download';
  openFetch();
  await fetched.all;
  endPhase();
  phase = 'upload';
  openUpload();
  // Uploads are over when all N are written to the durable spool (DATA_DIR/updates/RUN/1/updates.spool, synced
  // before the agent's reply): the round closes and aggregates right then. The agents' replies cannot mark it: the
  // last one waits for the aggregation, which holds the coordinator's event loop (see the README).
  const spooled = await spoolFull(coord.dataDir, run.id, N, uploaded.all);
  const tSpooled = performance.now();
  endPhase();
  phase = 'aggregate';
  await uploaded.all;
  const lastReplyAfterSpoolSeconds = r2((performance.now() - tSpooled) / 1000);
  // The round record is written after the median and the new version; poll until it is there.
  let view;
  for (;;) {
    view = await admin.getRun(run.id);
    if ((view.rounds?.length ?? 0) >= 1 || ['completed', 'failed', 'stopped'].includes(view.status)) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  endPhase();
  phase = 'final-eval';
  for (let k = 0; k < 600 && !['completed', 'failed', 'stopped'].includes(view.status); k++) {
    await new Promise((r) => setTimeout(r, 100));
    view = await admin.getRun(run.id);
  }
  endPhase();
  clearInterval(sampler);
  const round = view.rounds?.[0];
  for (const a of agents) a.stop();
  admin.close();
  const rejected = submitted.filter((s) => !s.accepted);
  if (rejected.length) process.stderr.write(`  N=${N}: ${rejected.length} uploads rejected: ${rejected.slice(0, 3).map((s) => s.reason).join(', ')}\n`);
  const by = Object.fromEntries(phases.map((p) => [p.phase, p]));
  const peak = Math.max(...phases.map((p) => p.peakMB));
  const res = {
    agents: N,
    status: view.status,
    roundStatus: round?.status,
    acceptedUpdates: submitted.filter((s) => s.accepted).length,
    aggregationMs: round?.aggregationMs,
    baselineRssMB: r2(baseline / MB),
    peakMB: peak,
    peakModels: r2((peak * MB - baseline) / MODEL_BYTES),
    aggregateGrowthModels: by.aggregate.growthModels,
    uploadEndDetectedBy: spooled ? 'spool files' : 'agent replies (no spool dir: --store memory)',
    lastReplyAfterSpoolSeconds,
    phases,
    samples,
  };
  process.stderr.write(`  N=${N}: baseline ${res.baselineRssMB} MB; ${phases.map((p) => `${p.phase} ${p.startRssMB}->${p.peakMB} MB (+${p.growthModels} models)`).join('; ')}; round ${res.roundStatus}, ${res.acceptedUpdates} accepted, aggregation ${r2(res.aggregationMs ?? NaN)} ms\n`);
  return res;
}

const results = [];
for (const N of AGENTS) results.push(await measure(N));
const chunkBufferMB = (n) => r2((n * DEFAULT_CHUNK * 4) / MB);
console.log(`\nPeak RSS of a real \`fedge serve\` (VmHWM per phase) over one sync round of \`median\`, updates of ${N_PARAMS.toLocaleString('en-US')} params (${(MODEL_BYTES / MB).toFixed(2)} MB), scripted gRPC agents; store ${STORE}, downloads at once ${DOWNLOADS}, uploads at once ${UPLOADS}`);
console.log('| agents | baseline RSS MB | run start peak MB | download peak MB | upload peak MB | aggregation: RSS at start -> peak MB (growth, models) | overall peak MB (models over baseline) | chunk buffers MB | aggregation ms | last reply waited s |');
console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |');
for (const r of results) {
  const p = Object.fromEntries(r.phases.map((x) => [x.phase, x]));
  console.log(`| ${r.agents} | ${r.baselineRssMB} | ${p.start.peakMB} | ${p.download.peakMB} | ${p.upload.peakMB} | ${p.aggregate.startRssMB} -> ${p.aggregate.peakMB} (+${p.aggregate.growthModels}) | ${r.peakMB} (${r.peakModels}) | ${chunkBufferMB(r.agents)} | ${Math.round(r.aggregationMs ?? NaN)} | ${r.lastReplyAfterSpoolSeconds} |`);
}
mkdirSync(path.dirname(OUT), { recursive: true });
writeFileSync(OUT, JSON.stringify({
  bench: 'coordinator-rss', date: new Date().toISOString(), node: process.version, cpus: os.cpus().length, memGB: r2(os.totalmem() / 1e9),
  numParams: N_PARAMS, modelMB: MODEL_BYTES / MB, chunkParams: DEFAULT_CHUNK,
  store: STORE, downloadConcurrency: String(DOWNLOADS), uploadConcurrency: String(UPLOADS),
  method: 'fedge serve (--data-dir TMP, or --in-memory with --store memory) --no-mqtt; N scripted gRPC agents (edge-agent GrpcConnection) in the bench process; VmHWM per phase after clear_refs 5; VmRSS sampled every 20 ms',
  results: results.map((r) => ({ ...r, chunkBufferMB: chunkBufferMB(r.agents) })),
}, null, 1));
process.stderr.write(`wrote ${path.relative(ROOT, OUT)}\n`);
