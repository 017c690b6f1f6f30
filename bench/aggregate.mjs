// Benchmark of StreamingFedAvg: fold / ingest+fold bandwidth vs memcpy, both kernels, a model-size sweep, and coordinator RSS flat in the number of updates.
//
// Run: npx tsc -b packages/coordinator && node --expose-gc bench/aggregate.mjs   (or: npm run bench:aggregate)
// Flags: --reps N (default 9)   --no-sweep (skip the size sweep)   --sizes 1,4,16,64,128 (MiB, the sweep's)
//        --clock cpu|wall (default cpu: this process's CPU time, which a busy shared machine disturbs far less)   --out FILE
// Internal: --rss-child UPDATES  (one RSS measurement; spawned by the main run, one process per figure)
//
// Everything is measured in one process run so the ratios compare like with like on the
// same (noisy, shared) machine; each figure is the median of --reps repetitions.

import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { StreamingFedAvg } from '../packages/coordinator/dist/strategy/aggregate.js';
import { DiskSpool } from '../packages/coordinator/dist/engine/update-spool.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const NUM_PARAMS = 1_663_370; // the mnist-cnn model
const UPDATES = 100;
const CHUNK = 1 << 20; // 1 MiB network chunks
const MODEL_BYTES = NUM_PARAMS * 4;

const args = process.argv.slice(2);
const flag = (name) => args.includes(name);
const option = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : dflt;
};

/** xorshift32 -> floats in [-1, 1): cheap, deterministic "update" data (Math.random would dominate the RSS runs). */
function fillRandom(f32, seed) {
  let s = seed >>> 0 || 1;
  for (let i = 0; i < f32.length; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    f32[i] = (s >>> 0) / 2147483648 - 1;
  }
  return f32;
}

// CPU time of this process (user + system, all threads) or wall time; the figures below are
// bytes per second of the chosen clock. The work is single-threaded and memory- or compute-bound,
// so on an idle machine the two agree; on a shared one, CPU time leaves out the time waiting for a core.
const CLOCK = process.argv.includes('--clock') ? process.argv[process.argv.indexOf('--clock') + 1] : 'cpu';
if (CLOCK !== 'cpu' && CLOCK !== 'wall') throw new Error(`--clock: cpu or wall, got ${CLOCK}`);
const now = () => {
  if (CLOCK === 'wall') return Number(process.hrtime.bigint()) / 1e9;
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};
const secondsSince = (t0) => now() - t0;
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
/** { name: median of its samples } for a { name: samples } record. */
const medians = (samples) => Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, median(v)]));
const gbps = (bytes, seconds) => bytes / seconds / 1e9;
const gc = () => globalThis.gc?.();

// -----------------------------------------------------------------------------------------
// Child mode: aggregate UPDATES updates, each generated chunk by chunk into a slot as the
// network would deliver it, and report peak RSS. One process per figure so peaks don't mix.

/**
 * Peak RSS of this process. Prefers /proc/self/status VmHWM: resourceUsage().maxRSS is NOT
 * usable in a spawned child on Linux, because ru_maxrss survives execve and so starts at the
 * RSS of the (large) parent the child was forked from.
 */
function peakRss() {
  try {
    const m = /^VmHWM:\s+(\d+)\s+kB/m.exec(readFileSync('/proc/self/status', 'utf8'));
    if (m) return { maxRssBytes: Number(m[1]) * 1024, maxRssSource: 'VmHWM' };
  } catch {
    /* not Linux */
  }
  return { maxRssBytes: process.resourceUsage().maxRSS * 1024, maxRssSource: 'resourceUsage().maxRSS' };
}

if (option('--rss-child', null) !== null) {
  const updates = Number(option('--rss-child', '0'));
  const agg = StreamingFedAvg.create(NUM_PARAMS, { slots: 2 });
  const chunk = new Uint8Array(CHUNK); // one reusable receive buffer, like a socket's
  const chunkF32 = new Float32Array(chunk.buffer);
  let sampledPeak = process.memoryUsage.rss();
  const baseline = sampledPeak;
  for (let u = 0; u < updates; u++) {
    const slot = await agg.acquire();
    for (let off = 0; off < MODEL_BYTES; off += CHUNK) {
      const len = Math.min(CHUNK, MODEL_BYTES - off);
      fillRandom(chunkF32, u * 7919 + off + 1);
      slot.write(off, chunk.subarray(0, len));
    }
    if (agg.firstNonFinite(slot) !== -1) throw new Error('generated a non-finite value');
    agg.fold(slot, 1 + (u % 50));
    agg.release(slot);
    sampledPeak = Math.max(sampledPeak, process.memoryUsage.rss());
  }
  const mean = agg.result();
  sampledPeak = Math.max(sampledPeak, process.memoryUsage.rss());
  process.stdout.write(
    JSON.stringify({
      updates,
      kernel: agg.kernel,
      count: agg.count,
      check: mean[0],
      baselineRssBytes: baseline,
      sampledPeakRssBytes: sampledPeak,
      ...peakRss(),
    }),
  );
  process.exit(0);
}

// -----------------------------------------------------------------------------------------
// Main mode.

const REPS = Number(option('--reps', '9'));
const OUT = option('--out', path.join(HERE, 'results', 'aggregate.json'));

/**
 * memcpy baseline: Float32Array.prototype.set of one model into dst, `times` times. With
 * srcA === srcB it is the plain copy (2-buffer working set, like folding one slot into acc);
 * with two sources alternating it has the 3-buffer working set of folding 2 slots alternately.
 */
function memcpyRep(dst, srcA, srcB, times) {
  const t0 = now();
  for (let k = 0; k < times; k++) dst.set(k & 1 ? srcB : srcA);
  return gbps(times * dst.byteLength, secondsSince(t0));
}

/**
 * One update through the engine's path: acquire a slot, write() it in CHUNK-byte chunks (each piece
 * checked right after it is copied in), validate, fold, release. `copyOnly`: the chunks copied in
 * through the view and nothing else (the copy's share of the path).
 */
async function fullPath(agg, src, weight, { validate = true, copyOnly = false } = {}) {
  const slot = await agg.acquire();
  const bytes = src.byteLength;
  const view = copyOnly ? new Uint8Array(slot.view.buffer, slot.view.byteOffset, bytes) : null;
  for (let off = 0; off < bytes; off += CHUNK) {
    const chunk = src.subarray(off, Math.min(off + CHUNK, bytes));
    if (view) view.set(chunk, off);
    else slot.write(off, chunk);
  }
  if (!copyOnly) {
    if (validate && agg.firstNonFinite(slot) !== -1) throw new Error('non-finite');
    agg.fold(slot, weight);
  }
  agg.release(slot);
}

/**
 * A spooled update folded at round end (durable runs): `pieces` is RunSpools.foldFromSpool, the file read piece by
 * piece into the aggregator's scratch and folded from there; `whole` is the path before, the file read whole into a
 * slot, then the slot folded. Files are in the page cache: this measures the copies and the fold, not the disk.
 */
async function spoolFold(agg, spool, file, weight, how) {
  if (how === 'pieces') {
    const reader = spool.open(file, agg.numParams * 4);
    try {
      agg.foldPieces(weight, (piece, off) => reader.read(piece, off));
    } finally {
      reader.close();
    }
    return;
  }
  const slot = await agg.acquire();
  spool.read(file, new Uint8Array(slot.view.buffer, slot.view.byteOffset, slot.view.byteLength));
  agg.fold(slot, weight);
  agg.release(slot);
}

/** GB/s of folding `times` updates alternately from slots a and b (weights from weightOf(k)), from a reset accumulator. */
function foldRep(agg, a, b, times, weightOf) {
  agg.reset(); // untimed; keeps the accumulator in a realistic range
  const t0 = now();
  for (let k = 0; k < times; k++) agg.fold(k & 1 ? b : a, weightOf(k));
  return gbps(times * agg.numParams * 4, secondsSince(t0));
}

/** GB/s of `times` updates through `step(k)` (fullPath or spoolFold of the k-th update), from a reset accumulator. */
async function pathRep(agg, times, step) {
  agg.reset();
  const t0 = now();
  for (let k = 0; k < times; k++) await step(k);
  return gbps(times * agg.numParams * 4, secondsSince(t0));
}

async function kernelFigures(kernel) {
  const agg = StreamingFedAvg.create(NUM_PARAMS, { kernel, slots: 2 });
  const weights = Array.from({ length: UPDATES }, (_, k) => 1 + ((k * 37) % 1000)); // example counts
  const dst = new Float32Array(NUM_PARAMS);
  const srcA = fillRandom(new Float32Array(NUM_PARAMS), 7);
  const srcB = fillRandom(new Float32Array(NUM_PARAMS), 8);
  const samples = { memcpy: [], memcpyAlt: [], fold: [], foldAlt: [], check: [], resultMs: [], ingestFold: [], ingestCheckFold: [] };

  // Phase 1 — update already in the slot: one slot folded repeatedly (working set acc + slot),
  // and two slots folded alternately (acc + 2 slots, what 2 concurrent uploads touch).
  const a = await agg.acquire();
  const b = await agg.acquire();
  fillRandom(a.view, 1);
  fillRandom(b.view, 2);
  const fold = (other) => foldRep(agg, a, other, UPDATES, (k) => weights[k]);
  const check = () => {
    const t0 = now();
    for (let k = 0; k < UPDATES; k++) if (agg.firstNonFinite(k & 1 ? b : a) !== -1) throw new Error('non-finite');
    return gbps(UPDATES * MODEL_BYTES, secondsSince(t0));
  };
  const result = () => {
    const t0 = now();
    agg.result();
    return secondsSince(t0) * 1000;
  };
  // Warm-up: lets V8 tier the wasm (Liftoff -> TurboFan) and the JS loops up before timing.
  fold(b);
  check();
  memcpyRep(dst, srcA, srcB, UPDATES);
  for (let r = 0; r < REPS; r++) {
    // Interleaved per repetition, so a noisy neighbour hurts all figures of a rep alike.
    samples.memcpy.push(memcpyRep(dst, srcA, srcA, UPDATES));
    samples.memcpyAlt.push(memcpyRep(dst, srcA, srcB, UPDATES));
    samples.fold.push(fold(a));
    samples.foldAlt.push(fold(b));
    samples.check.push(check());
    samples.resultMs.push(result());
  }
  agg.release(a);
  agg.release(b);

  // Phase 2 — what the coordinator does per update: lease a slot, hand it 1 MiB chunks (write()
  // keeps them and checks each piece as it arrives), validate, fold, release. Four distinct source
  // updates, more than the L3 holds for large models, so chunks do not come from cache-hot memory.
  const sources = [3, 4, 5, 6].map((seed) => new Uint8Array(fillRandom(new Float32Array(NUM_PARAMS), seed).buffer));
  const ingest = (validate) => pathRep(agg, UPDATES, (k) => fullPath(agg, sources[k & 3], weights[k], { validate }));
  await ingest(true);
  for (let r = 0; r < REPS; r++) {
    samples.memcpy.push(memcpyRep(dst, srcA, srcA, UPDATES));
    samples.ingestFold.push(await ingest(false));
    samples.ingestCheckFold.push(await ingest(true));
  }
  agg.dispose();

  const m = medians(samples);
  return {
    kernel,
    foldGBps: m.fold,
    foldAltGBps: m.foldAlt,
    ingestFoldGBps: m.ingestFold,
    ingestCheckFoldGBps: m.ingestCheckFold,
    checkGBps: m.check,
    memcpyGBps: m.memcpy,
    memcpyAltGBps: m.memcpyAlt,
    foldOverMemcpy: m.fold / m.memcpy,
    foldAltOverMemcpyAlt: m.foldAlt / m.memcpyAlt,
    ingestOverMemcpy: m.ingestFold / m.memcpy,
    ingestCheckOverMemcpy: m.ingestCheckFold / m.memcpy,
    resultMs: m.resultMs,
    samples,
  };
}

/**
 * By model size (wasm-simd): fold and the full per-update path against memcpy, all interleaved
 * within each repetition. fold: one resident slot folded into acc (acc + slot working set, like
 * memcpy's src + dst). Full path from 4 distinct source updates, as in phase 2 (write() checks each
 * piece as it copies, then fold: what every upload does). "copy" is the chunks copied into the slot
 * and nothing else: with fold, it bounds the path (two passes over the update: 1/(1/copy + 1/fold)).
 * "spool" columns: a durable run's round-end fold of 4 spooled files (see spoolFold).
 */
async function sizeSweep(sizes) {
  const rows = [];
  for (const mib of sizes) {
    const n = Math.round((mib * 2 ** 20) / 4);
    const agg = StreamingFedAvg.create(n, { kernel: 'wasm-simd', slots: 2 });
    const dst = new Float32Array(n);
    const src = fillRandom(new Float32Array(n), 3);
    const sources = [5, 6, 7, 8].map((seed) => new Uint8Array(fillRandom(new Float32Array(n), seed).buffer));
    const times = Math.max(4, Math.round((400 * 2 ** 20) / (n * 4))); // ~400 MiB of update per figure and rep
    const resident = await agg.acquire();
    fillRandom(resident.view, 1);
    const weightOf = (k) => 1 + k;
    const spoolDir = mkdtempSync(path.join(os.tmpdir(), 'fedge-bench-spool-'));
    const spool = new DiskSpool(spoolDir, false);
    const files = sources.map((b, i) => spool.write('bench', 1, `u${i}`, b));
    const s = { memcpy: [], fold: [], copy: [], path: [], spoolPieces: [], spoolWhole: [] };
    for (let r = -1; r < REPS; r++) {
      // r = -1 is warm-up (tiers the wasm and JS up); the order rotates so no figure always runs first
      const figures = [
        ['memcpy', async () => memcpyRep(dst, src, src, times)],
        ['fold', async () => foldRep(agg, resident, resident, times, weightOf)],
        ['copy', () => pathRep(agg, times, (k) => fullPath(agg, sources[k & 3], weightOf(k), { copyOnly: true }))],
        ['path', () => pathRep(agg, times, (k) => fullPath(agg, sources[k & 3], weightOf(k)))],
        ['spoolPieces', () => pathRep(agg, times, (k) => spoolFold(agg, spool, files[k & 3], weightOf(k), 'pieces'))],
        ['spoolWhole', () => pathRep(agg, times, (k) => spoolFold(agg, spool, files[k & 3], weightOf(k), 'whole'))],
      ];
      const rot = ((r % figures.length) + figures.length) % figures.length;
      for (const [name, run] of [...figures.slice(rot), ...figures.slice(0, rot)]) {
        const v = await run();
        if (r >= 0) s[name].push(v);
      }
    }
    agg.release(resident);
    agg.dispose();
    rmSync(spoolDir, { recursive: true, force: true });
    gc();
    const m = medians(s);
    rows.push({
      modelMiB: mib,
      updatesPerRep: times,
      memcpyGBps: m.memcpy,
      foldGBps: m.fold,
      copyGBps: m.copy,
      pathGBps: m.path,
      spoolPiecesGBps: m.spoolPieces,
      spoolWholeGBps: m.spoolWhole,
      foldOverMemcpy: m.fold / m.memcpy,
      copyOverMemcpy: m.copy / m.memcpy,
      twoPassBoundOverMemcpy: 1 / (1 / m.copy + 1 / m.fold) / m.memcpy,
      pathOverMemcpy: m.path / m.memcpy,
      spoolPiecesOverMemcpy: m.spoolPieces / m.memcpy,
      spoolWholeOverMemcpy: m.spoolWhole / m.memcpy,
      samples: s,
    });
  }
  return rows;
}

function rssChild(updates) {
  const r = spawnSync(process.execPath, [fileURLToPath(import.meta.url), '--rss-child', String(updates)], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`rss child (${updates}) failed: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

function machine() {
  const cpus = os.cpus();
  let l3 = null;
  try {
    l3 = readFileSync('/sys/devices/system/cpu/cpu0/cache/index3/size', 'utf8').trim();
  } catch {
    /* not Linux or not exposed */
  }
  return {
    cpu: cpus[0]?.model ?? 'unknown',
    cores: cpus.length,
    l3Cache: l3,
    memoryGiB: +(os.totalmem() / 2 ** 30).toFixed(1),
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    node: process.version,
    v8: process.versions.v8,
  };
}

const fmt = (x, d = 2) => (typeof x === 'number' ? x.toFixed(d) : String(x));
function table(headers, rows) {
  const cells = [headers, ...rows.map((r) => r.map((c) => String(c)))];
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => r[i].length)));
  const line = (r) => '| ' + r.map((c, i) => c.padStart(widths[i])).join(' | ') + ' |';
  return [line(cells[0]), '|' + widths.map((w) => '-'.repeat(w + 2)).join('|') + '|', ...cells.slice(1).map(line)].join('\n');
}

const started = new Date();
console.log(`StreamingFedAvg benchmark: ${UPDATES} updates x ${NUM_PARAMS.toLocaleString('en')} float32 params (${(MODEL_BYTES / 2 ** 20).toFixed(2)} MiB), median of ${REPS} reps`);
const info = machine();
console.log(`${info.cpu}, ${info.cores} cores, L3 ${info.l3Cache ?? '?'}, node ${info.node}, clock ${CLOCK}, load ${os.loadavg()[0].toFixed(1)}\n`);

const kernels = [];
for (const kernel of ['wasm-simd', 'js']) {
  kernels.push(await kernelFigures(kernel));
  gc();
}
console.log(
  table(
    ['kernel', 'fold GB/s', 'fold 2-slot GB/s', 'ingest+fold GB/s', 'ingest+check+fold GB/s', 'check GB/s', 'result() ms'],
    kernels.map((k) => [k.kernel, fmt(k.foldGBps), fmt(k.foldAltGBps), fmt(k.ingestFoldGBps), fmt(k.ingestCheckFoldGBps), fmt(k.checkGBps), fmt(k.resultMs, 1)]),
  ),
);
console.log('');
console.log(
  table(
    ['kernel', 'memcpy GB/s', 'memcpy 2-src GB/s', 'fold/memcpy', 'fold 2-slot/memcpy 2-src', 'ingest/memcpy', 'ingest+check/memcpy'],
    kernels.map((k) => [k.kernel, fmt(k.memcpyGBps), fmt(k.memcpyAltGBps), fmt(k.foldOverMemcpy, 3), fmt(k.foldAltOverMemcpyAlt, 3), fmt(k.ingestOverMemcpy, 3), fmt(k.ingestCheckOverMemcpy, 3)]),
  ),
);
console.log('GB/s = 10^9 bytes of update per second. memcpy measured in the same reps as each kernel. Goal: fold/memcpy >= 0.8.\n');

let sweep = null;
if (!flag('--no-sweep')) {
  const sizes = option('--sizes', '1,4,16,64,128').split(',').map(Number);
  sweep = await sizeSweep(sizes);
  console.log('by model size (wasm-simd), GB/s of update and ratio to memcpy in the same reps; full path = acquire, 1 MiB chunks in, check, fold, release:');
  console.log('  path = write() copies each chunk into the slot and checks each piece as it lands, then fold   copy = the chunks copied in, nothing else   sources: 4 distinct updates');
  console.log('  spool pieces = a spooled update read piece by piece into the scratch and folded (round end of a durable run)   spool whole = read whole into a slot, then folded (before)');
  console.log(
    table(
      ['model MiB', 'memcpy', 'fold', 'copy', 'path', 'spool pieces', 'spool whole', 'fold/memcpy', 'copy/memcpy', 'two-pass bound', 'path/memcpy', 'spool pieces/memcpy', 'spool whole/memcpy'],
      sweep.map((r) => [fmt(r.modelMiB), fmt(r.memcpyGBps), fmt(r.foldGBps), fmt(r.copyGBps), fmt(r.pathGBps), fmt(r.spoolPiecesGBps), fmt(r.spoolWholeGBps), fmt(r.foldOverMemcpy, 3), fmt(r.copyOverMemcpy, 3), fmt(r.twoPassBoundOverMemcpy, 3), fmt(r.pathOverMemcpy, 3), fmt(r.spoolPiecesOverMemcpy, 3), fmt(r.spoolWholeOverMemcpy, 3)]),
    ),
  );
  console.log('two-pass bound = 1/(1/copy + 1/fold) / memcpy: the path copies the update in and folds it, two passes at those speeds.');
  console.log('Goals (issue 16): fold/memcpy >= 0.8 and full path/memcpy >= 0.5 at every size (not met: the path is two passes, each about a memcpy; see bench/README.md).\n');
}

const rss10 = rssChild(10);
const rss100 = rssChild(100);
const diffBytes = rss100.maxRssBytes - rss10.maxRssBytes;
const rss = {
  kernel: rss10.kernel,
  updates10: rss10,
  updates100: rss100,
  maxRssDiffBytes: diffBytes,
  maxRssDiffModelSizes: diffBytes / MODEL_BYTES,
  sampledRssDiffModelSizes: (rss100.sampledPeakRssBytes - rss10.sampledPeakRssBytes) / MODEL_BYTES,
};
const mib = (b) => (b / 2 ** 20).toFixed(1);
console.log(`peak RSS (${rss.kernel}, separate processes, each update generated chunk by chunk into a slot):`);
console.log(
  table(
    [`updates`, `peak RSS MiB (${rss10.maxRssSource})`, 'sampled peak rss MiB', 'rss before first update MiB'],
    [rss10, rss100].map((r) => [r.updates, mib(r.maxRssBytes), mib(r.sampledPeakRssBytes), mib(r.baselineRssBytes)]),
  ),
);
console.log(`100 vs 10 updates: ${mib(diffBytes)} MiB = ${fmt(rss.maxRssDiffModelSizes)} model sizes (goal: within 3)`);

const out = {
  benchmark: 'aggregate',
  date: started.toISOString(),
  machine: info,
  config: { numParams: NUM_PARAMS, modelBytes: MODEL_BYTES, updates: UPDATES, chunkBytes: CHUNK, reps: REPS, slots: 2, clock: CLOCK, loadAverage: os.loadavg() },
  units: { throughput: `GB/s = 1e9 bytes of update per second of ${CLOCK === 'cpu' ? 'process CPU time' : 'wall time'}`, rss: 'bytes' },
  kernels,
  sizeSweep: sweep,
  rss,
};
mkdirSync(path.dirname(OUT), { recursive: true });
writeFileSync(OUT, JSON.stringify(out, null, 2) + '\n');
console.log(`\nwrote ${path.relative(process.cwd(), OUT)}`);
