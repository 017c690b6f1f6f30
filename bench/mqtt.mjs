// MQTT transport benchmark: a 128 MiB model down and a 128 MiB update up through fedge serve's embedded broker
// (aedes) between two processes on loopback, using the real MqttConnection (agent) and MQTT bridge (coordinator)
// with a stub Coordinator behind the bridge. Prints a table, writes bench/results/mqtt.json.
//   node bench/mqtt.mjs            BENCH_MB=128 BENCH_REPS=3
import { fork } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { MQTT_WINDOW_BYTES, CHUNK_BYTES, modelDigest } from '@fedge/proto';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..');
const MB = Number(process.env.BENCH_MB ?? 128);
const REPS = Number(process.env.BENCH_REPS ?? 3);
const BYTES = MB * 2 ** 20;

if (process.argv[2] === 'server') {
  // Child: embedded broker + the coordinator's MQTT bridge, in front of a stub that serves one model and counts uploads.
  const { startMqtt } = await import(path.join(root, 'packages/coordinator/dist/transport/mqtt/start.js'));
  const bytes = new Uint8Array(BYTES).fill(7);
  const tensors = [{ name: 'w', dtype: 'float32', shape: [BYTES / 4] }];
  const header = { runId: 'run-bench', modelVersion: 1, topologyJson: '{}', tensors, totalBytes: BYTES, sha256: modelDigest('{}', tensors, bytes) };
  let peakRss = 0;
  setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage().rss)), 20).unref();
  const coord = {
    join: () => ({ agentId: 'agent-bench', sessionToken: 'session-bench' }),
    openTasks: () => undefined,
    closeTasks: () => undefined,
    registry: { verify: () => undefined },
    recordMalformed: () => undefined,
    fetchModel: async () => ({ model: { header, bytes } }),
    beginUpload: async (h) => {
      let n = 0;
      return {
        write: (offset, data) => {
          if (offset !== n) throw new Error(`offset ${offset}, expected ${n}`);
          n += data.byteLength;
        },
        commit: async () => ({ accepted: n === h.totalBytes, reason: '', message: String(n) }),
        abort: () => undefined,
      };
    },
  };
  const mqtt = await startMqtt(coord, { listen: '127.0.0.1:0' });
  process.send({ url: mqtt.url });
  // The bench that forked this server gone (finished, failed or killed): stop too, not linger holding the port.
  process.on('disconnect', () => process.exit(0));
  process.on('message', (m) => {
    if (m === 'rss') process.send({ peakRssMiB: peakRss / 2 ** 20 });
  });
} else {
  const { MqttConnection } = await import(path.join(root, 'packages/edge-agent/dist/index.js'));
  const child = fork(fileURLToPath(import.meta.url), ['server'], { env: { ...process.env, FEDGE_LOG_LEVEL: 'warn' } });
  const { url } = await new Promise((r) => child.once('message', r));
  const conn = new MqttConnection(url);
  const { agentId, sessionToken } = await conn.join({ name: 'bench', agentId: '', joinToken: '', backend: 'none', agentVersion: 'bench', numExamples: 1, labels: {} });
  const down = [];
  const up = [];
  const payload = new Uint8Array(BYTES).fill(3);
  let clientPeak = 0;
  const sampler = setInterval(() => (clientPeak = Math.max(clientPeak, process.memoryUsage().rss)), 20);
  for (let i = 0; i < REPS; i++) {
    let t0 = performance.now();
    const m = await conn.fetchModel({ agentId, sessionToken, runId: 'run-bench', modelVersion: 1 });
    down.push(BYTES / 2 ** 20 / ((performance.now() - t0) / 1000));
    if (m.sha256 !== m.header.sha256) throw new Error('digest mismatch');
    t0 = performance.now();
    const r = await conn.submit({ agentId, sessionToken, taskId: 'task-1', runId: 'run-bench', round: 1, modelVersion: 1, kind: 'train', numExamples: 1,
      tensors: m.header.tensors, totalBytes: BYTES, encoding: 'float32-delta', metrics: {} }, payload);
    up.push(BYTES / 2 ** 20 / ((performance.now() - t0) / 1000));
    if (!r.accepted) throw new Error(`upload not accepted: ${r.message}`);
  }
  clearInterval(sampler);
  child.send('rss');
  const { peakRssMiB } = await new Promise((r) => child.once('message', r));
  conn.close();
  child.kill();
  const med = (a) => a.slice().sort((x, y) => x - y)[a.length >> 1];
  const result = {
    benchmark: 'mqtt',
    date: new Date().toISOString(),
    machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model, node: process.version },
    payloadMiB: MB,
    reps: REPS,
    chunkBytes: CHUNK_BYTES,
    windowBytes: MQTT_WINDOW_BYTES,
    qos: 1,
    downloadMiBps: med(down),
    uploadMiBps: med(up),
    runs: { downloadMiBps: down, uploadMiBps: up },
    // Both include the payload itself (the model held by the coordinator, the downloaded copy and the update on the agent).
    coordinatorAndBrokerPeakRssMiB: peakRssMiB,
    agentPeakRssMiB: clientPeak / 2 ** 20,
  };
  const f = (x) => x.toFixed(0).padStart(8);
  console.log(`MQTT over the embedded broker, ${MB} MiB each way, median of ${REPS}, loopback, ${os.cpus().length} cores`);
  console.log('direction      MiB/s');
  console.log(`download    ${f(result.downloadMiBps)}`);
  console.log(`upload      ${f(result.uploadMiBps)}`);
  console.log(`peak RSS: coordinator+broker ${f(peakRssMiB)} MiB, agent ${f(result.agentPeakRssMiB)} MiB`);
  mkdirSync(path.join(here, 'results'), { recursive: true });
  writeFileSync(path.join(here, 'results', 'mqtt.json'), JSON.stringify(result, null, 2) + '\n');
  console.log(JSON.stringify({ downloadMiBps: +result.downloadMiBps.toFixed(1), uploadMiBps: +result.uploadMiBps.toFixed(1) }));
  process.exit(0);
}
