#!/usr/bin/env node
/**
 * Compression bench: bytes on the wire (uplink and downlink, relative to dense float32) against accuracy, per
 * compression pipeline, at a fixed number of rounds with the same seeds.
 *
 * Each configuration is a real `fedge demo` (a coordinator and N agent processes over gRPC on loopback) on the
 * label-shard non-IID split of the bundled MNIST digits; bytes are what the coordinator received (updates) and sent
 * (model downloads) over the whole run, divided by what the same updates and downloads weigh as dense float32; accuracy
 * is the central evaluation on its 1,000 held-out digits after every round.
 *
 *   npx tsc -b && node bench/compression.mjs                           # mnist-cnn, 10 agents, 20 rounds, all configs
 *   node bench/compression.mjs --model mnist-mlp --rounds 30 --agents 4 --only float32,topk0.1%+q8
 *   node bench/compression.mjs --downlink delta+fp16                   # downlink pipeline of the compressed configs
 *
 * Writes bench/results/compression.json (or --out FILE).
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
const MODEL = args.model ?? 'mnist-cnn';
const ROUNDS = Number(args.rounds ?? 20);
const AGENTS = Number(args.agents ?? 10);
const PARTITION = args.partition ?? 'shards';
const SEED = Number(args.seed ?? 42);
// "off": full float32 model downloads in every configuration (isolates the uplink's effect on accuracy).
const DOWNLINK = args.downlink === 'off' ? undefined : (args.downlink ?? 'delta+q8');
const OUT = args.out ?? path.join(ROOT, 'bench/results/compression.json');

/** name -> the run config's compression block (float32: none at all, the baseline both directions). */
const CONFIGS = {
  float32: undefined,
  fp16: { uplink: 'fp16', downlink: DOWNLINK },
  int8: { uplink: 'int8', downlink: DOWNLINK },
  q4: { uplink: 'q4', downlink: DOWNLINK },
  'topk1%': { uplink: 'topk:0.01', downlink: DOWNLINK },
  'topk1%+q8': { uplink: 'topk:0.01+q8', downlink: DOWNLINK },
  'topk0.1%+q8': { uplink: 'topk:0.001+q8', downlink: DOWNLINK },
  // DGC's momentum correction and warm-up (density 17.8%, 3.2%, 0.56%, then 0.1%). Agents train with plain SGD, so
  // the correction adds momentum rather than preserving the optimizer's: 0.5, not DGC's 0.9 (a 10x effective step).
  'topk0.1%+q8+mc+wu': { uplink: 'topk:0.001+q8', downlink: DOWNLINK, momentum: Number(args.momentum ?? 0.5), warmupRounds: Number(args.warmup ?? 3) },
};
// --codecs (the flag of the earlier version of this bench): none is float32, other names as above.
const pick = args.only ?? args.codecs;
const ONLY = pick ? String(pick).split(',').map((c) => (c === 'none' ? 'float32' : c)) : Object.keys(CONFIGS);
for (const name of ONLY) if (!(name in CONFIGS)) throw new Error(`--only: unknown config "${name}"; known: ${Object.keys(CONFIGS).join(', ')}`);

const results = [];
for (const name of ONLY) {
  const compression = CONFIGS[name];
  const dir = mkdtempSync(path.join(tmpdir(), 'fedge-bench-compression-'));
  const config = path.join(dir, 'run.json');
  writeFileSync(config, JSON.stringify(compression ? { compression } : {}));
  const argv = [FEDGE, 'demo', '--model', MODEL, '--agents', String(AGENTS), '--rounds', String(ROUNDS), '--partition', PARTITION, '--seed', String(SEED),
    '--config', config, '--data-dir', dir, '--format', 'json'];
  process.stderr.write(`${new Date().toISOString()} ${name}: ${JSON.stringify(compression ?? {})}: fedge ${argv.slice(1).join(' ')}\n`);
  const r = spawnSync(process.execPath, argv, { encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.status !== 0) {
    process.stderr.write(r.stderr.slice(-4000));
    process.stderr.write(`${name}: fedge demo exited with ${r.status}; skipped\n`);
    results.push({ config: name, compression: compression ?? null, error: `exit ${r.status}` });
    continue;
  }
  const out = JSON.parse(r.stdout.trim().split('\n').at(-1));
  const acc = out.metrics.map((m) => m.centralAccuracy ?? 0);
  results.push({
    config: name,
    compression: compression ?? null,
    uplinkRatio: out.uplinkRatio,
    downlinkRatio: out.downlinkRatio,
    uplinkBytes: out.uplinkBytes,
    downlinkBytes: out.downlinkBytes,
    accuracy: acc,
    finalAccuracy: acc.at(-1),
    bestAccuracy: Math.max(...acc),
    rounds: out.rounds,
    backend: out.backend,
    wallSeconds: out.totalSeconds ?? out.wallSeconds,
  });
  process.stderr.write(`  final ${acc.at(-1)?.toFixed(4)}, uplink ${out.uplinkRatio?.toPrecision(3)}x, downlink ${out.downlinkRatio?.toPrecision(3)}x, ${out.totalSeconds}s\n`);
  // Partial results survive a bench cut short.
  save();
}
save();

const base = results.find((x) => x.config === 'float32' && !x.error);
const pad = (s, n) => String(s).padEnd(n);
console.log(`\n${MODEL}, ${AGENTS} agents, ${PARTITION} split, ${ROUNDS} rounds, seed ${SEED}; ratios = bytes on the wire / dense float32 over the run`);
console.log(`${pad('config', 20)}${pad('uplink', 12)}${pad('(smaller)', 11)}${pad('downlink', 10)}${pad('final acc', 11)}${pad('vs float32', 12)}${pad('best acc', 10)}wall s`);
for (const x of results) {
  if (x.error) {
    console.log(`${pad(x.config, 20)}${x.error}`);
    continue;
  }
  const d = base ? ((x.finalAccuracy - base.finalAccuracy) * 100).toFixed(2) : 'n/a';
  console.log(
    `${pad(x.config, 20)}${pad(`${x.uplinkRatio.toPrecision(3)}x`, 12)}${pad(`${Math.round(1 / x.uplinkRatio)}x`, 11)}${pad(`${x.downlinkRatio.toPrecision(3)}x`, 10)}` +
      `${pad(x.finalAccuracy.toFixed(4), 11)}${pad(`${d} pt`, 12)}${pad(x.bestAccuracy.toFixed(4), 10)}${x.wallSeconds?.toFixed?.(1) ?? ''}`,
  );
}
console.log(`\nwrote ${path.relative(process.cwd(), OUT)}`);

function save() {
  mkdirSync(path.dirname(OUT), { recursive: true });
  writeFileSync(OUT, JSON.stringify({ date: new Date().toISOString(), node: process.version, cpu: cpus()[0]?.model, cores: cpus().length, model: MODEL, rounds: ROUNDS, agents: AGENTS, partition: PARTITION, seed: SEED, downlink: DOWNLINK, results }, null, 2));
}
