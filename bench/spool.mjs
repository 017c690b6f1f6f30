#!/usr/bin/env node
/**
 * Spool bench (issue 16): accepted updates made durable per second, and how long the event loop is blocked meanwhile.
 *   - file: one update per file, written synchronously (write, fsync, rename, directory fsync): the spool before segments
 *   - segment: appended to the round's segment asynchronously, group-committed (one fdatasync per batch)
 *   - scratch: the segment without syncs (a non-durable run's robust round)
 * C uploads commit at once (C = --concurrency, the agents whose updates arrive together); each case writes --updates
 * updates of --params float32 values into a fresh directory under --dir (default: the OS temp dir; point it at the
 * data directory's disk to measure that disk).
 *
 *   npx tsc -b && node bench/spool.mjs
 *   node bench/spool.mjs --params 101770 --updates 300 --concurrency 1,16,64 --dir /var/lib/fedge
 *
 * Writes bench/results/spool.json.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const { DiskSpool } = await import(pathToFileURL(path.join(ROOT, 'packages/coordinator/dist/engine/update-spool.js')).href);

const args = Object.fromEntries(process.argv.slice(2).reduce((acc, a, i, all) => (a.startsWith('--') ? [...acc, [a.slice(2), all[i + 1]]] : acc), []));
const PARAMS = Number(args.params ?? 101_770);
const UPDATES = Number(args.updates ?? 300);
const CONCURRENCY = String(args.concurrency ?? '1,16,64').split(',').map(Number);
const DIR = path.resolve(args.dir ?? os.tmpdir());
const OUT = path.resolve(args.out ?? path.join(ROOT, 'bench/results/spool.json'));
const r1 = (x) => Math.round(x * 10) / 10;

const payload = new Uint8Array(Float32Array.from({ length: PARAMS }, (_, i) => Math.sin(i)).buffer);

/** Runs UPDATES commits, C at a time (a new one starts as one ends), as the intake would. */
async function measure(mode, c) {
  const dir = mkdtempSync(path.join(DIR, 'fedge-spool-bench-'));
  const spool = new DiskSpool(dir, mode !== 'scratch');
  const write = mode === 'file' ? async (k) => spool.write('run', 1, `agent-${k}`, payload) : (k) => spool.append('run', 1, `agent-${k}`, payload);
  const lag = monitorEventLoopDelay({ resolution: 1 });
  lag.enable();
  const latencies = [];
  let next = 0;
  const t0 = performance.now();
  await Promise.all(Array.from({ length: c }, async () => {
    while (next < UPDATES) {
      const k = next++;
      const s = performance.now();
      await write(k);
      latencies.push(performance.now() - s);
      // One turn of the loop between commits, as between two uploads' messages.
      await new Promise((r) => setImmediate(r));
    }
  }));
  const seconds = (performance.now() - t0) / 1000;
  lag.disable();
  spool.removeRound('run', 1);
  await new Promise((r) => setTimeout(r, 20));
  rmSync(dir, { recursive: true, force: true });
  latencies.sort((a, b) => a - b);
  return {
    mode, concurrency: c, updates: UPDATES, params: PARAMS,
    updatesPerSecond: r1(UPDATES / seconds),
    mibPerSecond: r1((UPDATES * payload.byteLength) / seconds / 2 ** 20),
    p50AckMs: r1(latencies[Math.floor(latencies.length / 2)]),
    p99AckMs: r1(latencies[Math.floor(latencies.length * 0.99)]),
    maxLoopBlockMs: r1(lag.max / 1e6),
  };
}

const rows = [];
for (const c of CONCURRENCY) for (const mode of ['file', 'segment', 'scratch']) {
  const row = await measure(mode, c);
  rows.push(row);
  console.log(JSON.stringify(row));
}
const cols = ['mode', 'concurrency', 'updatesPerSecond', 'mibPerSecond', 'p50AckMs', 'p99AckMs', 'maxLoopBlockMs'];
console.log(cols.join('\t'));
for (const r of rows) console.log(cols.map((k) => r[k]).join('\t'));
mkdirSync(path.dirname(OUT), { recursive: true });
writeFileSync(OUT, JSON.stringify({ date: new Date().toISOString(), dir: DIR, node: process.version, cpus: os.cpus().length, params: PARAMS, updateBytes: payload.byteLength, rows }, null, 2) + '\n');
console.log(`wrote ${path.relative(process.cwd(), OUT)}`);
