#!/usr/bin/env node
/**
 * Strategies bench: rounds to a target central accuracy (default 95%) for each aggregation strategy on the
 * label-shard non-IID split (each agent holds 2 label shards), mnist-mlp, 10 agents, sync rounds.
 *
 * Each configuration is one real `fedge demo` (a coordinator and N agent processes over gRPC on loopback) with
 * the demo's defaults otherwise (mnist-mlp, 2 local epochs, batch 32, local lr 0.2) and `--strategy NAME[:k=v]`;
 * `--target-accuracy` ends a run at the first round whose central accuracy (997 held-out digits) reaches the target,
 * `--rounds` caps the others, which are reported as "not reached" with their best accuracy.
 *
 *   npx tsc -b && node bench/strategies.mjs                    # all configurations below (~20-30 min on 2 cores)
 *   node bench/strategies.mjs --configs fedavg,fedadam --rounds 30 --out /tmp/x.json
 *   node bench/strategies.mjs --cli /tmp/other-checkout/packages/coordinator/dist/cli/main.js
 *
 * --configs takes names from CONFIGS (exact), --cli another build of fedge (default: this checkout's dist), --build a
 * free-text label of that build (e.g. its commit) recorded in the JSON. --merge keeps the other configurations' rows of
 * an existing --out file and replaces only the ones run now (each new row records its own build and date):
 *   node bench/strategies.mjs --configs scaffold --merge --build "$(git rev-parse --short HEAD)"
 * Writes bench/results/strategies.json: every run's command, outcome, per-round central accuracy and seconds.
 *
 * Timing: "wall s" is the demo's own wallSeconds, which with a target that was reached is the time from the
 * start of the demo to the end of the target round (start-up, agents joining, every round with its central
 * evaluation); for a run that did not reach it, the whole run. "process s" is spawn-to-exit as seen by the bench.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

// name -> --strategy spec (null: no --strategy flag, i.e. the default fedavg)
const CONFIGS = [
  { name: 'fedavg', spec: null },
  { name: 'fedavgm', spec: 'fedavgm' }, // server lr 1, momentum 0.9
  { name: 'fedavgm lr=0.1', spec: 'fedavgm:lr=0.1' }, // effective step lr/(1-momentum) = 1, as fedavg's
  { name: 'fedadam', spec: 'fedadam' }, // server lr 0.01
  { name: 'fedadam lr=0.03', spec: 'fedadam:lr=0.03' },
  { name: 'fedyogi', spec: 'fedyogi' }, // server lr 0.01
  { name: 'fedprox mu=0.01', spec: 'fedprox:mu=0.01' },
  { name: 'fedprox mu=0.1', spec: 'fedprox:mu=0.1' },
  // Server lr 1 (the paper's eta_g = 1); updates are [delta | variate delta] and tasks also fetch c: 2x bytes each way.
  { name: 'scaffold', spec: 'scaffold' },
];

const args = Object.fromEntries(
  process.argv.slice(2).reduce((acc, a, i, all) => (a.startsWith('--') ? [...acc, [a.slice(2), all[i + 1]]] : acc), []),
);
const CLI = path.resolve(args.cli ?? path.join(ROOT, 'packages/coordinator/dist/cli/main.js'));
const AGENTS = Number(args.agents ?? 10);
const ROUNDS = Number(args.rounds ?? 60);
const TARGET = Number(args.target ?? 0.95);
const SEED = Number(args.seed ?? 42);
const PARTITION = args.partition ?? 'shards';
const OUT = path.resolve(args.out ?? path.join(ROOT, 'bench/results/strategies.json'));
const wanted = args.configs ? String(args.configs).split(',').map((s) => s.trim()) : null;
const selected = wanted ? CONFIGS.filter((c) => wanted.includes(c.name) || wanted.includes(c.spec ?? 'fedavg')) : CONFIGS;
if (selected.length === 0) throw new Error(`--configs: none of ${wanted} in ${CONFIGS.map((c) => c.name).join(', ')}`);

const r4 = (x) => (x === null || x === undefined ? null : Math.round(x * 1e4) / 1e4);
const load = () => os.loadavg().map((x) => Math.round(x * 100) / 100);

const results = [];
for (const c of selected) {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'fedge-bench-strategies-'));
  const argv = [CLI, 'demo', '--agents', String(AGENTS), '--partition', PARTITION, '--rounds', String(ROUNDS),
    '--target-accuracy', String(TARGET), '--seed', String(SEED), ...(c.spec ? ['--strategy', c.spec] : []), '--format', 'json', '--data-dir', dataDir];
  const command = `fedge ${argv.slice(1).join(' ').replace(dataDir, 'DIR')}`;
  process.stderr.write(`\n[${new Date().toISOString()}] ${c.name}: ${command}\n`);
  const loadBefore = load();
  const t0 = performance.now();
  const r = spawnSync(process.execPath, argv, { cwd: ROOT, encoding: 'utf8', maxBuffer: 64 << 20 });
  const processSeconds = (performance.now() - t0) / 1000;
  rmSync(dataDir, { recursive: true, force: true });
  let out;
  try {
    out = JSON.parse(r.stdout.trim().split('\n').at(-1));
  } catch {
    process.stderr.write(r.stderr.slice(-4000));
    throw new Error(`${c.name}: fedge demo exited with ${r.status} and no JSON result`);
  }
  const metrics = out.metrics ?? [];
  const accuracy = metrics.map((m) => r4(m.centralAccuracy ?? null));
  const best = Math.max(...accuracy.map((a) => a ?? 0));
  const row = {
    config: c.name,
    strategyFlag: c.spec,
    strategy: out.strategy,
    command,
    status: out.status,
    exitCode: r.status,
    reached: out.reached,
    reachedAtRound: out.reachedAtVersion,
    rounds: metrics.length,
    bestAccuracy: r4(best),
    bestRound: accuracy.indexOf(r4(best)) + 1,
    finalAccuracy: r4(out.finalAccuracy),
    initialAccuracy: r4(out.initialAccuracy),
    wallSeconds: out.wallSeconds,
    processSeconds: Math.round(processSeconds * 100) / 100,
    roundSecondsSum: Math.round(metrics.reduce((s, m) => s + (m.seconds ?? 0), 0) * 100) / 100,
    loadavgBefore: loadBefore,
    loadavgAfter: load(),
    backends: out.agentBackends,
    accuracy,
    trainLoss: metrics.map((m) => r4(m.trainLoss ?? null)),
    roundSeconds: metrics.map((m) => m.seconds ?? null),
    failedUpdates: metrics.reduce((s, m) => s + (m.failed ?? 0), 0),
    // Bytes per round through the coordinator (mean over rounds): models (and scaffold's c) down, updates up.
    bytesSentPerRound: Math.round(metrics.reduce((s, m) => s + (m.bytesSent ?? 0), 0) / Math.max(1, metrics.length)),
    bytesReceivedPerRound: Math.round(metrics.reduce((s, m) => s + (m.bytesReceived ?? 0), 0) / Math.max(1, metrics.length)),
    ...('merge' in args ? { build: args.build ?? null, date: new Date().toISOString() } : {}),
  };
  results.push(row);
  process.stderr.write(`  -> ${row.reached ? `reached at round ${row.reachedAtRound}` : `not reached in ${row.rounds} (best ${row.bestAccuracy} at ${row.bestRound})`}, wall ${row.wallSeconds} s\n`);
}

const pad = (s, n) => String(s).padEnd(n);
const lines = [
  `Rounds to ${TARGET * 100}% central accuracy: mnist-mlp, ${AGENTS} agents, ${PARTITION} split, 2 local epochs, local lr 0.2, seed ${SEED}, cap ${ROUNDS} rounds`,
  `${pad('strategy', 18)}${pad('server options', 58)}${pad(`rounds to ${TARGET}`, 15)}${pad('best acc (round)', 18)}${pad('final acc', 11)}wall s`,
];
for (const x of results) {
  const { name: _n, ...opts } = x.strategy ?? {};
  lines.push(
    `${pad(x.config, 18)}${pad(Object.entries(opts).map(([k, v]) => `${k} ${v}`).join(', ') || '-', 58)}${pad(x.reached ? x.reachedAtRound : `not reached`, 15)}` +
      `${pad(`${x.bestAccuracy.toFixed(4)} (${x.bestRound})`, 18)}${pad(x.finalAccuracy?.toFixed(4) ?? 'n/a', 11)}${x.wallSeconds.toFixed(1)}`,
  );
}
console.log(`\n${lines.join('\n')}`);
mkdirSync(path.dirname(OUT), { recursive: true });
const params = { agents: AGENTS, rounds: ROUNDS, target: TARGET, seed: SEED, partition: PARTITION, model: 'mnist-mlp', epochs: 2, batchSize: 32, lr: 0.2 };
let doc = {
  date: new Date().toISOString(), node: process.version, cpu: os.cpus()[0]?.model, cores: os.cpus().length,
  cli: path.relative(ROOT, CLI), build: args.build ?? null, params, results,
};
if ('merge' in args && existsSync(OUT)) {
  // The file's date, cli and build stay those of its other rows; rows run now carry their own build and date.
  const old = JSON.parse(readFileSync(OUT, 'utf8'));
  if (JSON.stringify(old.params) !== JSON.stringify(params)) throw new Error(`--merge: ${OUT} was run with ${JSON.stringify(old.params)}, not ${JSON.stringify(params)}`);
  const now = new Set(results.map((r) => r.config));
  const { notScaffold: _gone, ...rest } = old;
  doc = { ...rest, results: [...old.results.filter((r) => !now.has(r.config)), ...results] };
}
writeFileSync(OUT, JSON.stringify(doc, null, 2));
console.log(`\nwrote ${path.relative(process.cwd(), OUT)}`);
