// Transport benchmark: chunked model download and update upload over gRPC between two processes on loopback,
// with grpc-js default HTTP/2 windows and with fedge's larger ones. Prints a table, writes bench/results/transport.json.
import { fork } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { CHANNEL_OPTIONS, CHUNK_BYTES, SERVER_OPTIONS, FLOW_CONTROL_WINDOW, MAX_FRAME, chunkBytes, loadServices } from '@fedge/proto';

const here = path.dirname(fileURLToPath(import.meta.url));
const MB = Number(process.env.BENCH_MB ?? 256);
const REPS = Number(process.env.BENCH_REPS ?? 3);

if (process.argv[2] === 'server') {
  // Child: serves FetchModel with MB of payload and counts SubmitResult bytes.
  const big = process.argv[3] === 'big';
  const payload = new Uint8Array(MB * 1024 * 1024).fill(7);
  const server = new grpc.Server(SERVER_OPTIONS);
  server.addService(loadServices().AgentService.service, {
    FetchModel(call) {
      (async () => {
        call.write({ header: { runId: 'r', modelVersion: 1, topologyJson: '{}', tensors: [], totalBytes: payload.byteLength, sha256: '0'.repeat(64) }, offset: 0, data: Buffer.alloc(0) });
        for (const { offset, data } of chunkBytes(payload, CHUNK_BYTES)) {
          if (!call.write({ offset, data: Buffer.from(data.buffer, data.byteOffset, data.byteLength) })) await new Promise((r) => call.once('drain', r));
        }
        call.end();
      })();
    },
    SubmitResult(call, cb) {
      let n = 0;
      call.on('data', (p) => { if (p.chunk) n += p.chunk.data.byteLength; });
      call.on('end', () => cb(null, { accepted: true, reason: '', message: String(n) }));
    },
  });
  server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, port) => {
    if (big) {
      for (const h2 of server.http2Servers.keys()) h2.on('session', (s) => { s.setLocalWindowSize(FLOW_CONTROL_WINDOW); s.settings({ initialWindowSize: FLOW_CONTROL_WINDOW, maxFrameSize: MAX_FRAME }); });
    }
    process.send({ port });
  });
} else {
  const results = [];
  for (const mode of ['default', 'fedge']) {
    const child = fork(fileURLToPath(import.meta.url), ['server', mode === 'fedge' ? 'big' : 'small'], { env: { ...process.env, BENCH_MB: String(MB) } });
    const { port } = await new Promise((r) => child.once('message', r));
    const opts = mode === 'fedge' ? CHANNEL_OPTIONS : { 'grpc.max_receive_message_length': 8 << 20, 'grpc.max_send_message_length': 8 << 20 };
    const client = new (loadServices().AgentService)(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), opts);
    const down = [];
    const up = [];
    for (let i = 0; i < REPS; i++) {
      let t0 = performance.now();
      let n = 0;
      await new Promise((resolve, reject) => {
        const s = client.FetchModel({ agentId: 'a', sessionToken: 't', runId: 'r', modelVersion: 1 });
        s.on('data', (c) => (n += c.data.byteLength));
        s.on('end', resolve);
        s.on('error', reject);
      });
      down.push(n / 2 ** 20 / ((performance.now() - t0) / 1000));
      const payload = new Uint8Array(MB * 2 ** 20).fill(3);
      t0 = performance.now();
      await new Promise((resolve, reject) => {
        const call = client.SubmitResult((err, r) => (err ? reject(err) : resolve(r)));
        (async () => {
          call.write({ header: { agentId: 'a' } });
          for (const { offset, data } of chunkBytes(payload, CHUNK_BYTES)) {
            if (!call.write({ chunk: { offset, data: Buffer.from(data.buffer, data.byteOffset, data.byteLength) } })) await new Promise((r) => call.once('drain', r));
          }
          call.end();
        })();
      });
      up.push(payload.byteLength / 2 ** 20 / ((performance.now() - t0) / 1000));
    }
    client.close();
    child.kill();
    const med = (a) => a.slice().sort((x, y) => x - y)[a.length >> 1];
    results.push({ mode, downloadMiBps: med(down), uploadMiBps: med(up) });
  }
  const [d, f] = results;
  console.log(`gRPC chunked streaming, ${MB} MiB payload, 1 MiB chunks, median of ${REPS}, two processes on loopback`);
  console.log('windows              download MiB/s   upload MiB/s');
  for (const r of results) console.log(`${r.mode.padEnd(20)} ${r.downloadMiBps.toFixed(0).padStart(14)} ${r.uploadMiBps.toFixed(0).padStart(14)}`);
  console.log(`ratio fedge/default  ${(f.downloadMiBps / d.downloadMiBps).toFixed(2).padStart(14)} ${(f.uploadMiBps / d.uploadMiBps).toFixed(2).padStart(14)}`);
  mkdirSync(path.join(here, 'results'), { recursive: true });
  writeFileSync(path.join(here, 'results', 'transport.json'), JSON.stringify({
    date: new Date().toISOString(), node: process.version, cpu: os.cpus()[0]?.model, cores: os.cpus().length,
    payloadMiB: MB, chunkBytes: CHUNK_BYTES, flowControlWindow: FLOW_CONTROL_WINDOW, reps: REPS, results,
  }, null, 2));
}
