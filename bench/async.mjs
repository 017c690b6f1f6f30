// Stragglers benchmark: wall time to a target accuracy with 30% of agents 10x slower (MNIST label shards, mnist-mlp),
// for sync FedAvg waiting for everyone, sync with over-selection (close on the first results needed), and async FedBuff.
// Prints a table and writes bench/results/async.json. Usage: node bench/async.mjs [--target 0.95] [--agents 10] [--quick]
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
const quick = process.argv.includes('--quick');
const target = Number(arg('target', quick ? '0.85' : '0.9'));
const agents = Number(arg('agents', '10'));
const stragglers = Number(arg('stragglers', '0.3'));
const slowdown = Number(arg('slowdown', '10'));
const partition = arg('partition', 'shards');
const epochs = arg('epochs', '1');
const lr = arg('lr', '0.1');
const maxRounds = Number(arg('max-rounds', quick ? '15' : '40'));

const common = ['demo', '--agents', String(agents), '--stragglers', String(stragglers), '--slowdown', String(slowdown), '--partition', partition,
  '--model', 'mnist-mlp', '--epochs', epochs, '--lr', lr, '--target-accuracy', String(target), '--seed', '7', '--format', 'json'];
const fast = Math.max(1, agents - Math.round(stragglers * agents));
const configs = [
  { name: 'sync, wait for all', args: ['--rounds', String(maxRounds)] },
  // Invite everyone, close on the first `fast` results: the over-selection factor is agents/fast - 1.
  { name: 'sync, over-selection', args: ['--rounds', String(maxRounds), '--over-selection', String(agents / fast - 1 + 1e-9)] },
  // The same, but late results are folded into the next round instead of dropped: stragglers' labels stay in.
  { name: 'sync, over-sel + late', args: ['--rounds', String(maxRounds), '--over-selection', String(agents / fast - 1 + 1e-9), '--late-results', 'next-round', '--staleness', arg('late-staleness', 'constant')] },
  // Versions from every K updates (default K = agents, no staleness discount: measured best on label shards,
  // where the stragglers hold labels nobody else has); async steps are smaller, so allow more of them.
  { name: 'async FedBuff', args: ['--mode', 'async', '--rounds', String(maxRounds * 4), '--buffer-size', arg('buffer-size', String(agents)), '--staleness', arg('staleness', 'constant')] },
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
  params: { target, agents, stragglers, slowdown, partition, epochs, lr, maxRounds }, results,
  ratios: Object.fromEntries(results.map((r) => [r.config, r.reached && base.reached ? r.wallSeconds / base.wallSeconds : null])),
}, null, 2));
