#!/usr/bin/env node
/**
 * Model retention bench (issue 16): peak RSS of `fedge serve --in-memory` over a long run, with retention off
 * (--keep-versions all: every version's weights stay in the memory store, as before retention) and on
 * (--keep-versions K). Two echo agents (`fedge-agent --simulate 2 --echo`: real gRPC agents that download each
 * version and send a fixed delta) drive R sync rounds of mnist-cnn (1,663,370 params, 6.65 MB of float32 per
 * version), no central evaluation. Memory from /proc/PID/status of the coordinator: VmHWM (the kernel's peak) at
 * the end, VmRSS sampled every 100 ms.
 *
 *   npx tsc -b && node bench/retention-rss.mjs                 # R = 40, K = 2 (~2 min)
 *   node bench/retention-rss.mjs --rounds 20 --keep 5 --out /tmp/r.json
 *   node bench/retention-rss.mjs --rounds 10 --units 30000 --out bench/results/retention-rss-95mb.json
 *       # instead of mnist-cnn: a 784 x UNITS x 10 dense model (UNITS 30000: 95 MB of float32, the issue's ~92 MiB case)
 *
 * Writes bench/results/retention-rss.json.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const FEDGE = path.join(ROOT, 'packages/coordinator/dist/cli/main.js');
const AGENT = path.join(ROOT, 'packages/edge-agent/dist/cli/main.js');
const args = Object.fromEntries(process.argv.slice(2).reduce((acc, a, i, all) => (a.startsWith('--') ? [...acc, [a.slice(2), all[i + 1]]] : acc), []));
const ROUNDS = Number(args.rounds ?? 40);
const KEEP = String(args.keep ?? 2);
const OUT = path.resolve(args.out ?? path.join(ROOT, 'bench/results/retention-rss.json'));
const UNITS = args.units ? Number(args.units) : undefined;
const MODEL_BYTES = UNITS ? (784 * UNITS + UNITS + UNITS * 10 + 10) * 4 : 1_663_370 * 4;

/** --units: a saved 784 x UNITS x 10 dense model (zeros: echo agents do not train it), as the run config's model.path. */
async function denseModel() {
  const { initBackend, modelToBlob, saveModelDir, tf } = await import('@fedge/ml');
  await initBackend('cpu');
  const m = tf.sequential({ layers: [tf.layers.dense({ inputShape: [784], units: UNITS, kernelInitializer: 'zeros' }), tf.layers.dense({ units: 10, kernelInitializer: 'zeros' })] });
  const blob = modelToBlob(m);
  m.dispose();
  return { path: await saveModelDir(blob, mkdtempSync(path.join(os.tmpdir(), 'fedge-retention-model-'))) };
}
const MODEL = UNITS ? await denseModel() : 'mnist-cnn';
const MiB = 2 ** 20;

const status = (pid) => Object.fromEntries(readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').filter((l) => l.startsWith('Vm')).map((l) => [l.split(':')[0], Number(/(\d+) kB/.exec(l)?.[1] ?? 0) * 1024]));

function start(script, argv, env = {}) {
  const p = spawn(process.execPath, [script, ...argv], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  let out = '';
  p.stdout.on('data', (b) => (out += b));
  p.stderr.on('data', (b) => (out += b));
  const waitFor = (re, ms = 60_000) => new Promise((resolve, reject) => {
    const t0 = Date.now();
    const tick = () => { const m = re.exec(out); if (m) return resolve(m); if (Date.now() - t0 > ms || p.exitCode !== null) return reject(new Error(`timeout waiting for ${re}:\n${out.slice(-2000)}`)); setTimeout(tick, 50); };
    tick();
  });
  return { p, waitFor, output: () => out };
}

function run(script, argv) {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [script, ...argv], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (b) => (out += b));
    p.stderr.on('data', (b) => (out += b));
    p.on('exit', (code) => resolve({ code, out }));
  });
}

async function once(keep) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'fedge-retention-bench-'));
  const coord = start(FEDGE, ['serve', '--in-memory', '--no-mqtt', '--listen', '127.0.0.1:0', '--data-dir', dir, '--keep-versions', keep], { FEDGE_LOG_LEVEL: 'info' }); // its 'ready on' line is info (bench:smoke sets warn)
  let agents;
  let sampler;
  // Everything after the spawn is inside the try: a coordinator that never says 'ready on' is stopped too.
  try {
    const address = (await coord.waitFor(/ready on ([\d.]+:\d+)/))[1];
    agents = start(AGENT, ['--coordinator', `grpc://${address}`, '--simulate', '2', '--echo', '--name', 'ret']);
    const samples = [];
    sampler = setInterval(() => { try { samples.push({ t: Date.now(), rss: status(coord.p.pid).VmRSS }); } catch { /* exited */ } }, 100);
    const cfg = path.join(dir, 'run.json');
    writeFileSync(cfg, JSON.stringify({ model: MODEL, rounds: ROUNDS, epochs: 1, centralEvaluation: false, agentsPerRound: { fraction: 1, min: 2 } }));
    const baseline = status(coord.p.pid).VmRSS;
    const t0 = Date.now();
    const r = await run(FEDGE, ['run', 'start', '--coordinator', address, '--config', cfg, '--watch', '--format', 'json']);
    if (r.code !== 0) throw new Error(`run failed:\n${r.out.slice(-2000)}`);
    const seconds = (Date.now() - t0) / 1000;
    const end = status(coord.p.pid);
    const gc = await run(FEDGE, ['model', 'gc', '--dry-run', '--coordinator', address, '--format', 'json']);
    const kept = JSON.parse(gc.out.trim().split('\n').at(-1))[0].kept.length;
    return { keep, rounds: ROUNDS, seconds, baselineMiB: baseline / MiB, peakMiB: end.VmHWM / MiB, endRssMiB: end.VmRSS / MiB, keptVersions: kept, samples: samples.map((s) => ({ t: s.t - t0, rssMiB: Math.round(s.rss / MiB) })) };
  } finally {
    clearInterval(sampler);
    agents?.p.kill('SIGTERM');
    coord.p.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 500));
  }
}

const off = await once('all');
const on = await once(KEEP);
const rows = [off, on].map((x) => ({ keepVersions: x.keep, rounds: x.rounds, keptVersions: x.keptVersions, baselineMiB: x.baselineMiB.toFixed(0), peakMiB: x.peakMiB.toFixed(0), endRssMiB: x.endRssMiB.toFixed(0), modelSizesOverBaseline: ((x.peakMiB - x.baselineMiB) * MiB / MODEL_BYTES).toFixed(1), seconds: x.seconds.toFixed(1) }));
console.table(rows);
const ratio = on.peakMiB / off.peakMiB;
console.log(`peak RSS with --keep-versions ${KEEP} / without retention: ${ratio.toFixed(2)} (${on.peakMiB.toFixed(0)} / ${off.peakMiB.toFixed(0)} MiB) over ${ROUNDS} rounds of a ${(MODEL_BYTES / 1e6).toFixed(2)} MB model`);
mkdirSync(path.dirname(OUT), { recursive: true });
writeFileSync(OUT, JSON.stringify({ date: new Date().toISOString(), host: { cpus: os.cpus().length, load: os.loadavg() }, model: UNITS ? `dense 784x${UNITS}x10` : 'mnist-cnn', modelBytes: MODEL_BYTES, rows, ratio, runs: [off, on] }, null, 1));
console.log(`wrote ${path.relative(process.cwd(), OUT)}`);
