// Edge serving benchmark: float32 vs int8 ONNX (fedge exporter) on onnxruntime-node, CPU, one intra-op thread.
// p50/p99 latency at batch 1, throughput at batch 64, model sizes, top-1 agreement on held-out digits, RSS.
// Usage: node bench/serving.mjs [--iters 2000] [--out bench/results/serving.json]
//        node bench/serving.mjs --smoke --out /tmp/s.json   (bench:smoke: tiny training and timing, figures meaningless)
import { writeFileSync } from 'node:fs';
import * as ort from 'onnxruntime-node';
import * as ml from '@fedge/ml';

const arg = (k, d) => {
  const i = process.argv.indexOf(k);
  return i > 0 ? process.argv[i + 1] : d;
};
const SMOKE = process.argv.includes('--smoke');
const ITERS = Number(arg('--iters', SMOKE ? 20 : 2000));
const OUT = arg('--out', 'bench/results/serving.json');

await ml.initBackend('wasm');
const mnist = ml.loadMnist();
const train = mnist.train;
const test = SMOKE ? ml.subset(mnist.test, Array.from({ length: 100 }, (_, i) => i)) : mnist.test;
const pct = (a, p) => a[Math.min(a.length - 1, Math.floor(p * a.length))];
const rssMiB = () => process.memoryUsage().rss / 2 ** 20;

async function measure(bytes, optimization) {
  global.gc?.();
  const rss0 = rssMiB();
  const s = await ort.InferenceSession.create(bytes, { graphOptimizationLevel: optimization, intraOpNumThreads: 1, interOpNumThreads: 1, executionMode: 'sequential' });
  const rssLoaded = rssMiB();
  const x1 = new ort.Tensor('float32', test.x.slice(0, 784), [1, 784]);
  const x64 = new ort.Tensor('float32', test.x.slice(0, 64 * 784), [64, 784]);
  for (let i = 0; i < (SMOKE ? 5 : 200); i++) await s.run({ input: x1 });
  const lat = [];
  for (let i = 0; i < ITERS; i++) {
    const t = process.hrtime.bigint();
    await s.run({ input: x1 });
    lat.push(Number(process.hrtime.bigint() - t) / 1e3);
  }
  lat.sort((a, b) => a - b);
  for (let i = 0; i < 20; i++) await s.run({ input: x64 });
  const lat64 = [];
  const n64 = Math.max(50, Math.floor(ITERS / 8));
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n64; i++) {
    const t = process.hrtime.bigint();
    await s.run({ input: x64 });
    lat64.push(Number(process.hrtime.bigint() - t) / 1e3);
  }
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  lat64.sort((a, b) => a - b);
  const all = (await s.run({ input: new ort.Tensor('float32', test.x, [test.n, 784]) })).output.data;
  const rssAfter = rssMiB();
  await s.release();
  return {
    p50us: +pct(lat, 0.5).toFixed(1),
    p99us: +pct(lat, 0.99).toFixed(1),
    batch64P50us: +pct(lat64, 0.5).toFixed(1),
    batch64SamplesPerSec: Math.round((64 * n64) / secs),
    sessionRssMiB: +(rssLoaded - rss0).toFixed(1),
    rssMiB: +rssAfter.toFixed(1),
    outputs: all,
  };
}

const argmax = (v, r) => {
  let b = 0;
  for (let k = 1; k < 10; k++) if (v[r * 10 + k] > v[r * 10 + b]) b = k;
  return b;
};

const CALIBRATION = SMOKE ? 64 : 512;
const results = { machine: { cpus: (await import('node:os')).cpus()[0]?.model, ort: ort.env.versions, node: process.version }, iters: ITERS, models: {} };
for (const name of ['mnist-mlp', 'mnist-cnn']) {
  const model = ml.createBuiltinModel(name, 1);
  const n = SMOKE ? 100 : name === 'mnist-cnn' ? 1000 : 3000;
  await ml.trainLocal(model, ml.subset(train, Array.from({ length: n }, (_, i) => i)), { epochs: 1, batchSize: 20, learningRate: 0.05, seed: 1 });
  const blob = ml.modelToBlob(model);
  const variants = {
    float32: ml.exportOnnx(blob),
    'int8-dynamic': ml.exportOnnx(blob, { quantize: 'int8' }),
    ...(name === 'mnist-cnn' ? { 'int8-dense-only': ml.exportOnnx(blob, { quantize: 'int8', quantizeConv: false }) } : {}),
    'int8-static': ml.exportOnnx(blob, { quantize: 'int8', activations: 'static', activationRanges: await ml.calibrateActivationRanges(blob, train.x.subarray(0, CALIBRATION * 784), CALIBRATION) }),
  };
  const r = {};
  for (const [v, e] of Object.entries(variants)) {
    for (const opt of v === 'float32' ? ['all'] : ['all', 'basic']) {
      const m = await measure(e.bytes, opt);
      r[`${v}@${opt}`] = { bytes: e.bytes.length, ...m };
    }
  }
  const ref = r['float32@all'].outputs;
  for (const [k, v] of Object.entries(r)) {
    let same = 0;
    for (let i = 0; i < test.n; i++) if (argmax(v.outputs, i) === argmax(ref, i)) same++;
    let maxd = 0;
    for (let i = 0; i < ref.length; i++) maxd = Math.max(maxd, Math.abs(v.outputs[i] - ref[i]));
    v.top1AgreementWithFloat = +(same / test.n).toFixed(4);
    v.maxAbsDiffVsFloat = +maxd.toExponential(2);
    delete v.outputs;
    if (k !== 'float32@all') {
      v.sizeRatio = +(v.bytes / r['float32@all'].bytes).toFixed(3);
      v.speedupBatch1 = +(r['float32@all'].p50us / v.p50us).toFixed(2);
      // p50 of the batch-64 latency: robust to other processes sharing the cores, unlike a mean over the window.
      v.speedupBatch64 = +(r['float32@all'].batch64P50us / v.batch64P50us).toFixed(2);
    }
  }
  // float ONNX vs tfjs itself
  const tfOut = ml.tf.tidy(() => model.predict(ml.tf.tensor2d(test.x, [test.n, 784])).dataSync());
  const s = await ort.InferenceSession.create(variants.float32.bytes);
  const fo = (await s.run({ input: new ort.Tensor('float32', test.x, [test.n, 784]) })).output.data;
  await s.release();
  let d = 0;
  for (let i = 0; i < fo.length; i++) d = Math.max(d, Math.abs(fo[i] - tfOut[i]));
  results.models[name] = { floatVsTfjsMaxAbsDiff: +d.toExponential(2), variants: r };
  model.dispose();
  console.log(name, `float vs tfjs max |diff| ${d.toExponential(2)}`);
  for (const [k, v] of Object.entries(r))
    console.log(`  ${k.padEnd(20)} ${(v.bytes / 1024).toFixed(0).padStart(6)} KiB  b1 p50 ${v.p50us}us p99 ${v.p99us}us  b64 ${v.batch64SamplesPerSec}/s (p50 ${v.batch64P50us}us)  agree ${v.top1AgreementWithFloat}` +
      (v.sizeRatio ? `  size x${v.sizeRatio}  speedup b1 x${v.speedupBatch1} b64 x${v.speedupBatch64}` : ''));
}
results.rssMiB = +rssMiB().toFixed(1);
writeFileSync(OUT, JSON.stringify(results, null, 2) + '\n');
console.log(`wrote ${OUT}`);
