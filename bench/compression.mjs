#!/usr/bin/env node
/**
 * Compression bench: upload bytes vs accuracy for each update codec, with and without error feedback.
 *
 * Each configuration is a real `fedge demo` (a coordinator and N agent processes over gRPC on loopback) on the
 * label-shard non-IID split of the bundled MNIST digits; bytes are what the coordinator received per round, accuracy
 * is the central evaluation on its 1,000 held-out digits after every round.
 *
 *   npx tsc -b && node bench/compression.mjs                       # defaults below (~8 min on 2 cores)
 *   node bench/compression.mjs --rounds 30 --agents 6 --codecs none,int8,topk:0.01
 *
 * Writes bench/results/compression.json.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const FEDGE = path.join(ROOT, 'packages/coordinator/dist/cli/main.js');
const args = Object.fromEntries(
  process.argv.slice(2).reduce((acc, a, i, all) => (a.startsWith('--') ? [...acc, [a.slice(2), all[i + 1]]] : acc), []),
);
const ROUNDS = Number(args.rounds ?? 20);
const AGENTS = Number(args.agents ?? 4);
const PARTITION = args.partition ?? 'shards';
// "-noef": the same codec without error feedback.
const CODECS = String(args.codecs ?? 'none,int8,topk:0.1,topk:0.01,topk:0.01-noef').split(',');
const TARGET = Number(args.target ?? 0.9);

const results = [];
for (const spec of CODECS) {
  const noEf = spec.endsWith('-noef');
  const codec = spec.replace(/-noef$/, '');
  const dataDir = mkdtempSync(path.join(tmpdir(), 'fedge-bench-compression-'));
  const argv = [FEDGE, 'demo', '--agents', String(AGENTS), '--rounds', String(ROUNDS), '--partition', PARTITION, '--epochs', '1',
    '--compression', codec, ...(noEf ? ['--no-error-feedback'] : []), '--data-dir', dataDir, '--format', 'json'];
  process.stderr.write(`${spec}: fedge ${argv.slice(1).join(' ')}\n`);
  const r = spawnSync(process.execPath, argv, { encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.status !== 0) {
    process.stderr.write(r.stderr);
    throw new Error(`${spec}: fedge demo exited with ${r.status}`);
  }
  const out = JSON.parse(r.stdout.trim().split('\n').at(-1));
  const metrics = out.metrics;
  const acc = metrics.map((m) => m.centralAccuracy ?? 0);
  const bytesPerUpdate = metrics[0].bytesReceived / metrics[0].completed;
  const reached = acc.findIndex((a) => a >= TARGET);
  results.push({
    codec: spec,
    errorFeedback: codec !== 'none' && !noEf,
    bytesPerUpdate,
    accuracy: acc,
    finalAccuracy: acc.at(-1),
    bestAccuracy: Math.max(...acc),
    roundsToTarget: reached >= 0 ? reached + 1 : null,
    wallSeconds: out.wallSeconds,
  });
}
const float32 = results.find((x) => x.codec === 'none')?.bytesPerUpdate ?? results[0].bytesPerUpdate;
for (const x of results) x.bytesRatio = x.bytesPerUpdate / float32;

const pad = (s, n) => String(s).padEnd(n);
console.log(`\nmnist-mlp, ${AGENTS} agents, ${PARTITION} split, ${ROUNDS} rounds, 1 local epoch; bytes = one agent's upload per round`);
console.log(`${pad('codec', 18)}${pad('error fb', 10)}${pad('bytes/update', 14)}${pad('vs float32', 12)}${pad('final acc', 11)}${pad('best acc', 10)}${pad(`rounds to ${TARGET}`, 15)}wall s`);
for (const x of results)
  console.log(
    `${pad(x.codec, 18)}${pad(x.errorFeedback ? 'yes' : 'no', 10)}${pad(Math.round(x.bytesPerUpdate), 14)}${pad(`${x.bytesRatio.toFixed(3)}x`, 12)}` +
      `${pad(x.finalAccuracy.toFixed(4), 11)}${pad(x.bestAccuracy.toFixed(4), 10)}${pad(x.roundsToTarget ?? 'not reached', 15)}${x.wallSeconds.toFixed(1)}`,
  );
mkdirSync(path.join(ROOT, 'bench/results'), { recursive: true });
const file = path.join(ROOT, 'bench/results/compression.json');
writeFileSync(file, JSON.stringify({ date: new Date().toISOString(), node: process.version, cpu: cpus()[0]?.model, cores: cpus().length, rounds: ROUNDS, agents: AGENTS, partition: PARTITION, target: TARGET, results }, null, 2));
console.log(`\nwrote ${path.relative(process.cwd(), file)}`);
