#!/usr/bin/env node
/**
 * What data-drift tracking costs the serving path (issue 15): p50/p99 latency of KServe v2 requests at batch 1 over
 * real HTTP (keep-alive) with drift tracking on vs off, the tracker's own time per request, and memory per tracked
 * feature. Two served models: a tabular one (30 numeric features with the fleet's z-score preprocessing in the graph,
 * binary output: 30 features binned per request) and MNIST's mlp (784 pixels pooled into one feature: the most values
 * binned per request). On and off alternate request by request, so both see the same machine load.
 *
 *   node bench/drift.mjs [--iters 4000] [--window 1000] [--out bench/results/drift.json]
 *   node bench/drift.mjs --smoke          (bench:smoke: a few requests, figures meaningless)
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as ml from '@fedge/ml';

const arg = (k, d) => {
  const i = process.argv.indexOf(k);
  return i > 0 ? process.argv[i + 1] : d;
};
const SMOKE = process.argv.includes('--smoke');
const ITERS = Number(arg('--iters', SMOKE ? 40 : 4000));
const WINDOW = Number(arg('--window', 1000));
const OUT = arg('--out', 'bench/results/drift.json');

const { ModelSlot, InferenceServer } = await import('../packages/edge-agent/dist/serving/index.js');
const { addInferObserver } = await import('../packages/edge-agent/dist/serving/infer-core.js');
const { DriftTracker } = await import('../packages/edge-agent/dist/drift/tracker.js');
const { LiveWindow } = await import('../packages/edge-agent/dist/drift/live-window.js');
const { binsOf, driftSpec } = await import('@fedge/proto');

await ml.initBackend('cpu');
const pct = (a, p) => a[Math.min(a.length - 1, Math.floor(p * a.length))];

/** A tabular binary classifier over 30 numeric columns, exported with the preprocessing (raw columns in). */
function tabularCase() {
  const F = 30;
  const features = Array.from({ length: F }, (_, i) => ({ name: `f${i}`, kind: 'numeric', shift: 10 * i, scale: 1 + i / 10, mean: 10 * i }));
  const payload = {
    task: { type: 'binary', loss: 'binary-crossentropy', optimizer: { name: 'adam', learningRate: 0.01 }, metrics: ['accuracy'], outputs: 1 },
    preprocessing: { normalization: 'zscore', features, targets: [{ name: 'y', kind: 'numeric' }], inputWidth: F },
  };
  const m = ml.tf.sequential({ layers: [ml.tf.layers.dense({ inputShape: [F], units: 16, activation: 'relu' }), ml.tf.layers.dense({ units: 1, activation: 'sigmoid' })] });
  const onnx = ml.exportOnnx(ml.modelToBlob(m), { preprocessing: payload.preprocessing, task: payload.task }).bytes;
  m.dispose();
  let k = 0;
  const body = () => {
    k++;
    const data = features.map((f, i) => f.shift + f.scale * Math.sin(k * 0.7 + i));
    return JSON.stringify({ inputs: [{ name: 'numeric', shape: [1, F], datatype: 'FP32', data }] });
  };
  return { name: 'tabular-30', features: F, onnx, payload, body };
}

/** MNIST's mlp without a task payload (legacy): the 784 pixels are one pooled feature. */
function mnistCase() {
  const m = ml.createBuiltinModel('mnist-mlp', 1);
  const onnx = ml.exportOnnx(ml.modelToBlob(m), { quantize: 'none' }).bytes;
  m.dispose();
  const test = ml.loadMnist().test;
  let k = 0;
  const body = () => {
    const r = k++ % 1000;
    return JSON.stringify({ inputs: [{ name: 'input', shape: [1, 784], datatype: 'FP32', data: Array.from(test.x.subarray(r * 784, (r + 1) * 784)) }] });
  };
  return { name: 'mnist-mlp-784-pooled', features: 1, onnx, payload: undefined, body };
}

async function run(c) {
  const slot = new ModelSlot('m');
  await slot.load(c.onnx, '1', { run: 'run-bench' });
  const server = new InferenceServer(slot, { maxBodyBytes: 1 << 20, maxBatch: 64 });
  const { port } = await server.listen('127.0.0.1', 0);
  const url = `http://127.0.0.1:${port}/v2/models/m/infer`;
  const tracker = new DriftTracker({ window: WINDOW, payloadOf: () => c.payload, ownProfile: () => undefined });
  // Pre-built bodies: the client's JSON work is not in the timing.
  const bodies = Array.from({ length: 500 }, () => c.body());
  let b = 0;
  const once = async () => {
    const t = process.hrtime.bigint();
    const r = await fetch(url, { method: 'POST', body: bodies[b++ % bodies.length], headers: { 'content-type': 'application/json' } });
    await r.arrayBuffer();
    if (r.status !== 200) throw new Error(`infer: HTTP ${r.status}`);
    return Number(process.hrtime.bigint() - t) / 1e3;
  };
  for (let i = 0; i < (SMOKE ? 5 : 300); i++) await once();
  const lat = { off: [], on: [] };
  const observer = (m, _n, inputs, outputs, batch) => tracker.observe(m, inputs, outputs, batch);
  // On and off alternate request by request (the observer added and removed around each "on" request), so both
  // modes see the same machine load; a shared machine's load swings would otherwise dominate the difference.
  for (let i = 0; i < 2 * ITERS; i++) {
    const on = i % 2 === 1;
    const stop = on ? addInferObserver(observer) : undefined;
    lat[on ? 'on' : 'off'].push(await once());
    stop?.();
  }
  // The tracker alone: observe() per request and the once-a-second statistics, on the requests' decoded form.
  const m = slot.acquire();
  const decoded = bodies.slice(0, 100).map((x) => JSON.parse(x).inputs.map((inp) => ({ ...inp, values: inp.data, where: 'bench' })));
  const out = [{ name: 'o', datatype: 'FP32', shape: [1, 1], data: new Float32Array([0.7]) }];
  const n = SMOKE ? 200 : 20000;
  let t = process.hrtime.bigint();
  for (let i = 0; i < n; i++) tracker.observe(m, decoded[i % decoded.length], out, 1);
  const observeUs = Number(process.hrtime.bigint() - t) / 1e3 / n;
  // A fleet reference for every feature, so the statistics step computes PSI and KS for all of them.
  const spec = driftSpec(c.payload);
  tracker.setFleetReference({ runId: 'run-bench', key: 'k', agents: 1, profile: { examples: 1000, features: spec.features.map((f) => ({ feature: f.feature, counts: new Array(binsOf(f)).fill(100) })) } });
  t = process.hrtime.bigint();
  const reps = SMOKE ? 5 : 200;
  for (let i = 0; i < reps; i++) {
    tracker.observe(m, decoded[i % decoded.length], out, 1); // a new example invalidates the cached section
    tracker.section();
  }
  const sectionUs = Number(process.hrtime.bigint() - t) / 1e3 / reps;
  slot.release(m);
  await server.close();
  await slot.close();
  for (const k of ['off', 'on']) lat[k].sort((x, y) => x - y);
  const row = (k) => ({ p50us: +pct(lat[k], 0.5).toFixed(1), p99us: +pct(lat[k], 0.99).toFixed(1), requests: lat[k].length });
  const off = row('off');
  const on = row('on');
  return {
    model: c.name, trackedFeatures: c.features, window: WINDOW, off, on,
    overheadP50Pct: +((100 * (on.p50us - off.p50us)) / off.p50us).toFixed(2),
    overheadP99Pct: +((100 * (on.p99us - off.p99us)) / off.p99us).toFixed(2),
    observeUsPerRequest: +observeUs.toFixed(2),
    statisticsUsPerCompute: +sectionUs.toFixed(1),
    windowBytesPerFeature: Math.round(tracker.bytesPerFeature),
  };
}

/** Array-buffer bytes (the windows' rings are typed arrays) of windows over F features, divided by F. */
function memoryPerFeature(kind, F) {
  const features = Array.from({ length: F }, (_, i) => (kind === 'raw' ? { feature: `r${i}`, kind: 'raw', edges: [0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1] } : { feature: `f${i}`, kind: 'numeric', edges: [-2, -1.5, -1, -0.5, 0, 0.5, 1, 1.5, 2] }));
  const m0 = process.memoryUsage().arrayBuffers;
  const w = new LiveWindow(features, WINDOW);
  const measured = (process.memoryUsage().arrayBuffers - m0) / F;
  // Computed: the ring plus the counts array (8 bytes a bin); measured: the rings' array buffers alone.
  return { kind, features: F, window: WINDOW, computedBytesPerFeature: Math.round(w.bytesPerFeature), measuredRingBytesPerFeature: Math.round(measured) };
}

const results = { machine: { cpus: os.cpus().length, cpu: os.cpus()[0]?.model, node: process.version, loadavg: os.loadavg().map((x) => +x.toFixed(1)) }, iters: ITERS, cases: [], memory: [] };
for (const c of [tabularCase(), mnistCase()]) results.cases.push(await run(c));
results.memory.push(memoryPerFeature('numeric', SMOKE ? 10 : 1000), memoryPerFeature('raw', SMOKE ? 10 : 200));

console.log(`drift tracking on the serving path: batch 1, KServe v2 JSON over HTTP, window ${WINDOW}, ${ITERS} requests per mode (load ${results.machine.loadavg.join(' ')})`);
console.log(['model', 'features', 'p50 off us', 'p50 on us', 'p50 +%', 'p99 off us', 'p99 on us', 'p99 +%', 'observe us/req', 'stats us'].join('\t'));
for (const r of results.cases) console.log([r.model, r.trackedFeatures, r.off.p50us, r.on.p50us, r.overheadP50Pct, r.off.p99us, r.on.p99us, r.overheadP99Pct, r.observeUsPerRequest, r.statisticsUsPerCompute].join('\t'));
console.log('\nmemory per tracked feature (window of examples)');
console.log(['kind', 'features', 'window', 'computed B/feature', 'measured ring B/feature'].join('\t'));
for (const m of results.memory) console.log([m.kind, m.features, m.window, m.computedBytesPerFeature, m.measuredRingBytesPerFeature].join('\t'));
mkdirSync(path.dirname(OUT), { recursive: true });
writeFileSync(OUT, `${JSON.stringify(results, null, 2)}\n`);
console.log(`\nwrote ${OUT}`);
