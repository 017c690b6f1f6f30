#!/usr/bin/env node
/**
 * Learning bench: rounds and wall time for `fedge demo --partition shards` (McMahan's pathological
 * non-IID split: each agent holds 2 label shards) to reach a target central accuracy on the 997 held-out
 * digits, for mnist-mlp and mnist-cnn. Prints a table and writes bench/results/learning.json.
 *
 *   npx tsc -b                                   # the demo runs from packages/coordinator/dist
 *   node bench/learning.mjs                      # both models with the defaults below (~30 min on 2 cores)
 *   node bench/learning.mjs --quick              # smoke run: 4 agents, 3 MLP + 2 CNN rounds (~1 min)
 *   node bench/learning.mjs --models mnist-mlp --mlp-lr 0.05 --mlp-epochs 2 --out /tmp/x.json
 *
 * Every option can also be set through the environment: --mlp-lr 0.05 == BENCH_LEARNING_MLP_LR=0.05.
 * Options without a model prefix (--agents, --rounds, --epochs, --batch-size, --lr) apply to both models;
 * --mlp-* / --cnn-* override them per model.
 *
 * Timing. The bench spawns the demo with FEDGE_LOG_LEVEL=info and reads the coordinator's "round ended"
 * log lines (pino, epoch-ms `time`), which are written after that round's aggregation *and* its central
 * evaluation. "wall to target" = time of the "round ended" line of the first round whose centralAccuracy
 * >= target, minus the moment the bench spawned `fedge demo`. It therefore includes Node/CLI start-up,
 * tfjs (wasm) initialisation, starting and joining the agents, and every round up to the target with its
 * aggregation and central evaluation. The same figure estimated from the demo's JSON alone,
 * (wallSeconds - sum of all round seconds) + sum of round seconds up to the target round, is reported
 * too ("est"): it is a slight over-estimate because a round's `seconds` stop before its central
 * evaluation and wallSeconds also contains the final federated evaluation, both of which that formula
 * books as fixed overhead.
 *
 * By default (--stop-at-target) the bench sends SIGINT to the demo once the target is reached, which saves
 * the rest of the round cap; the demo then ends its run as "stopped" and records the round it was in as
 * failed, which the bench drops. --stop-at-target=0 runs every round of the cap.
 */
import { spawn, execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const CLI = path.join(ROOT, 'packages/coordinator/dist/cli/main.js');

// ---------------------------------------------------------------- options
const DEFAULTS = {
  models: 'mnist-mlp,mnist-cnn',
  partition: 'shards',
  target: 0.97,
  seed: 42,
  out: path.join(ROOT, 'bench/results/learning.json'),
  'stop-at-target': true,
  keep: false,
  quick: false,
  // per model (prefix mlp- / cnn-); unprefixed values override both
  // (tuned on this 2-core machine, see bench/README.md: lr 0.2 beat 0.03/0.1/0.4 for the MLP on shards at
  // E=1 B=10, and E=1 beat E=2/E=5 per second of training; lr 0.1 beat 0.05 for the CNN over 5 rounds)
  'mlp-agents': 10, 'mlp-rounds': 300, 'mlp-epochs': 1, 'mlp-batch-size': 10, 'mlp-lr': 0.2,
  'cnn-agents': 10, 'cnn-rounds': 50, 'cnn-epochs': 1, 'cnn-batch-size': 10, 'cnn-lr': 0.1,
};
const QUICK = {
  'mlp-agents': 4, 'mlp-rounds': 3, 'mlp-epochs': 1,
  'cnn-agents': 4, 'cnn-rounds': 2, 'cnn-epochs': 1,
};
const SHARED = ['agents', 'rounds', 'epochs', 'batch-size', 'lr'];
const BOOL = new Set(['stop-at-target', 'keep', 'quick']);
const STRING = new Set(['models', 'partition', 'out']);
const KNOWN = new Set([...Object.keys(DEFAULTS), ...SHARED]);

function usage(msg) {
  if (msg) process.stderr.write(`learning.mjs: ${msg}\n`);
  process.stderr.write(`usage: node bench/learning.mjs [--quick] [--models mnist-mlp,mnist-cnn] [--target 0.97] [--seed N]
  [--agents N] [--rounds N] [--epochs N] [--batch-size N] [--lr X]      (both models)
  [--mlp-agents N ... --cnn-lr X]                                       (one model)
  [--partition shards|iid|dirichlet] [--stop-at-target] [--keep] [--out FILE]
defaults: ${JSON.stringify(DEFAULTS)}
`);
  process.exit(msg ? 2 : 0);
}

function parseValue(key, raw) {
  if (BOOL.has(key)) return raw === undefined || raw === '' || !/^(0|false|no)$/i.test(raw);
  if (STRING.has(key)) return raw;
  const n = Number(raw);
  if (raw === undefined || raw === '' || !Number.isFinite(n) || n <= 0) usage(`--${key}: expected a positive number, got "${raw}"`);
  return n;
}

function parseOptions(argv) {
  const set = {};
  // environment first, then argv (argv wins)
  for (const key of KNOWN) {
    const env = process.env[`BENCH_LEARNING_${key.toUpperCase().replace(/-/g, '_')}`];
    if (env !== undefined) set[key] = parseValue(key, env);
  }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '-h' || a === '--help') usage();
    if (!a.startsWith('--')) usage(`unexpected argument "${a}"`);
    let [key, raw] = a.slice(2).split(/=(.*)/s, 2);
    if (!KNOWN.has(key)) usage(`unknown option --${key}`);
    if (raw === undefined && !BOOL.has(key)) raw = argv[++i];
    set[key] = parseValue(key, raw);
  }
  const o = { ...DEFAULTS, ...(set.quick ? QUICK : {}) };
  for (const k of SHARED) if (set[k] !== undefined) o[`mlp-${k}`] = o[`cnn-${k}`] = set[k];
  for (const [k, v] of Object.entries(set)) if (!SHARED.includes(k)) o[k] = v;
  for (const p of ['mlp', 'cnn'])
    for (const k of ['agents', 'rounds', 'epochs', 'batch-size'])
      if (!Number.isInteger(o[`${p}-${k}`])) usage(`--${p}-${k}: expected an integer, got ${o[`${p}-${k}`]}`);
  if (!(o.target > 0 && o.target <= 1)) usage(`--target: expected a fraction in (0, 1], got ${o.target}`);
  const models = String(o.models).split(',').map((s) => s.trim()).filter(Boolean);
  for (const m of models) if (m !== 'mnist-mlp' && m !== 'mnist-cnn') usage(`--models: unknown model "${m}"`);
  return { ...o, models };
}

// ---------------------------------------------------------------- one demo run
const sum = (xs) => xs.reduce((a, b) => a + b, 0);
const r2 = (x) => (x === null || x === undefined ? null : Math.round(x * 100) / 100);
const r4 = (x) => (x === null || x === undefined ? null : Math.round(x * 1e4) / 1e4);

/** From the agents' logs: their tfjs backend line, local train/holdout sizes, per-round training throughput. */
function agentLogs(dataDir) {
  const dir = path.join(dataDir, 'demo');
  const backends = new Set();
  let trainExamples = 0, holdoutExamples = 0;
  const perRound = new Map(); // round -> samplesPerSec of each agent (one process, under CPU contention)
  let files = [];
  try {
    files = readdirSync(dir).filter((f) => f.endsWith('.log'));
  } catch { /* no logs */ }
  for (const f of files) {
    for (const line of readFileSync(path.join(dir, f), 'utf8').split('\n')) {
      let j;
      try {
        j = JSON.parse(line);
      } catch {
        continue;
      }
      if (typeof j.msg !== 'string') continue;
      if (j.msg.startsWith('tfjs backend')) backends.add(j.msg);
      else if (j.msg === 'local data ready') {
        trainExamples += j.train ?? 0;
        holdoutExamples += j.holdout ?? 0;
      } else if (j.msg === 'trained' && typeof j.samplesPerSec === 'number') {
        if (!perRound.has(j.round)) perRound.set(j.round, []);
        perRound.get(j.round).push(j.samplesPerSec);
      }
    }
  }
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  return { backends: [...backends], trainExamples, holdoutExamples, agentSamplesPerSec: new Map([...perRound].map(([r, xs]) => [r, median(xs)])) };
}

/**
 * CPU accounting from /proc (Linux; null elsewhere): the machine's busy jiffies and those of the demo's
 * process tree (coordinator + agents). Their ratio over a run tells whether something else was competing
 * for the cores, which would inflate every time in the results.
 */
function cpuSample(rootPid) {
  try {
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    const [user, nice, system, idle, iowait, irq, softirq, steal] = f;
    const busy = user + nice + system + irq + softirq + (steal ?? 0);
    const parent = new Map(), own = new Map();
    for (const d of readdirSync('/proc')) {
      if (!/^\d+$/.test(d)) continue;
      try {
        const st = readFileSync(`/proc/${d}/stat`, 'utf8');
        const rest = st.slice(st.lastIndexOf(')') + 2).split(' '); // fields from 3 (state) on
        parent.set(Number(d), Number(rest[1]));
        own.set(Number(d), Number(rest[11]) + Number(rest[12])); // utime + stime
      } catch { /* exited meanwhile */ }
    }
    let tree = 0;
    for (const [pid, j] of own) {
      let q = pid;
      for (let hops = 0; q > 1 && hops < 64; hops++) {
        if (q === rootPid) {
          tree += j;
          break;
        }
        q = parent.get(q) ?? 0;
      }
    }
    return { busy, total: busy + idle + (iowait ?? 0), tree };
  } catch {
    return null;
  }
}

/** Runs `fedge demo` once; resolves with the parsed outcome. */
function runDemo(model, p, o) {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'fedge-learning-'));
  const args = [CLI, 'demo', '--model', model, '--partition', o.partition, '--agents', String(p.agents), '--rounds', String(p.rounds),
    '--epochs', String(p.epochs), '--batch-size', String(p.batchSize), '--lr', String(p.lr), '--seed', String(o.seed),
    '--data-dir', dataDir, '--format', 'json'];
  const command = `fedge ${args.slice(1).join(' ').replace(dataDir, 'DIR')}`;
  process.stderr.write(`\n$ ${command}\n`);
  const spawnedAt = Date.now();
  // FEDGE_LOG_LEVEL=info: the coordinator's "round started/ended" lines go to stdout next to the result.
  const child = spawn(process.execPath, args, { cwd: ROOT, env: { ...process.env, FEDGE_LOG_LEVEL: 'info' }, stdio: ['ignore', 'pipe', 'pipe'] });
  const rounds = new Map(); // round -> { round, version, completed, failed, trainLoss, centralAccuracy, seconds, endedAt }
  let firstRoundStartedAt = null, result = null, stopped = false, stderr = '', buf = '';
  const cpu0 = cpuSample(child.pid);
  let cpuLast = cpu0;
  const others = [];

  const onLine = (line) => {
    if (!line.trim()) return;
    let j;
    try {
      j = JSON.parse(line);
    } catch {
      others.push(line);
      return;
    }
    if (j && Array.isArray(j.metrics) && 'finalAccuracy' in j) {
      result = j;
      return;
    }
    if (j.msg === 'round started' && j.round === 1 && firstRoundStartedAt === null) firstRoundStartedAt = j.time;
    if (j.msg === 'round ended') {
      const now = cpuSample(child.pid);
      if (now && now.tree >= (cpuLast?.tree ?? 0)) cpuLast = now;
      rounds.set(j.round, { round: j.round, version: j.version ?? null, completed: j.completed, failed: j.failed, trainLoss: j.trainLoss ?? null,
        centralAccuracy: j.centralAccuracy ?? null, seconds: j.seconds, endedAt: j.time });
      const acc = j.centralAccuracy ?? -1;
      process.stderr.write(`  round ${String(j.round).padStart(3)}  acc ${(acc < 0 ? '-' : `${(acc * 100).toFixed(2)}%`).padStart(7)}  round ${j.seconds.toFixed(1).padStart(6)}s  elapsed ${((j.time - spawnedAt) / 1000).toFixed(1).padStart(7)}s\n`);
      if (o['stop-at-target'] && !stopped && acc >= o.target) {
        stopped = true;
        process.stderr.write(`  target reached: stopping the demo (SIGINT to pid ${child.pid})\n`);
        child.kill('SIGINT');
      }
    }
    if (j.level >= 40 && j.msg !== 'agent offline') process.stderr.write(`  [demo log] ${j.msg}\n`);
  };
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (d) => {
    buf += d;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      onLine(buf.slice(0, i));
      buf = buf.slice(i + 1);
    }
  });
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (d) => {
    stderr += d;
    process.stderr.write(d.replace(/^/gm, '  [demo stderr] '));
  });

  return new Promise((resolve) => {
    child.on('close', (code, signal) => {
      if (buf) onLine(buf);
      const exitedAt = Date.now();
      const agents = agentLogs(dataDir);
      const cpu = cpu0 && cpuLast && cpuLast.busy > cpu0.busy
        ? { benchShareOfBusy: (cpuLast.tree - cpu0.tree) / (cpuLast.busy - cpu0.busy), machineBusy: (cpuLast.busy - cpu0.busy) / (cpuLast.total - cpu0.total), loadavg1m: os.loadavg()[0] }
        : null;
      if (!o.keep) rmSync(dataDir, { recursive: true, force: true });
      resolve({ command, code, signal, stopped, spawnedAt, exitedAt, firstRoundStartedAt, rounds, result, stderr, agents, cpu, others, dataDir: o.keep ? dataDir : null });
    });
  });
}

function analyse(model, p, o, run) {
  const { result, rounds, spawnedAt } = run;
  // Curve: the demo's JSON metrics when there are any, joined with the log timestamps.
  let metrics = result?.metrics ?? [...rounds.values()].sort((a, b) => a.round - b.round);
  // Stopped at the target: the round that was running when the SIGINT came is recorded as failed; drop it.
  if (run.stopped) {
    const at = metrics.find((m) => (m.centralAccuracy ?? -1) >= o.target);
    if (at) metrics = metrics.filter((m) => m.round <= at.round);
  }
  const curve = metrics.map((m) => {
    const log = rounds.get(m.round);
    return {
      round: m.round,
      status: m.status ?? (m.version ? 'completed' : 'failed'),
      centralAccuracy: r4(m.centralAccuracy),
      federatedAccuracy: r4(m.federatedAccuracy ?? null),
      trainLoss: r4(m.trainLoss),
      trainAccuracy: r4(m.trainAccuracy ?? null),
      seconds: r2(m.seconds),
      elapsedSeconds: log ? r2((log.endedAt - spawnedAt) / 1000) : null,
      agentSamplesPerSec: run.agents.agentSamplesPerSec.get(m.round) ?? null,
      completed: m.completed,
      failed: m.failed,
    };
  });
  const hit = curve.find((c) => (c.centralAccuracy ?? -1) >= o.target);
  let best = null;
  for (const c of curve) if (c.centralAccuracy !== null && (best === null || c.centralAccuracy > best.centralAccuracy)) best = c;
  // Plateau: first round within 0.5 percentage points of the best accuracy of the run.
  const plateau = best ? curve.find((c) => c.centralAccuracy !== null && c.centralAccuracy >= best.centralAccuracy - 0.005) : null;
  const roundSecs = curve.map((c) => c.seconds ?? 0);
  const overhead = result ? result.wallSeconds - sum(roundSecs) : null;
  const hitIdx = hit ? curve.indexOf(hit) : -1;
  // Every agent trains on its whole local train split (90% of its partition; 10% is its local holdout) every round.
  const samples = p.epochs * run.agents.trainExamples;
  const totalRoundSecs = sum(roundSecs);
  return {
    model,
    params: { agents: p.agents, roundsCap: p.rounds, epochs: p.epochs, batchSize: p.batchSize, lr: p.lr, partition: o.partition, seed: o.seed, target: o.target },
    command: `node packages/coordinator/dist/cli/${run.command.replace(/^fedge /, 'main.js ')}`,
    status: run.stopped ? 'stopped at target' : (result?.status ?? `exit ${run.code ?? run.signal}`),
    roundsRun: curve.length,
    reached: Boolean(hit),
    roundsToTarget: hit ? hit.round : null,
    wallToTargetSeconds: hit?.elapsedSeconds ?? null,
    estWallToTargetSeconds: hit && overhead !== null ? r2(overhead + sum(roundSecs.slice(0, hitIdx + 1))) : null,
    startupSeconds: run.firstRoundStartedAt ? r2((run.firstRoundStartedAt - spawnedAt) / 1000) : null,
    fixedOverheadSeconds: r2(overhead),
    demoWallSeconds: result?.wallSeconds ?? null,
    benchWallSeconds: r2((run.exitedAt - spawnedAt) / 1000),
    meanRoundSeconds: curve.length ? r2(totalRoundSecs / curve.length) : null,
    trainSamplesPerSecond: totalRoundSecs > 0 ? Math.round((samples * curve.length) / totalRoundSecs) : null,
    initialAccuracy: r4(result?.initialAccuracy ?? null),
    finalAccuracy: r4(result?.finalAccuracy ?? curve.at(-1)?.centralAccuracy ?? null),
    bestAccuracy: best?.centralAccuracy ?? null,
    bestRound: best?.round ?? null,
    plateauRound: plateau?.round ?? null,
    // Share of the machine's busy CPU time (spawn .. last round) used by the demo's processes; well
    // below 1 means other work competed for the cores and the times above are inflated.
    cpuShareOfDemo: run.cpu ? r2(run.cpu.benchShareOfBusy) : null,
    machineBusy: run.cpu ? r2(run.cpu.machineBusy) : null,
    agentTrainExamples: run.agents.trainExamples,
    agentHoldoutExamples: run.agents.holdoutExamples,
    agentBackends: result?.agentBackends ?? null,
    backendDetail: run.agents.backends,
    failedUpdates: sum(curve.map((c) => c.failed ?? 0)),
    curve,
  };
}

// ---------------------------------------------------------------- report
const pctS = (x) => (x === null || x === undefined ? '-' : `${(x * 100).toFixed(2)}%`);
const secS = (x) => (x === null || x === undefined ? '-' : x < 120 ? `${x.toFixed(1)}s` : `${Math.floor(x / 60)}m${String(Math.round(x % 60)).padStart(2, '0')}s`);

function table(rows, cols) {
  const cells = rows.map((r) => cols.map(([, f]) => String(f(r))));
  const w = cols.map(([h], i) => Math.max(h.length, ...cells.map((c) => c[i].length)));
  const line = (vs) => vs.map((v, i) => v.padEnd(w[i])).join('  ').trimEnd();
  return [line(cols.map(([h]) => h)), line(w.map((n) => '-'.repeat(n))), ...cells.map(line)].join('\n');
}

function machine() {
  let commit = null;
  try {
    commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim();
  } catch { /* not a git checkout */ }
  const cpus = os.cpus();
  return {
    cpuModel: cpus[0]?.model ?? 'unknown',
    cores: cpus.length,
    availableParallelism: os.availableParallelism?.() ?? cpus.length,
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    platform: `${os.platform()} ${os.release()} ${os.arch()}`,
    node: process.version,
    v8: process.versions.v8,
    commit,
    date: new Date().toISOString(),
  };
}

// ---------------------------------------------------------------- main
const o = parseOptions(process.argv.slice(2));
try {
  readFileSync(CLI);
} catch {
  process.stderr.write(`learning.mjs: ${path.relative(ROOT, CLI)} not found; build first with \`npx tsc -b\`\n`);
  process.exit(1);
}
const m = machine();
process.stderr.write(`learning bench: ${o.models.join(', ')} on a ${o.partition} split, target ${pctS(o.target)}; ${m.cpuModel}, ${m.cores} cores, node ${m.node}\n`);
const results = [];
for (const model of o.models) {
  const k = model === 'mnist-mlp' ? 'mlp' : 'cnn';
  const p = { agents: o[`${k}-agents`], rounds: o[`${k}-rounds`], epochs: o[`${k}-epochs`], batchSize: o[`${k}-batch-size`], lr: o[`${k}-lr`] };
  const run = await runDemo(model, p, o);
  if (!run.result && !run.stopped) process.stderr.write(`  the demo exited (${run.code ?? run.signal}) without its JSON result${run.others.length ? `; stdout: ${run.others.slice(-5).join(' | ')}` : ''}\n`);
  results.push(analyse(model, p, o, run));
}

const cols = [
  ['model', (r) => r.model],
  ['agents', (r) => r.params.agents],
  ['E', (r) => r.params.epochs],
  ['B', (r) => r.params.batchSize],
  ['lr', (r) => r.params.lr],
  ['rounds run', (r) => r.roundsRun],
  [`rounds to ${pctS(o.target)}`, (r) => (r.reached ? r.roundsToTarget : `not in ${r.roundsRun}`)],
  ['wall to target', (r) => (r.reached ? secS(r.wallToTargetSeconds) : '-')],
  ['start-up', (r) => secS(r.startupSeconds)],
  ['s/round', (r) => (r.meanRoundSeconds === null ? '-' : r.meanRoundSeconds.toFixed(1))],
  ['samples/s', (r) => r.trainSamplesPerSecond ?? '-'],
  ['best (round)', (r) => `${pctS(r.bestAccuracy)} (${r.bestRound ?? '-'})`],
  ['final', (r) => pctS(r.finalAccuracy)],
  ['backend', (r) => (r.agentBackends ?? []).join(',') || '-'],
  ['cpu share', (r) => (r.cpuShareOfDemo === null ? '-' : `${Math.round(r.cpuShareOfDemo * 100)}%`)],
];
process.stdout.write(`\n${table(results, cols)}\n`);
for (const r of results) {
  const every = Math.max(1, Math.ceil(r.curve.length / 20));
  const pts = r.curve.filter((c, i) => i % every === every - 1 || i === r.curve.length - 1 || c.round === r.roundsToTarget);
  process.stdout.write(`\n${r.model} accuracy by round: ${pts.map((c) => `${c.round}:${pctS(c.centralAccuracy)}`).join('  ')}\n`);
  if (r.backendDetail.length) process.stdout.write(`${r.model} agents' backend: ${r.backendDetail.join(' | ')}\n`);
  if (r.cpuShareOfDemo !== null && r.cpuShareOfDemo < 0.9)
    process.stdout.write(`${r.model}: WARNING other processes used ${Math.round((1 - r.cpuShareOfDemo) * 100)}% of the busy CPU time during this run; its times are inflated\n`);
}

const out = {
  bench: 'learning',
  description: `fedge demo --partition ${o.partition}: rounds and wall time until the central accuracy on the 997 held-out digits reaches the target`,
  timing: 'wallToTargetSeconds = time the coordinator logged "round ended" (after aggregation and central evaluation) for the first round at or above the target, minus the moment the bench spawned `fedge demo` (includes CLI and tfjs start-up, agent start-up and joining). estWallToTargetSeconds = (wallSeconds - sum of all round seconds) + sum of round seconds up to that round, from the demo JSON alone. startupSeconds = spawn to "round started" of round 1. cpuShareOfDemo = CPU time of the demo\'s process tree / busy CPU time of the whole machine over the run (from /proc); well below 1 means other work competed for the cores and inflated the times.',
  machine: m,
  options: { ...o, out: path.relative(ROOT, o.out) },
  results,
};
mkdirSync(path.dirname(o.out), { recursive: true });
writeFileSync(o.out, `${JSON.stringify(out, null, 2)}\n`);
process.stderr.write(`\nwrote ${path.relative(process.cwd(), o.out) || o.out}\n`);
