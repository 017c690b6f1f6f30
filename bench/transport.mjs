// Transport benchmark: chunked model download and update upload over gRPC between two processes on loopback, with
// grpc-js default HTTP/2 windows, with fedge's larger ones, and through fedge's own code path (coordinator handlers,
// agent connection, upload staging, sha256 check). Prints a table, writes bench/results/transport.json.
import { fork } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { CHANNEL_OPTIONS, CHUNK_BYTES, SERVER_OPTIONS, FLOW_CONTROL_WINDOW, MAX_FRAME, chunkBytes, loadServices, modelDigest } from '@fedge/proto';

const here = path.dirname(fileURLToPath(import.meta.url));
const MB = Number(process.env.BENCH_MB ?? 128);
const REPS = Number(process.env.BENCH_REPS ?? 5);

const MODES = (process.env.BENCH_MODES ?? 'default,fedge,fedge-path').split(',');
const spec = (bytes) => [{ name: 'w', dtype: 'float32', shape: [bytes / 4] }];

/** Child for mode fedge-path: the coordinator's real gRPC server and AgentService handlers over a stub coordinator. */
async function pathServer() {
  process.env.FEDGE_LOG_LEVEL = 'warn';
  const { startGrpcServer } = await import('../packages/coordinator/dist/transport/grpc/server.js');
  const bytes = new Uint8Array(MB * 2 ** 20).fill(7);
  const tensors = spec(bytes.byteLength);
  const header = { runId: 'r', modelVersion: 1, topologyJson: '{}', tensors, totalBytes: bytes.byteLength, sha256: modelDigest('{}', tensors, bytes) };
  // Stands in for the engine's staged upload: the same per-chunk offset and size checks, then a copy into a warm slot.
  const staging = new Uint8Array(MB * 2 ** 20);
  const sink = (total) => {
    let received = 0;
    return {
      write(offset, data) {
        if (offset !== received || received + data.byteLength > total) throw new Error('bad chunk');
        staging.set(data, offset);
        received += data.byteLength;
      },
      commit: async () => (received === total ? { accepted: true, reason: '', message: 'accepted' } : { accepted: false, reason: 'truncated', message: '' }),
      abort() {},
    };
  };
  const coord = {
    registry: { verify() {} },
    // The admin service reads the identity store when it is registered; this bench never calls it.
    gate: { identities: {} },
    fetchModel: async () => ({ model: { header, bytes }, engine: undefined }),
    beginUpload: async (h) => sink(h.totalBytes),
    recordMalformed() {},
  };
  const h = await startGrpcServer(coord, { host: '127.0.0.1', port: 0 });
  process.send({ port: h.port });
}

/** Mode fedge-path, agent side: GrpcConnection download plus the executor's digest check, and GrpcConnection upload. */
async function pathClient(port, payload) {
  const { GrpcConnection } = await import('../packages/edge-agent/dist/transport/grpc/grpc-connection.js');
  const conn = new GrpcConnection(`127.0.0.1:${port}`);
  const tensors = spec(payload.byteLength);
  const rh = { agentId: 'a', sessionToken: 't', taskId: 't1', runId: 'r', round: 0, modelVersion: 1, kind: 'train', numExamples: 1, tensors, totalBytes: payload.byteLength, encoding: 'float32-delta', metrics: {} };
  return {
    async download() {
      const { header, bytes, sha256 } = await conn.fetchModel({ agentId: 'a', sessionToken: 't', runId: 'r', modelVersion: 1 });
      if ((sha256 ?? modelDigest(header.topologyJson, header.tensors, bytes)) !== header.sha256) throw new Error('sha256 mismatch');
      return bytes.byteLength;
    },
    async upload() {
      const r = await conn.submit(rh, payload);
      if (!r.accepted) throw new Error(`upload rejected: ${r.reason} ${r.message}`);
    },
    close: () => conn.close(),
  };
}

/** Modes default and fedge, client side: bare grpc-js calls with the same messages, nothing done with the bytes. */
function rawClient(port, payload, opts) {
  const client = new (loadServices().AgentService)(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), opts);
  return {
    download: () => new Promise((resolve, reject) => {
      let n = 0;
      const s = client.FetchModel({ agentId: 'a', sessionToken: 't', runId: 'r', modelVersion: 1 });
      s.on('data', (c) => (n += c.data.byteLength));
      s.on('end', () => resolve(n));
      s.on('error', reject);
    }),
    upload: () => new Promise((resolve, reject) => {
      const call = client.SubmitResult((err, r) => (err ? reject(err) : resolve(r)));
      (async () => {
        call.write({ header: { agentId: 'a' } });
        for (const { offset, data } of chunkBytes(payload, CHUNK_BYTES)) {
          if (!call.write({ chunk: { offset, data: Buffer.from(data.buffer, data.byteOffset, data.byteLength) } })) await new Promise((r) => call.once('drain', r));
        }
        call.end();
      })();
    }),
    close: () => client.close(),
  };
}

// Children report their CPU time on request, so the table can show what each side spends per MiB.
if (process.argv[2] === 'server') process.on('message', (m) => m === 'cpu' && process.send({ cpu: process.cpuUsage() }));
// The bench that forked this server gone (finished, failed or killed): stop too, not linger holding the port.
if (process.argv[2] === 'server') process.on('disconnect', () => process.exit(0));

if (process.argv[2] === 'server' && process.argv[3] === 'path') {
  process.on('SIGTERM', () => process.exit(0)); // a clean exit lets --cpu-prof write the child's profile
  await pathServer();
} else if (process.argv[2] === 'server') {
  // Child: serves FetchModel with MB of payload and counts SubmitResult bytes.
  const big = process.argv[3] === 'big';
  process.on('SIGTERM', () => process.exit(0)); // a clean exit lets --cpu-prof write the child's profile
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
  const med = (a) => a.slice().sort((x, y) => x - y)[a.length >> 1];
  const payload = new Uint8Array(MB * 2 ** 20).fill(3);
  for (const mode of MODES) {
    const child = fork(fileURLToPath(import.meta.url), ['server', { default: 'small', fedge: 'big', 'fedge-path': 'path' }[mode]], { env: { ...process.env, BENCH_MB: String(MB) } });
    const { port } = await new Promise((r) => child.once('message', r));
    const childCpu = () => new Promise((r) => { child.once('message', (m) => r(m.cpu)); child.send('cpu'); });
    const client = mode === 'fedge-path' ? await pathClient(port, payload)
      : rawClient(port, payload, mode === 'fedge' ? CHANNEL_OPTIONS : { 'grpc.max_receive_message_length': 8 << 20, 'grpc.max_send_message_length': 8 << 20 });
    /** Wall MiB/s and the CPU microseconds per MiB each process spent (user + system). */
    const timed = async (f) => {
      const [c0, s0, e0, t0] = [process.cpuUsage(), await childCpu(), performance.eventLoopUtilization(), performance.now()];
      await f();
      const t = performance.now() - t0;
      const [c1, s1, e1] = [process.cpuUsage(c0), await childCpu(), performance.eventLoopUtilization(e0)];
      const mib = payload.byteLength / 2 ** 20;
      return { mibps: mib / (t / 1000), clientUsPerMiB: (c1.user + c1.system) / mib, serverUsPerMiB: (s1.user - s0.user + s1.system - s0.system) / mib, clientLoopUsPerMiB: (e1.active * 1000) / mib };
    };
    const down = [];
    const up = [];
    await client.download(); // warm-up: connection, JIT, allocator
    for (let i = 0; i < REPS; i++) {
      down.push(await timed(async () => { if ((await client.download()) !== payload.byteLength) throw new Error('short download'); }));
      up.push(await timed(() => client.upload()));
    }
    client.close();
    child.kill();
    const summary = (xs) => Object.fromEntries(Object.keys(xs[0]).map((k) => [k, med(xs.map((x) => x[k]))]));
    const [d, u] = [summary(down), summary(up)];
    results.push({
      mode, downloadMiBps: d.mibps, uploadMiBps: u.mibps,
      cpuUsPerMiB: { download: { agent: d.clientUsPerMiB, coordinator: d.serverUsPerMiB }, upload: { agent: u.clientUsPerMiB, coordinator: u.serverUsPerMiB } },
      agentLoopUsPerMiB: { download: d.clientLoopUsPerMiB, upload: u.clientLoopUsPerMiB },
    });
  }
  const by = Object.fromEntries(results.map((r) => [r.mode, r]));
  console.log(`gRPC chunked streaming, ${MB} MiB payload, ${CHUNK_BYTES >> 10} KiB chunks, median of ${REPS}, two processes on loopback`);
  console.log('                     download  upload   CPU us/MiB: download       upload   agent event loop us/MiB');
  console.log('mode                    MiB/s   MiB/s         agent coordinator  agent coordinator     download   upload');
  const f0 = (x, w) => x.toFixed(0).padStart(w);
  for (const r of results) {
    const c = r.cpuUsPerMiB;
    console.log(`${r.mode.padEnd(20)} ${f0(r.downloadMiBps, 8)} ${f0(r.uploadMiBps, 7)} ${f0(c.download.agent, 13)} ${f0(c.download.coordinator, 11)} ${f0(c.upload.agent, 6)} ${f0(c.upload.coordinator, 11)} ${f0(r.agentLoopUsPerMiB.download, 12)} ${f0(r.agentLoopUsPerMiB.upload, 8)}`);
  }
  for (const [a, b] of [['fedge', 'default'], ['fedge-path', 'default'], ['fedge-path', 'fedge']]) {
    if (by[a] && by[b]) console.log(`ratio ${`${a}/${b}`.padEnd(18)} ${(by[a].downloadMiBps / by[b].downloadMiBps).toFixed(2).padStart(4)} ${(by[a].uploadMiBps / by[b].uploadMiBps).toFixed(2).padStart(7)}`);
  }
  mkdirSync(path.join(here, 'results'), { recursive: true });
  writeFileSync(path.join(here, 'results', 'transport.json'), JSON.stringify({
    date: new Date().toISOString(), node: process.version, cpu: os.cpus()[0]?.model, cores: os.cpus().length,
    payloadMiB: MB, chunkBytes: CHUNK_BYTES, flowControlWindow: FLOW_CONTROL_WINDOW, reps: REPS, results,
  }, null, 2));
}
