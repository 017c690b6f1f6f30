// Stragglers benchmark: wall time to a target accuracy with 30% of agents 10x slower (MNIST label shards, mnist-mlp),
// for sync FedAvg waiting for everyone, sync with over-selection (close on the first results needed), and async mode.
// Every configuration runs `fedge demo` with its defaults (local training, seed, strategy, async buffer size and
// staleness); a flag below overrides one. Prints a table and writes bench/results/async.json.
// Usage: node bench/async.mjs [--target 0.9] [--agents 10] [--rounds 60] [--async-rounds N (default: --rounds)] [--quick] [--only waitforall,async]
//        [--epochs E] [--lr X] [--seed N] [--buffer-size K] [--staleness FN] [--strategy S] [--late-staleness FN]
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const fedge = path.join(here, '..', 'packages', 'coordinator', 'dist', 'cli', 'main.js');
const arg = (name, def) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : def;
};
/** `--flag value` when the bench was given it, else nothing: the demo's default applies. */
const pass = (name, flag = name) => (arg(name) === undefined ? [] : [`--${flag}`, arg(name)]);
const quick = process.argv.includes('--quick');
const target = Number(arg('target', quick ? '0.85' : '0.9'));
const agents = Number(arg('agents', '10'));
const stragglers = Number(arg('stragglers', '0.3'));
const slowdown = Number(arg('slowdown', '10'));
const partition = arg('partition', 'shards');
// The caps on sync rounds and on async versions: both 60 by default, the cap issue 10 sets for the async defaults
// (--rounds 60). --async-rounds allows async more versions (a version costs about K/concurrency of a fast agent's
// task, not the slowest agent's), e.g. to see where a setting that misses the cap would get there.
const maxRounds = Number(arg('rounds', quick ? '15' : '60'));
const asyncRounds = Number(arg('async-rounds', String(quick ? 40 : maxRounds)));

const common = ['demo', '--agents', String(agents), '--stragglers', String(stragglers), '--slowdown', String(slowdown), '--partition', partition,
  '--model', 'mnist-mlp', ...pass('epochs'), ...pass('lr'), '--target-accuracy', String(target), ...pass('seed'), '--format', 'json'];
const fast = Math.max(1, agents - Math.round(stragglers * agents));
const configs = [
  { name: 'sync, wait for all', args: ['--rounds', String(maxRounds)] },
  // Invite everyone, close on the first `fast` results: the over-selection factor is agents/fast - 1.
  { name: 'sync, over-selection', args: ['--rounds', String(maxRounds), '--over-selection', String(agents / fast - 1 + 1e-9)] },
  // The same, but late results are folded into the next round instead of dropped: stragglers' labels stay in.
  { name: 'sync, over-sel + late', args: ['--rounds', String(maxRounds), '--over-selection', String(agents / fast - 1 + 1e-9), '--late-results', 'next-round', ...pass('late-staleness', 'staleness')] },
  // Async as `fedge demo --mode async` runs it: bufferSize "auto", the async default strategy and staleness.
  { name: 'async (defaults)', args: ['--mode', 'async', '--rounds', String(asyncRounds), ...pass('buffer-size'), ...pass('staleness'), ...pass('strategy')] },
];

// --only wait,async (prefixes of config names) runs a subset; the first one run is the baseline of the ratios.
const only = arg('only', '').split(',').filter(Boolean);
const selected = only.length ? configs.filter((c) => only.some((o) => c.name.replace(/[^a-z]/gi, '').toLowerCase().includes(o.toLowerCase()))) : configs;
const results = [];
for (const c of selected) {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'fedge-bench-async-'));
  process.stderr.write(`running: ${c.name} ...\n`);
  const out = execFileSync(process.execPath, [fedge, ...common, ...c.args, '--data-dir', dataDir], { encoding: 'utf8', maxBuffer: 64 << 20, stdio: ['ignore', 'pipe', 'ignore'] });
  const r = JSON.parse(out.trim().split('\n').at(-1));
  results.push({
    config: c.name,
    args: c.args,
    reached: r.reached,
    wallSeconds: r.wallSeconds,
    totalSeconds: r.totalSeconds,
    versions: r.reachedAtVersion ?? r.versions,
    // What the defaults chose, as the run's config records it (async: "auto" is the K the run picked).
    strategy: r.strategy,
    async: r.async ? { ...r.async, staleness: r.staleness } : undefined,
    curve: (r.metrics ?? []).map((m) => m.centralAccuracy ?? null),
    finalAccuracy: r.finalAccuracy,
    backends: r.agentBackends,
  });
}

const base = results[0];
console.log(`\nTime to ${(target * 100).toFixed(0)}% held-out accuracy, mnist-mlp, ${agents} agents (${partition}), ${Math.round(stragglers * agents)} of them ${slowdown}x slower, backend ${results[0].backends.join(',')}`);
console.log('config                   reached  versions  wall s   vs wait-for-all');
for (const r of results) {
  const ratio = r.reached && base.reached ? (r.wallSeconds / base.wallSeconds).toFixed(2) : 'n/a';
  console.log(`${r.config.padEnd(23)}  ${String(r.reached).padEnd(7)}  ${String(r.versions).padStart(8)}  ${r.wallSeconds.toFixed(1).padStart(6)}   ${ratio}`);
}
mkdirSync(path.join(here, 'results'), { recursive: true });
writeFileSync(path.join(here, 'results', quick ? 'async-quick.json' : 'async.json'), JSON.stringify({
  date: new Date().toISOString(), node: process.version, cpu: os.cpus()[0]?.model, cores: os.cpus().length,
  params: { target, agents, stragglers, slowdown, partition, maxRounds, asyncRounds, flags: process.argv.slice(2) }, results,
  ratios: Object.fromEntries(results.map((r) => [r.config, r.reached && base.reached ? r.wallSeconds / base.wallSeconds : null])),
}, null, 2));
