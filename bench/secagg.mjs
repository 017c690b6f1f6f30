// Secure aggregation (issue 13): agent CPU, bytes per agent vs plaintext float32, coordinator unmask time and
// peak RSS, for 10 / 50 / 100 agents x 1,663,370 parameters (mnist-cnn) with 0% and 30% dropouts.
//
// Run: npx tsc -b packages/proto && node bench/secagg.mjs
// Flags: --agents 10,50,100  --dropouts 0,0.3  --params 1663370  --out FILE
//        --quantization ring,int8: ring (default) is the 32-bit ring at the finest grid it holds; int8 is 8-bit levels
//        (0..255 at the clip range's scale) in the smallest ring that sums the cohort, ceil(log2(n x 255 + 1)) bits,
//        packed at exactly that width (12 bits for 10 agents: 0.375x the float32 bytes plus stage messages).
//        --dropout-stage masked|unmask: where dropouts happen. masked (default): after sharing keys, before the
//        masked input -- the coordinator's worst case (it rebuilds the dropped agents' keys and removes one pairwise
//        mask per (dropped, surviving neighbor) pair). unmask: after sending the masked input (inputs are in the sum).
// Internal: --child N,RATE,STAGE,QUANT (one configuration; spawned by the main run, one process each, so peak RSS is
//           that configuration's).
//
// Agents are SecAggClient objects in the child process, each doing the full protocol (no training: the update is
// pseudo-random), one after another, so CPU measured around an agent's calls is that agent's. Stage messages are
// sized as the transports send them: JSON (secaggToJson, base64 bytes) and the masked vector as raw bytes.
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as P from '../packages/proto/dist/index.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const option = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : dflt;
};
const M = Number(option('--params', '1663370'));
const cpuMs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};
const median = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)] ?? 0;
const jsonBytes = (m) => Buffer.byteLength(P.secaggToJson(m));

/** xorshift32 floats in [-0.05, 0.05): a model delta's scale, cheap and deterministic. */
function update(seed) {
  const f = new Float32Array(M);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < M; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    f[i] = ((s >>> 0) / 4294967296 - 0.5) * 0.1;
  }
  return f;
}

function child(n, rate, stage, quant) {
  // int8: maxWeight is the cohort's largest weight (as the coordinator derives it), so the heaviest agent gets all 255 levels.
  const params = quant === 'int8' ? P.secaggParams(n, { quantization: 'int8', clipRange: 0.1, maxWeight: 1000 }) : P.secaggParams(n, { clipRange: 0.1, maxWeight: 10_000 });
  const ids = Array.from({ length: n }, (_, i) => `agent-${String(i).padStart(3, '0')}`);
  const rng = P.createRng(n * 1000 + Math.round(rate * 100));
  const order = [...ids].sort(() => rng() - 0.5);
  const dropped = new Set(order.slice(0, Math.round(rate * n)));
  const weight = (i) => 100 + ((i * 7919) % 900);
  const agentCpu = new Map(ids.map((a) => [a, 0]));
  const maskCpu = [];
  const up = new Map(ids.map((a) => [a, 0]));
  const down = new Map(ids.map((a) => [a, 0]));
  let serverCpu = 0;
  const onAgent = (a, f) => {
    const t = cpuMs();
    const r = f();
    agentCpu.set(a, agentCpu.get(a) + cpuMs() - t);
    return r;
  };
  const onServer = (f) => {
    const t = cpuMs();
    const r = f();
    serverCpu += cpuMs() - t;
    return r;
  };
  const server = new P.SecAggServer(params, { length: M });
  const clients = new Map(ids.map((a) => [a, onAgent(a, () => new P.SecAggClient(a, params))]));
  for (const [a, c] of clients) {
    const m = onAgent(a, () => c.advertise());
    up.set(a, up.get(a) + jsonBytes(m));
    onServer(() => server.collectAdvertise(a, m));
  }
  const adv = onServer(() => server.closeAdvertise());
  for (const [a, req] of adv.requests) {
    down.set(a, down.get(a) + jsonBytes(req));
    const m = onAgent(a, () => clients.get(a).shareKeys(req));
    up.set(a, up.get(a) + jsonBytes(m));
    onServer(() => server.collectShares(a, m));
  }
  const routed = onServer(() => server.routeShares());
  const exact = new Float64Array(M);
  let wsum = 0;
  let addCpu = 0;
  for (const [a, r] of routed.routed) {
    down.set(a, down.get(a) + jsonBytes(r));
    onAgent(a, () => clients.get(a).receiveShares(r));
    if (stage === 'masked' && dropped.has(a)) continue;
    const i = ids.indexOf(a);
    const x = update(i + 1);
    const w = weight(i);
    for (let j = 0; j < M; j++) exact[j] += w * x[j];
    wsum += w;
    const t = cpuMs();
    const mi = onAgent(a, () => clients.get(a).maskedInput(x, w));
    maskCpu.push(cpuMs() - t);
    up.set(a, up.get(a) + P.maskedToBytes(mi.y, params.bits).length + jsonBytes({ rejected: mi.rejected }));
    const t1 = cpuMs();
    onServer(() => server.addMaskedInput(a, mi));
    addCpu += cpuMs() - t1;
  }
  const um = onServer(() => server.closeMaskedInput());
  if (!um.ok) throw new Error(um.reason);
  const unmaskT0 = performance.now();
  const unmaskCpu0 = cpuMs();
  for (const [a, req] of um.requests) {
    if (dropped.has(a)) continue; // gone (before the masked input, or right after it)
    down.set(a, down.get(a) + jsonBytes(req));
    const m = onAgent(a, () => clients.get(a).unmask(req));
    up.set(a, up.get(a) + jsonBytes(m));
    onServer(() => server.collectUnmask(a, m));
  }
  const t0 = performance.now();
  const c0 = cpuMs();
  const res = onServer(() => server.finalize());
  const finalizeMs = performance.now() - t0;
  const finalizeCpu = cpuMs() - c0;
  const unmaskStageMs = performance.now() - unmaskT0;
  const unmaskStageCpu = cpuMs() - unmaskCpu0;
  if (!res.ok) throw new Error(res.reason);
  let maxErr = 0;
  for (let j = 0; j < M; j++) maxErr = Math.max(maxErr, Math.abs(res.mean[j] - exact[j] / wsum));
  const bound = P.quantizationBound(params, res.survivors.length);
  const live = ids.filter((a) => !dropped.has(a));
  const plain = M * 4;
  const perAgentUp = median(live.map((a) => up.get(a)));
  const perAgentDown = median(live.map((a) => down.get(a)));
  return {
    agents: n, dropout: rate, dropoutStage: stage, quantization: quant, params: M, neighbors: params.neighbors, threshold: params.threshold, bits: params.bits,
    survivors: res.survivors.length, droppedCount: res.dropped.length,
    agentCpuMsMedian: median(live.map((a) => agentCpu.get(a))), maskedInputCpuMsMedian: median(maskCpu),
    bytesUpPerAgent: perAgentUp, bytesDownPerAgent: perAgentDown, plaintextBytes: plain,
    upRatio: perAgentUp / plain, upDownRatio: (perAgentUp + perAgentDown) / plain,
    coordinatorAddInputsCpuMs: addCpu, coordinatorFinalizeMs: finalizeMs, coordinatorFinalizeCpuMs: finalizeCpu,
    coordinatorUnmaskStageMs: unmaskStageMs, coordinatorUnmaskStageCpuMs: unmaskStageCpu, coordinatorCpuMsTotal: serverCpu,
    peakRssMB: process.resourceUsage().maxRSS / 1024,
    maxAbsErrorOfMean: maxErr, boundOfMean: (bound.weightedSum + bound.weightSum * params.clipRange) / wsum,
  };
}

if (args.includes('--child')) {
  const [n, rate, stage, quant] = option('--child', '').split(',');
  process.stdout.write('RESULT ' + JSON.stringify(child(Number(n), Number(rate), stage, quant ?? 'ring')) + '\n');
} else {
  const agents = option('--agents', '10,50,100').split(',').map(Number);
  const drops = option('--dropouts', '0,0.3').split(',').map(Number);
  const stage = option('--dropout-stage', 'masked');
  const quants = option('--quantization', 'ring').split(',');
  for (const q of quants) if (!['ring', 'int8'].includes(q)) throw new Error(`--quantization: ring or int8, got ${q}`);
  const out = option('--out', path.join(HERE, 'results', 'secagg.json'));
  const rows = [];
  const hdr = ['agents', 'drop', 'quant.', 'bits', 'k', 't', 'agent CPU', 'masked in.', 'up/plain', '(up+down)/plain', 'coord. add (CPU)', 'finalize wall (CPU)', 'unmask stage', 'peak RSS', 'max err', 'bound'];
  console.log(hdr.join(' | '));
  for (const n of agents)
    for (const d of drops)
    for (const q of quants) {
      const t0 = Date.now();
      const r = spawnSync(process.execPath, [fileURLToPath(import.meta.url), '--child', `${n},${d},${stage},${q}`, '--params', String(M)], { encoding: 'utf8', maxBuffer: 1 << 24 });
      const line = r.stdout.split('\n').find((l) => l.startsWith('RESULT '));
      if (!line) throw new Error(`child ${n},${d} failed (${r.status}): ${r.stderr}`);
      const x = { ...JSON.parse(line.slice(7)), wallSeconds: (Date.now() - t0) / 1000, loadavg1: os.loadavg()[0] };
      rows.push(x);
      console.log(
        [x.agents, `${x.dropout * 100}%`, x.quantization, x.bits, x.neighbors, x.threshold, `${(x.agentCpuMsMedian / 1000).toFixed(2)} s`, `${(x.maskedInputCpuMsMedian / 1000).toFixed(2)} s`,
          `${x.upRatio.toFixed(3)}x`, `${x.upDownRatio.toFixed(3)}x`, `${(x.coordinatorAddInputsCpuMs / 1000).toFixed(2)} s`, `${(x.coordinatorFinalizeMs / 1000).toFixed(2)} s (${(x.coordinatorFinalizeCpuMs / 1000).toFixed(2)} s)`,
          `${(x.coordinatorUnmaskStageMs / 1000).toFixed(2)} s`, `${x.peakRssMB.toFixed(0)} MB`, x.maxAbsErrorOfMean.toExponential(1), x.boundOfMean.toExponential(1)].join(' | '),
      );
    }
  mkdirSync(path.dirname(out), { recursive: true });
  writeFileSync(
    out,
    JSON.stringify(
      {
        date: new Date().toISOString(), node: process.version, cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model, prg: P.PRG_ALGORITHM, dropoutStage: stage,
        notes: 'agent CPU: median over live agents of CPU ms in its SecAggClient calls (one process, agents run one after another); bytes: JSON stage messages + raw masked vector, median over live agents; plaintext: float32 update; finalize: the coordinator rebuilding secrets and removing masks (wall ms); unmask stage: holders answering + finalize; peak RSS: the whole child process (agents included), maxRSS',
        rows,
      },
      null,
      2,
    ) + '\n',
  );
  console.log(`wrote ${path.relative(process.cwd(), out)}`);
}
