// Serving while training: batch-1 KServe v2 latency of the agent's inference server (int8 mnist-mlp, onnxruntime-node,
// real HTTP) idle, while the same process trains mnist-cnn through the agent's TaskExecutor, and (for reference)
// while it trains with @fedge/ml trainLocal directly on the main thread, the way the agent trained before the worker.
// The HTTP client runs in a child process so that its own timing never waits on the agent's event loop.
// Usage: npx tsc -b && node bench/serving-while-training.mjs [--seconds 20] [--gap-ms 5] [--batch 32] [--phases idle,executor,main-thread]
//        [--label after] [--out bench/results/serving-while-training.json]
// Each run is stored under runs[LABEL] of the output file (other labels are kept): run it on an older checkout with
// --label before to compare.
import { fork } from 'node:child_process';
import { execSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';

const arg = (k, d) => {
  const i = process.argv.indexOf(k);
  return i > 0 ? process.argv[i + 1] : d;
};

// ---- child: closed-loop client, one batch-1 request at a time, `gap` ms between a reply and the next request ----
if (process.argv[2] === '--client') {
  const [url, seconds, gap] = [process.argv[3], Number(process.argv[4]), Number(process.argv[5])];
  const body = JSON.parse(process.argv[6]);
  const payload = JSON.stringify(body);
  const lat = [];
  let failures = 0;
  const end = performance.now() + seconds * 1000;
  while (performance.now() < end) {
    const t = performance.now();
    try {
      const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: payload });
      await res.arrayBuffer();
      if (res.status !== 200) failures++;
    } catch {
      failures++;
    }
    lat.push(performance.now() - t);
    if (gap > 0) await new Promise((r) => setTimeout(r, gap));
  }
  process.send({ lat, failures }, () => process.exit(0));
} else {
  await main();
}

async function main() {
  const SECONDS = Number(arg('--seconds', 20));
  const GAP = Number(arg('--gap-ms', 5));
  const BATCH = Number(arg('--batch', 32));
  const PHASES = arg('--phases', 'idle,executor,main-thread').split(',');
  const OUT = arg('--out', 'bench/results/serving-while-training.json');
  const LABEL = arg('--label', 'after');

  const ml = await import('@fedge/ml');
  const { modelDigest, float32ToBytes } = await import('@fedge/proto');
  const { ModelSlot, InferenceServer } = await import('../packages/edge-agent/dist/serving/index.js');
  const { TaskExecutor, loadLocalData } = await import('../packages/edge-agent/dist/index.js');

  const backend = await ml.initBackend('wasm');
  // The served model: int8 mnist-mlp, exported and loaded the way the agent's --serve does (dynamic activations).
  const mlp = ml.createBuiltinModel('mnist-mlp', 1);
  const onnx = ml.exportOnnx(ml.modelToBlob(mlp), { quantize: 'int8' }).bytes;
  mlp.dispose();
  const slot = new ModelSlot('mnist', { intraOpThreads: 1 });
  await slot.load(onnx, '1', { quantization: 'int8' });
  const server = new InferenceServer(slot);
  const addr = await server.listen('127.0.0.1', 0);
  const url = `http://127.0.0.1:${addr.port}/v2/models/mnist/infer`;
  const { test } = ml.loadMnist();
  const body = { inputs: [{ name: 'input', shape: [1, 784], datatype: 'FP32', data: Array.from(test.x.subarray(0, 784)) }] };

  // The trained model: mnist-cnn on a quarter of the bundled digits, what one of four agents would hold.
  const data = await loadLocalData({ spec: 'mnist', partition: 'iid', numPartitions: 4, partitionId: 0, seed: 42, holdoutFraction: 0.1 });
  // Main-thread training below needs the encoded split (LocalData holds raw tables).
  const encoded = await (await import('../packages/edge-agent/dist/data.js')).encodeLegacy(data);
  const cnn = ml.createBuiltinModel('mnist-cnn', 1);
  const blob = ml.modelToBlob(cnn);
  const topologyJson = JSON.stringify(blob.topology);
  const bytes = float32ToBytes(blob.weights);
  const sha256 = modelDigest(topologyJson, blob.tensors, bytes);
  const header = { runId: 'bench', modelVersion: 1, topologyJson, tensors: blob.tensors, totalBytes: bytes.byteLength, sha256 };
  // Only fetchModel is used by TaskExecutor.run; the rest of the connection is never called.
  const conn = { fetchModel: async () => ({ header, bytes: bytes.slice() }) };
  const session = { agentId: 'bench', sessionToken: 'bench' };
  const taskOf = (round) => ({
    taskId: `t${round}`, runId: 'bench', round, modelVersion: 1, kind: 'train', modelSha256: sha256, modelBytes: bytes.byteLength,
    config: { epochs: 1, batchSize: BATCH, learningRate: 0.05, seed: round }, deadlineUnixMs: 0,
  });

  function client() {
    return new Promise((resolve, reject) => {
      const c = fork(fileURLToPath(import.meta.url), ['--client', url, String(SECONDS), String(GAP), JSON.stringify(body)]);
      c.once('message', resolve);
      c.once('error', reject);
      c.once('exit', (code) => code !== 0 && reject(new Error(`client exited with ${code}`)));
    });
  }

  // Warm-up: the first requests pay for session and connection setup.
  for (let i = 0; i < 200; i++) await (await fetch(url, { method: 'POST', body: JSON.stringify(body) })).arrayBuffer();

  let executor;
  const trainers = {
    // The agent's path: TaskExecutor.run (fetch, verify, evaluate on the holdout, train, delta, pack), task after task.
    executor: async (signal, stats) => {
      executor ??= new TaskExecutor(data);
      // start() and close() came with the training worker; checked so that --label before runs on older checkouts.
      if (typeof executor.start === 'function') stats.backend = (await executor.start()).name;
      for (let round = 1; !signal.aborted; round++) {
        try {
          const r = await executor.run(taskOf(round), conn, session, signal);
          stats.tasks++;
          stats.samplesPerSec.push(r.header.metrics.samples_per_sec);
        } catch (err) {
          if (!signal.aborted) throw err;
        }
      }
    },
    // Reference: @fedge/ml trainLocal on this thread, as TaskExecutor did before training moved to a worker.
    'main-thread': async (signal, stats) => {
      const model = await ml.modelFromBlob(blob);
      for (let round = 1; !signal.aborted; round++) {
        try {
          const tr = await ml.trainLocal(model, encoded.train, { epochs: 1, batchSize: BATCH, learningRate: 0.05, seed: round, signal });
          stats.tasks++;
          stats.samplesPerSec.push(tr.samplesPerSec);
        } catch (err) {
          if (!signal.aborted) throw err;
        }
      }
      model.dispose();
    },
  };

  const pct = (a, p) => a[Math.min(a.length - 1, Math.floor(p * a.length))];
  const results = {
    machine: { cpus: cpus().length, cpu: cpus()[0]?.model, node: process.version, backend: backend.name, simd: backend.simd },
    date: new Date().toISOString(),
    commit: (() => {
      try {
        return execSync('git rev-parse --short HEAD', { encoding: 'utf8' }).trim();
      } catch {
        return null;
      }
    })(),
    // Other processes share this machine's cores: the 1-minute load average brackets the measurement.
    loadAvg1m: { start: +loadavg()[0].toFixed(2) },
    config: { seconds: SECONDS, gapMs: GAP, servedModel: 'mnist-mlp int8 (dynamic activations), 1 intra-op thread', trainedModel: 'mnist-cnn', trainExamples: data.train.n, holdoutExamples: data.holdout.n, batchSize: BATCH },
    phases: {},
  };
  for (const phase of PHASES) {
    const ctl = new AbortController();
    const stats = { tasks: 0, samplesPerSec: [] };
    // Event-loop lag of the agent process itself: how late a 10 ms timer fires.
    let lagMax = 0, last = performance.now();
    const tick = setInterval(() => {
      const now = performance.now();
      lagMax = Math.max(lagMax, now - last - 10);
      last = now;
    }, 10);
    let training = Promise.resolve();
    if (phase !== 'idle') {
      training = trainers[phase](ctl.signal, stats);
      // Let the first task reach its training loop before measuring.
      await new Promise((r) => setTimeout(r, 1500));
      lagMax = 0;
    }
    const { lat, failures } = await client();
    ctl.abort(new Error('phase over'));
    await training;
    clearInterval(tick);
    lat.sort((a, b) => a - b);
    const sps = stats.samplesPerSec;
    results.phases[phase] = {
      requests: lat.length,
      failures,
      p50ms: +pct(lat, 0.5).toFixed(2),
      p99ms: +pct(lat, 0.99).toFixed(2),
      maxMs: +lat.at(-1).toFixed(2),
      meanMs: +(lat.reduce((a, b) => a + b, 0) / lat.length).toFixed(2),
      eventLoopLagMaxMs: +lagMax.toFixed(1),
      // The whole process, training worker included.
      rssMiB: +(process.memoryUsage().rss / 2 ** 20).toFixed(1),
      ...(phase !== 'idle' ? { tasksCompleted: stats.tasks, trainSamplesPerSec: sps.length ? Math.round(sps.reduce((a, b) => a + b, 0) / sps.length) : null } : {}),
      ...(stats.backend ? { workerBackend: stats.backend } : {}),
    };
  }
  results.loadAvg1m.end = +loadavg()[0].toFixed(2);
  await executor?.close?.();
  await server.close();
  await slot.close();

  const idle = results.phases.idle;
  console.log(`[${LABEL}] batch-1 infer over HTTP, ${SECONDS} s per phase, ${GAP} ms between requests; training mnist-cnn (${data.train.n} examples, batch ${BATCH}, ${backend.name})`);
  console.log(`${'phase'.padEnd(12)} ${'requests'.padStart(8)} ${'p50 ms'.padStart(8)} ${'p99 ms'.padStart(8)} ${'max ms'.padStart(9)} ${'p99/idle'.padStart(9)} ${'loop lag max'.padStart(13)} ${'train/s'.padStart(8)}`);
  for (const [k, v] of Object.entries(results.phases)) {
    if (idle) v.p99VsIdle = +(v.p99ms / idle.p99ms).toFixed(2);
    console.log(`${k.padEnd(12)} ${String(v.requests).padStart(8)} ${v.p50ms.toFixed(2).padStart(8)} ${v.p99ms.toFixed(2).padStart(8)} ${v.maxMs.toFixed(1).padStart(9)} ${(v.p99VsIdle ?? '').toString().padStart(9)} ${v.eventLoopLagMaxMs.toFixed(1).padStart(13)} ${String(v.trainSamplesPerSec ?? '').padStart(8)}`);
  }
  const file = existsSync(OUT) ? JSON.parse(readFileSync(OUT, 'utf8')) : {};
  file.runs = { ...file.runs, [LABEL]: results };
  writeFileSync(OUT, JSON.stringify(file, null, 2) + '\n');
  console.log(`wrote runs.${LABEL} of ${OUT}`);
}
