// fedge vs Flower: federated round time on the same work, real processes over gRPC on loopback.
// Per model size: a coordinator (`fedge serve --in-memory`) and N `fedge-agent` processes, then a Flower gRPC server
// (`flwr.server.start_server`, FedAvg) and N Flower NumPy clients (bench/flower/flower_bench.py). Each client gets
// the global model, does (nearly) no work, uploads a full-size update weighted by 9 examples, the server averages.
// Prints a table and writes bench/results/flower.json. Needs bench/flower/.venv: `bash bench/flower/setup.sh`.
// Usage: node bench/flower.mjs [--models mnist-cnn,dense-24m] [--rounds 10] [--clients 10] [--only fedge|flower] [--fedge-agents echo|real] [--out FILE]
//        node bench/flower.mjs --from bench/results/flower.json   (re-summarize an earlier run's raw rounds)
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.join(here, '..');
const fedge = path.join(root, 'packages', 'coordinator', 'dist', 'cli', 'main.js');
const agentCli = path.join(root, 'packages', 'edge-agent', 'dist', 'cli', 'main.js');
const venvPython = path.join(here, 'flower', '.venv', 'bin', 'python');
const flowerScript = path.join(here, 'flower', 'flower_bench.py');
const arg = (name, def) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : def;
};
const models = arg('models', 'mnist-cnn,dense-24m').split(',');
const rounds = Number(arg('rounds', '10'));
const clients = Number(arg('clients', '10'));
const only = arg('only', 'fedge,flower').split(',');
// echo: agents that only download, check the digest and upload (what the Flower clients do); real: fedge-agent
// processes that really evaluate and train (tfjs wasm) on 9 digits each.
const fedgeAgents = arg('fedge-agents', 'echo');
if (!['echo', 'real'].includes(fedgeAgents)) throw new Error(`--fedge-agents: use echo or real, got ${fedgeAgents}`);
const echoAgent = path.join(here, 'flower', 'echo-agent.mjs');
const out = arg('out', path.join(here, 'results', 'flower.json'));
const EXAMPLES = 9; // 9,000 bundled training digits / 1,000 iid partitions

if (only.includes('flower') && !existsSync(venvPython)) {
  process.stderr.write(`Flower is not installed: create its virtualenv first with\n  bash bench/flower/setup.sh\n(pip-installs a pinned flwr and numpy into bench/flower/.venv)\n`);
  process.exit(2);
}

const ml = await import(path.join(root, 'packages', 'ml', 'dist', 'index.js'));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const children = new Set();
const killAll = () => { for (const c of children) try { c.kill('SIGKILL'); } catch {} };
process.on('exit', killAll);
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => { killAll(); process.exit(130); });

function start(cmd, args, logFile, opts = {}) {
  const fd = openSync(logFile, 'a');
  const child = spawn(cmd, args, { stdio: ['ignore', opts.stdout ?? fd, fd], env: { ...process.env, ...opts.env } });
  children.add(child);
  child.exited = new Promise((r) => child.once('exit', (code, sig) => { children.delete(child); r({ code, sig }); }));
  return child;
}
async function stop(child) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  const t = setTimeout(() => child.kill('SIGKILL'), 5000);
  await child.exited;
  clearTimeout(t);
}
function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
    s.on('error', reject);
  });
}
async function waitForPort(port, child, timeoutMs = 60_000) {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (child.exitCode !== null) throw new Error(`server exited early (${child.exitCode})`);
    const ok = await new Promise((r) => { const s = net.connect(port, '127.0.0.1', () => { s.destroy(); r(true); }); s.on('error', () => r(false)); });
    if (ok) return;
    await sleep(100);
  }
  throw new Error(`nothing listening on 127.0.0.1:${port} after ${timeoutMs} ms`);
}
function procStatus(pid, key) {
  try {
    const m = readFileSync(`/proc/${pid}/status`, 'utf8').match(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm'));
    return m ? Number(m[1]) : undefined;
  } catch { return undefined; }
}

// ------------------------------------------------------------------ models: the same tensor shapes on both sides

const modelDir = path.join(here, 'flower', '.models');
async function prepareModel(name) {
  if (name === 'mnist-cnn') {
    const m = ml.createBuiltinModel('mnist-cnn', 0);
    const specs = ml.weightSpecs(m);
    m.dispose();
    return { name, fedgeModel: 'mnist-cnn', shapes: specs.map((s) => s.shape) };
  }
  const dense = name.match(/^dense-(\d+)m$/);
  if (!dense) throw new Error(`unknown model ${name}: use mnist-cnn or dense-24m`);
  // A Dense stack on 784 inputs and 10 outputs: 784-4096-4096-1024-10 is 24,202,250 params (92.3 MiB).
  const dir = path.join(modelDir, name);
  const hidden = { 24: [4096, 4096, 1024] }[Number(dense[1])];
  if (!hidden) throw new Error(`only dense-24m is defined`);
  if (!existsSync(path.join(dir, 'model.json'))) {
    const tf = ml.tf;
    const layers = hidden.map((units, i) => tf.layers.dense({ name: `fc${i + 1}`, units, activation: 'relu', ...(i === 0 ? { inputShape: [784] } : {}), kernelInitializer: tf.initializers.glorotUniform({ seed: i + 1 }) }));
    layers.push(tf.layers.dense({ name: 'out', units: 10, activation: 'softmax', kernelInitializer: tf.initializers.glorotUniform({ seed: 99 }) }));
    const m = tf.sequential({ name: 'dense_big', layers });
    await ml.saveModelDir(ml.modelToBlob(m), dir);
    m.dispose();
  }
  const blob = await ml.loadModelDir(dir);
  return { name, fedgeModel: path.join(dir, 'model.json'), shapes: blob.tensors.map((t) => t.shape) };
}
const paramsOf = (shapes) => shapes.reduce((s, sh) => s + sh.reduce((a, b) => a * b, 1), 0);

// ------------------------------------------------------------------ fedge

async function runFedge(model, logDir) {
  const port = await freePort();
  const addr = `127.0.0.1:${port}`;
  const env = { FEDGE_LOG_LEVEL: 'warn' };
  const server = start(process.execPath, [fedge, 'serve', '--listen', addr, '--in-memory', '--data-dir', path.join(logDir, 'fedge-data')], path.join(logDir, 'fedge-serve.log'), { env });
  const agents = [];
  try {
    await waitForPort(port, server);
    for (let i = 0; i < clients; i++) {
      const argv = fedgeAgents === 'echo'
        ? [echoAgent, addr, `bench-${i}`]
        : [agentCli, '--coordinator', `grpc://${addr}`, '--data', 'mnist', '--partition', 'iid', '--num-partitions', String(Math.round(9000 / EXAMPLES)),
          '--partition-id', String(i), '--name', `bench-${i}`];
      agents.push(start(process.execPath, argv, path.join(logDir, `fedge-agent-${i}.log`), { env }));
    }
    // Start the run only once every agent has joined, so round 1 does not include agent start-up.
    const end = Date.now() + 120_000;
    for (;;) {
      const list = JSON.parse(execFileSync(process.execPath, [fedge, 'agent', 'list', '--coordinator', addr, '--format', 'json'], { encoding: 'utf8' }));
      if (list.length >= clients) break;
      if (Date.now() > end) throw new Error(`only ${list.length} of ${clients} agents joined`);
      await sleep(500);
    }
    const cfg = {
      model: model.fedgeModel === 'mnist-cnn' ? 'mnist-cnn' : { path: model.fedgeModel },
      rounds, agentsPerRound: { fraction: 1, min: clients }, minResults: clients, epochs: 1, batchSize: 32, learningRate: 0.01,
      centralEvaluation: false, // Flower's server evaluates nothing either
    };
    const cfgFile = path.join(logDir, 'run.json');
    writeFileSync(cfgFile, JSON.stringify(cfg));
    const t0 = Date.now();
    const summary = JSON.parse(execFileSync(process.execPath, [fedge, 'run', 'start', '--config', cfgFile, '--coordinator', addr, '--watch', '--format', 'json'], { encoding: 'utf8', maxBuffer: 64 << 20 }));
    const wall = (Date.now() - t0) / 1000;
    const peakKiB = procStatus(server.pid, 'VmHWM');
    const agentPeaks = agents.map((a) => procStatus(a.pid, 'VmHWM') ?? 0);
    const metrics = summary.roundsDetail;
    if (summary.status !== 'completed') throw new Error(`fedge run ended ${summary.status}: ${summary.reason ?? ''}`);
    const rs = metrics.map((m) => ({ round: m.round, status: m.status, reason: m.reason, completed: m.participants?.filter((p) => p.outcome === 'completed').length, start: Date.parse(m.startedAt) / 1000, end: Date.parse(m.endedAt) / 1000, seconds: m.seconds, aggregationMs: m.aggregationMs, participants: m.participants?.length,
      agentSeconds: m.participants?.map((p) => p.seconds), agentMetrics: m.participants?.map((p) => p.metrics), bytesSent: m.bytesSent, bytesReceived: m.bytesReceived }));
    return { framework: 'fedge', agents: fedgeAgents, rounds: rs, runWallSeconds: wall, serverPeakRssKiB: peakKiB, clientPeakRssKiB: agentPeaks, backends: summary.agentBackends, runId: summary.id };
  } finally {
    await Promise.all(agents.map(stop));
    await stop(server);
  }
}

// ------------------------------------------------------------------ Flower

async function runFlower(model, logDir) {
  const port = await freePort();
  const addr = `127.0.0.1:${port}`;
  const shapes = JSON.stringify(model.shapes);
  const stdoutFile = path.join(logDir, 'flower-server.out');
  const server = start(venvPython, [flowerScript, 'server', '--address', addr, '--shapes', shapes, '--rounds', String(rounds), '--clients', String(clients)],
    path.join(logDir, 'flower-server.log'), { stdout: openSync(stdoutFile, 'w') });
  const cl = [];
  try {
    await waitForPort(port, server, 120_000);
    for (let i = 0; i < clients; i++) {
      cl.push(start(venvPython, [flowerScript, 'client', '--address', addr, '--shapes', shapes, '--examples', String(EXAMPLES)], path.join(logDir, `flower-client-${i}.log`)));
    }
    const t0 = Date.now();
    // Sample the clients' peak RSS while they live (they exit when the server says goodbye).
    const clientPeaks = new Array(clients).fill(0);
    const poll = setInterval(() => cl.forEach((c, i) => { clientPeaks[i] = Math.max(clientPeaks[i], procStatus(c.pid, 'VmHWM') ?? 0); }), 200);
    const { code } = await server.exited;
    clearInterval(poll);
    const wall = (Date.now() - t0) / 1000;
    if (code !== 0) throw new Error(`Flower server exited ${code}; see ${path.join(logDir, 'flower-server.log')}`);
    const r = JSON.parse(readFileSync(stdoutFile, 'utf8').trim().split('\n').at(-1));
    return { framework: 'flower', rounds: r.rounds, runWallSeconds: wall, serverPeakRssKiB: r.serverPeakRssKiB, clientPeakRssKiB: clientPeaks, flwr: r.flwr, numpy: r.numpy, python: r.python };
  } finally {
    await Promise.all(cl.map(stop));
    await stop(server);
  }
}

// ------------------------------------------------------------------ stats and output

const median = (a) => { const s = a.slice().sort((x, y) => x - y); const n = s.length; return n ? (n % 2 ? s[n >> 1] : (s[n / 2 - 1] + s[n / 2]) / 2) : NaN; };
const mean = (a) => a.reduce((s, x) => s + x, 0) / a.length;
function summarize(res) {
  const all = res.rounds.slice().sort((a, b) => a.round - b.round);
  // A fedge round fails when agents drop out (status 'failed', no new model): it is counted, not timed.
  const ok = (r) => !r.status || r.status === 'completed';
  const rs = all.filter(ok);
  const warm = rs.filter((r) => r.round > 1); // round 1 carries first-use costs (JIT, model build, connection set-up) on both sides
  // Cycle: from one round's start to the next one's, so work between rounds (publishing a version) counts too.
  const cycles = all.slice(1).flatMap((r, i) => (ok(r) && ok(all[i]) ? [r.start - all[i].start] : []));
  return {
    rounds: all.length,
    failedRounds: all.length - rs.length,
    round1Seconds: all[0]?.seconds,
    medianRoundSeconds: median(warm.map((r) => r.seconds)),
    meanRoundSeconds: mean(warm.map((r) => r.seconds)),
    medianCycleSeconds: median(cycles),
    meanCycleSeconds: mean(cycles),
    allRoundsWallSeconds: all.at(-1).end - all[0].start,
    serverPeakRssMiB: res.serverPeakRssKiB / 1024,
    clientPeakRssMiBMedian: median(res.clientPeakRssKiB.filter((x) => x > 0)) / 1024,
    // fedge agents really train (tfjs) on their 9 digits: local training seconds per agent, and summed over a
    // round's agents (on 2 cores, about half of that sum is wall time the round spends training).
    ...(warm[0]?.agentMetrics ? {
      agentTrainSecondsMedian: median(warm.flatMap((r) => r.agentMetrics.map((m) => m?.train_seconds ?? 0))),
      agentTrainSecondsSumPerRoundMedian: median(warm.map((r) => r.agentMetrics.reduce((t, m) => t + (m?.train_seconds ?? 0), 0))),
    } : {}),
  };
}

// --from FILE: recompute the summaries, table and ratios from the raw rounds of an earlier run (nothing is run).
const from = arg('from', '');
const prior = from ? JSON.parse(readFileSync(from, 'utf8')) : undefined;
const runDir = mkdtempSync(path.join(os.tmpdir(), 'fedge-bench-flower-'));
const results = [];
for (const name of prior ? prior.results.map((e) => e.model) : models) {
  const model = prior ? prior.results.find((e) => e.model === name) : await prepareModel(name);
  const params = paramsOf(model.shapes);
  process.stderr.write(`${name}: ${params.toLocaleString('en-US')} float32 params (${(params * 4 / 2 ** 20).toFixed(1)} MiB)\n`);
  const entry = { model: name, params, megabytes: (params * 4) / 1e6, shapes: model.shapes, frameworks: {} };
  for (const fw of only) {
    const logDir = path.join(runDir, `${name}-${fw}`);
    mkdirSync(logDir, { recursive: true });
    process.stderr.write(`  ${fw}: ${clients} clients, ${rounds} rounds (logs in ${logDir}) ...\n`);
    try {
      const raw = prior ? prior.results.find((e) => e.model === name).frameworks[fw].raw : fw === 'fedge' ? await runFedge(model, logDir) : await runFlower(model, logDir);
      entry.frameworks[fw] = { ...summarize(raw), raw };
      const s = entry.frameworks[fw];
      process.stderr.write(`    median round ${s.medianRoundSeconds.toFixed(3)} s, cycle ${s.medianCycleSeconds.toFixed(3)} s, server peak ${s.serverPeakRssMiB.toFixed(0)} MiB\n`);
    } catch (err) {
      entry.frameworks[fw] = { error: String(err?.message ?? err) };
      process.stderr.write(`    failed: ${err?.message ?? err}\n`);
    }
  }
  const f = entry.frameworks.fedge, w = entry.frameworks.flower;
  if (f?.medianRoundSeconds && w?.medianRoundSeconds) {
    entry.ratio = { medianRound: f.medianRoundSeconds / w.medianRoundSeconds, meanRound: f.meanRoundSeconds / w.meanRoundSeconds, medianCycle: f.medianCycleSeconds / w.medianCycleSeconds, serverPeakRss: f.serverPeakRssMiB / w.serverPeakRssMiB };
  }
  results.push(entry);
}

const fmt = (x, d = 3) => (x === undefined || Number.isNaN(x) ? '-' : x.toFixed(d));
const rows = [['model', 'framework', 'rounds', 'median round s', 'mean round s', 'median cycle s', 'round 1 s', 'server peak RSS MiB', 'client peak RSS MiB', 'fedge/Flower (median round)']];
for (const e of results) {
  for (const fw of only) {
    const s = e.frameworks[fw];
    if (!s || s.error) { rows.push([e.model, fw, 'failed', s?.error ?? '', '', '', '', '', '', '']); continue; }
    rows.push([`${e.model} (${(e.params / 1e6).toFixed(2)}M)`, fw, s.failedRounds ? `${s.rounds} (${s.failedRounds} failed)` : String(s.rounds), fmt(s.medianRoundSeconds), fmt(s.meanRoundSeconds), fmt(s.medianCycleSeconds), fmt(s.round1Seconds), fmt(s.serverPeakRssMiB, 0), fmt(s.clientPeakRssMiBMedian, 0),
      fw === 'fedge' && e.ratio ? fmt(e.ratio.medianRound, 2) : '']);
  }
}
const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
for (const [i, r] of rows.entries()) {
  console.log(r.map((c, j) => c.padEnd(widths[j])).join('  '));
  if (i === 0) console.log(widths.map((w) => '-'.repeat(w)).join('  '));
}
console.log(`\nround = round start (tasks sent) to aggregation done, completed rounds 2..${rounds}; cycle = one round's start to the next one's; ratio < 1: fedge faster`);

let commit = '';
try { commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: root, encoding: 'utf8' }).trim(); } catch {}
const doc = prior ? { ...prior, results, resummarizedAt: new Date().toISOString() } : {
  bench: 'flower',
  date: new Date().toISOString(),
  commit,
  machine: { cpu: os.cpus()[0]?.model, cores: os.cpus().length, memGiB: os.totalmem() / 2 ** 30, platform: `${os.platform()} ${os.release()}`, node: process.version, loadavgAtEnd: os.loadavg() },
  config: { rounds, clients, examplesPerClient: EXAMPLES, fedge: { agents: fedgeAgents, partition: 'iid', numPartitions: Math.round(9000 / EXAMPLES), epochs: 1, batchSize: 32, centralEvaluation: false, serve: '--in-memory' }, flower: { api: 'flwr.server.start_server + flwr.client.start_client (gRPC)', strategy: 'FedAvg, fraction_evaluate 0' } },
  results,
};
mkdirSync(path.dirname(out), { recursive: true });
writeFileSync(out, JSON.stringify(doc, null, 2) + '\n');
console.log(`wrote ${path.relative(process.cwd(), out)}`);
if (results.every((e) => Object.values(e.frameworks).every((s) => !s.error))) rmSync(runDir, { recursive: true, force: true });
else console.log(`logs kept in ${runDir}`);
