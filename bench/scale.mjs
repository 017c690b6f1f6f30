#!/usr/bin/env node
/**
 * Scale bench (issue 16, "Many agents, measured"): what one coordinator holds. Per transport (MQTT through the
 * embedded broker, gRPC) and fleet size N (100 / 1,000 / 10,000 by default):
 *   - coordinator RSS per idle connected agent: (VmRSS with N agents joined and idle - VmRSS before any) / N
 *   - coordinator CPU with the N agents joined and idle (% of one core over 10 s): what connected-not-participating
 *     agents cost for as long as a run lasts, so part of the CPU per participant below
 *   - round wall time and coordinator CPU per participant over R sync rounds of P = min(N, --participants) agents
 * A real `fedge serve` (SQLite data dir, or --store memory for --in-memory) and ONE `fedge-agent --simulate N --echo`
 * process: N virtual agents, each its own socket, session and name, downloading and verifying every model and
 * uploading a full float32 update (a fixed delta). The model is a 784-128-10 MLP (101,770 params, 407 KB).
 * A case stops at --case-timeout seconds; the table says how far it got and why it stopped.
 *
 *   npx tsc -b && node bench/scale.mjs                                   # 100, 1000, 10000 x mqtt, grpc
 *   node bench/scale.mjs --agents 100,1000 --transports mqtt --rounds 2 --out /tmp/s.json
 *
 * Writes bench/results/scale.json: per case the RSS before/idle, per-agent RSS, join time, round seconds, CPU seconds
 * of the coordinator per round and per participant, the fleet process's RSS, and the error if one stopped it.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const FEDGE = path.join(ROOT, 'packages/coordinator/dist/cli/main.js');
const AGENT = path.join(ROOT, 'packages/edge-agent/dist/cli/main.js');
const { completedOf } = await import(pathToFileURL(path.join(ROOT, 'packages/coordinator/dist/store/round-summary.js')).href);

const args = Object.fromEntries(process.argv.slice(2).reduce((acc, a, i, all) => (a.startsWith('--') ? [...acc, [a.slice(2), all[i + 1]]] : acc), []));
const AGENTS = String(args.agents ?? '100,1000,10000').split(',').map(Number);
const TRANSPORTS = String(args.transports ?? 'mqtt,grpc').split(',');
const ROUNDS = Number(args.rounds ?? 3);
const PARTICIPANTS = Number(args.participants ?? 1000);
const HIDDEN = Number(args.hidden ?? 128);
const STORE = args.store ?? 'disk';
const CASE_TIMEOUT_S = Number(args['case-timeout'] ?? 600);
const START_RATE = Number(args['start-rate'] ?? 500);
const OUT = path.resolve(args.out ?? path.join(ROOT, 'bench/results/scale.json'));
const MiB = 1024 * 1024;
const r1 = (x) => Math.round(x * 10) / 10;
const r3 = (x) => Math.round(x * 1000) / 1000;
const TICK = 100; // clock ticks per second of /proc/PID/stat (Linux USER_HZ)

const rssOf = (pid) => Number(/^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN) * 1024;
function cpuOf(pid) {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12])) / TICK;
}

function start(script, argv, env = {}) {
  const child = spawn(process.execPath, [script, ...argv], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, FEDGE_LOG_LEVEL: 'warn', ...env } });
  let out = '';
  const on = (b) => (out = (out + b.toString()).slice(-50_000_000));
  child.stdout.on('data', on);
  child.stderr.on('data', on);
  const exited = new Promise((r) => child.on('exit', r));
  return { child, out: () => out, exited };
}

function cli(argv, timeoutMs) {
  return new Promise((resolve) => {
    const p = start(FEDGE, argv);
    const t = setTimeout(() => p.child.kill('SIGKILL'), timeoutMs);
    void p.exited.then((code) => (clearTimeout(t), resolve({ code, out: p.out() })));
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function until(what, fn, deadline, every = 500) {
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await sleep(every);
  }
}

/** The model every case federates: a 784-128-10 MLP saved as a tfjs model dir (built once with @fedge/ml). */
async function makeModel(dir) {
  const ml = await import(pathToFileURL(path.join(ROOT, 'packages/ml/dist/index.js')).href);
  const blob = ml.modelToBlob(ml.createMlp({ inputWidth: 784, hidden: [HIDDEN], outputs: 10, activation: 'softmax', seed: 1 }));
  return { file: await ml.saveModelDir(blob, dir), params: blob.weights.length };
}

async function onlineAgents(metricsUrl) {
  const text = await fetch(metricsUrl).then((r) => r.text()).catch(() => '');
  return Number(/^fedge_agents\{status="online"\} (\d+)/m.exec(text)?.[1] ?? 0);
}

async function runCase(transport, n, model, tmp) {
  const deadline = Date.now() + CASE_TIMEOUT_S * 1000;
  const dataDir = path.join(tmp, `${transport}-${n}`);
  const participants = Math.min(n, PARTICIPANTS);
  const row = { transport, agents: n, participants, rounds: ROUNDS, store: STORE, roundsCompleted: 0 };
  const coord = start(FEDGE, ['serve', '--listen', '127.0.0.1:0', ...(STORE === 'disk' ? ['--data-dir', dataDir] : ['--in-memory']),
    ...(transport === 'mqtt' ? ['--mqtt-listen', '127.0.0.1:0'] : ['--no-mqtt']), '--metrics', '127.0.0.1:0', '--format', 'json',
    // One source address for the whole fleet: the per-address join limits are for real networks.
    '--max-token-agents', String(n + 100), '--join-rate', String(Math.max(1000, START_RATE * 2)), '--join-burst', String(Math.max(1000, START_RATE * 2))]);
  let fleet;
  try {
    const ready = await until('coordinator ready', () => coord.out().split('\n').map((l) => { try { return JSON.parse(l); } catch { return undefined; } }).find((j) => j?.event === 'ready'), Date.now() + 60_000, 100);
    const url = transport === 'mqtt' ? ready.mqtt : ready.grpc;
    const metricsUrl = ready.metrics;
    if (!url) throw new Error(`no ${transport} address in the ready line: ${JSON.stringify(ready)}`);
    const pid = coord.child.pid;
    await sleep(1000);
    row.rssBeforeMiB = r1(rssOf(pid) / MiB);
    const t0 = Date.now();
    fleet = start(AGENT, ['--coordinator', url, '--simulate', String(n), '--echo', '--name', 'sim', '--simulate-rate', String(START_RATE)]);
    await until(`${n} agents online`, async () => {
      if (fleet.child.exitCode !== null) throw new Error(`fleet exited: ${fleet.out().slice(-1500)}`);
      return (row.online = await onlineAgents(metricsUrl)) >= n;
    }, deadline, 1000);
    row.joinSeconds = r1((Date.now() - t0) / 1000);
    await sleep(3000); // settle: join bursts' garbage collected, nothing in flight
    row.rssIdleMiB = r1(rssOf(pid) / MiB);
    row.rssPerAgentKiB = r1(((row.rssIdleMiB - row.rssBeforeMiB) * 1024) / n);
    row.fleetRssMiB = r1(rssOf(fleet.child.pid) / MiB);
    const idle0 = cpuOf(pid), fleetIdle0 = cpuOf(fleet.child.pid);
    await sleep(10_000);
    row.idleCpuPct = r1((cpuOf(pid) - idle0) * 10);
    row.fleetIdleCpuPct = r1((cpuOf(fleet.child.pid) - fleetIdle0) * 10);
    const cpu0 = cpuOf(pid), fleetCpu0 = cpuOf(fleet.child.pid), w0 = Date.now();
    const left = Math.max(10_000, deadline - Date.now());
    const res = await cli(['run', 'start', '--coordinator', ready.address, '--model', model.file, '--rounds', String(ROUNDS), '--min-agents', String(participants),
      '--fraction', String(participants / n), '--deadline', String(Math.round(left / 1000)), '--watch', '--format', 'json'], left);
    row.runSeconds = r1((Date.now() - w0) / 1000);
    row.cpuSeconds = r1(cpuOf(pid) - cpu0);
    row.fleetCpuSeconds = r1(cpuOf(fleet.child.pid) - fleetCpu0);
    row.peakRssMiB = r1(Number(/^VmHWM:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN) / 1024);
    let run;
    try {
      run = JSON.parse(res.out.trim().split('\n').at(-1));
    } catch {
      throw new Error(`run did not finish within the case timeout (${CASE_TIMEOUT_S} s): ${res.out.slice(-600)}`);
    }
    const done = run.roundsDetail.filter((r) => r.status === 'completed');
    row.roundsCompleted = done.length;
    row.roundSeconds = run.metrics.filter((r) => r.status === 'completed').map((r) => r1(r.seconds));
    row.participantsPerRound = done.map((r) => completedOf(r).completed);
    row.cpuMsPerParticipant = r1((row.cpuSeconds * 1000) / Math.max(1, done.length * participants));
    if (run.status !== 'completed') row.error = `run ${run.status}: ${run.statusMessage ?? ''}`;
    // `fedge agent list` and `fedge run show` on what this coordinator now holds: both must stay usable.
    let t = Date.now();
    const list = await cli(['agent', 'list', '--coordinator', ready.address, '--format', 'json', '--all'], 120_000);
    row.agentListSeconds = r3((Date.now() - t) / 1000);
    row.agentListBytes = list.out.length;
    t = Date.now();
    const show = await cli(['run', 'show', run.id, '--coordinator', ready.address, '--format', 'json'], 120_000);
    row.runShowSeconds = r3((Date.now() - t) / 1000);
    row.runShowBytes = show.out.length;
  } catch (err) {
    row.error = err.message.slice(0, 600);
  } finally {
    fleet?.child.kill('SIGTERM');
    coord.child.kill('SIGTERM');
    await Promise.race([Promise.all([fleet?.exited, coord.exited]), sleep(10_000)]);
    fleet?.child.kill('SIGKILL');
    coord.child.kill('SIGKILL');
    rmSync(dataDir, { recursive: true, force: true });
  }
  return row;
}

const tmp = mkdtempSync(path.join(os.tmpdir(), 'fedge-scale-'));
const model = await makeModel(path.join(tmp, 'model'));
const rows = [];
try {
  for (const transport of TRANSPORTS) {
    for (const n of AGENTS) {
      process.stderr.write(`${transport} ${n} agents...\n`);
      const row = await runCase(transport, n, model, tmp);
      rows.push(row);
      process.stderr.write(`${JSON.stringify(row)}\n`);
      // A transport that failed at N will not do better at 10 N: say so instead of burning the time.
      if (row.error && row.roundsCompleted === 0) break;
    }
  }
} finally {
  rmSync(tmp, { recursive: true, force: true });
}

const cols = ['transport', 'agents', 'participants', 'joinSeconds', 'rssPerAgentKiB', 'rssIdleMiB', 'idleCpuPct', 'peakRssMiB', 'roundSeconds', 'cpuMsPerParticipant', 'agentListSeconds', 'runShowSeconds', 'error'];
console.log(cols.join('\t'));
for (const r of rows) console.log(cols.map((c) => (Array.isArray(r[c]) ? r[c].join('/') : r[c] ?? '')).join('\t'));
mkdirSync(path.dirname(OUT), { recursive: true });
writeFileSync(OUT, JSON.stringify({ date: new Date().toISOString(), host: { cpus: os.cpus().length, model: os.cpus()[0]?.model, memGiB: r1(os.totalmem() / 1024 ** 3), load: os.loadavg() }, modelParams: model.params, rounds: ROUNDS, store: STORE, rows }, null, 2) + '\n');
process.stderr.write(`wrote ${path.relative(ROOT, OUT)}\n`);
