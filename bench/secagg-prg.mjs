// Secure aggregation primitives: which PRG expands mask seeds fastest, and X25519 in tweetnacl vs node:crypto.
//
// Run: npx tsc -b packages/proto && node bench/secagg-prg.mjs   Flags: --reps N (default 7)  --out FILE
//
// Each figure is the median over --reps of CPU time (user + system of this process, one thread), measured
// interleaved so background load on the shared machine hits every candidate alike.
import { createCipheriv, randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import nacl from 'tweetnacl';
import * as P from '../packages/proto/dist/index.js';
import { x25519, x25519Private, boxKey } from '../packages/proto/dist/secagg/keys.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const option = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : dflt;
};
const REPS = Number(option('--reps', '7'));
const OUT = option('--out', path.join(HERE, 'results', 'secagg-prg.json'));
const N = 1_663_371; // mnist-cnn parameters + the weight slot
const median = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
const cpuMs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};
function measure(fns, reps = REPS) {
  const times = Object.fromEntries(Object.keys(fns).map((k) => [k, []]));
  for (const f of Object.values(fns)) f(); // warm up
  for (let r = 0; r < reps; r++)
    for (const [k, f] of Object.entries(fns)) {
      const t0 = cpuMs();
      f();
      times[k].push(cpuMs() - t0);
    }
  return Object.fromEntries(Object.entries(times).map(([k, t]) => [k, median(t)]));
}

// 1. Keystream only: N uint32 from a fresh 32-byte seed.
const seed = new Uint8Array(randomBytes(32));
const expand = Object.fromEntries(P.PRG_ALGORITHMS.map((a) => [a, () => P.prgExpand(seed, N, 32, a)]));
const expandOne = { 'aes-128-ctr one call': () => createCipheriv('aes-128-ctr', seed.subarray(0, 16), Buffer.alloc(16)).update(Buffer.alloc(N * 4)) };
const prgMs = measure({ ...expand, ...expandOne }, REPS);

// 2. The hot path: acc += PRG(seed) over N values (keystream + ring add), the chosen PRG, 20 seeds at once.
const acc = new Uint32Array(N);
const seeds = Array.from({ length: 20 }, () => ({ seed: new Uint8Array(randomBytes(32)), sign: 1 }));
const maskMs = measure({ applyMasks20: () => P.applyMasks(acc, seeds) }, Math.max(3, Math.floor(REPS / 2)));
const perTermMs = maskMs.applyMasks20 / 20;

// 3. X25519: tweetnacl's JavaScript scalar multiply vs OpenSSL's (including the DER import of the public key).
const a = nacl.box.keyPair();
const b = nacl.box.keyPair();
const aPriv = x25519Private(a.secretKey);
const K = 50;
const x = measure({
  'tweetnacl scalarMult': () => { for (let i = 0; i < K; i++) nacl.scalarMult(a.secretKey, b.publicKey); },
  'node:crypto x25519': () => { for (let i = 0; i < K; i++) x25519(aPriv, b.publicKey); },
  'tweetnacl box.before': () => { for (let i = 0; i < K; i++) nacl.box.before(b.publicKey, a.secretKey); },
  'boxKey (node x25519 + hsalsa20)': () => { for (let i = 0; i < K; i++) boxKey(aPriv, b.publicKey); },
  'tweetnacl box.keyPair': () => { for (let i = 0; i < K; i++) nacl.box.keyPair(); },
});
const x25519Us = Object.fromEntries(Object.entries(x).map(([k, v]) => [k, (v * 1000) / K]));

// 4. Shamir split of two secrets into 79 shares (t = 40) and combine of one secret from 40 (k = 78 neighborhood).
const xs = Array.from({ length: 79 }, (_, i) => i + 1);
const sh = P.shamirSplit(seed, 40, xs);
const shamir = measure({ 'split 79 shares t=40': () => P.shamirSplit(seed, 40, xs), 'combine t=40': () => P.shamirCombine(sh, 40) });

const fastest = Object.entries(expand).map(([k]) => [k, prgMs[k]]).sort((p, q) => p[1] - q[1])[0][0];
const rows = [
  ...Object.entries(prgMs).map(([k, v]) => [`PRG ${k}`, `${v.toFixed(1)} ms`, `${((N * 4) / v / 1e6).toFixed(2)} GB/s`]),
  ['applyMasks per seed (keystream + add)', `${perTermMs.toFixed(1)} ms`, `${((N * 4) / perTermMs / 1e6).toFixed(2)} GB/s`],
  ...Object.entries(x25519Us).map(([k, v]) => [k, `${v.toFixed(0)} us`, '']),
  ...Object.entries(shamir).map(([k, v]) => [`shamir ${k}`, `${v.toFixed(2)} ms`, '']),
];
console.log(`secagg primitives, ${N} values (CPU ms, median of ${REPS}); load average ${os.loadavg()[0].toFixed(1)} on ${os.cpus().length} cores`);
for (const r of rows) console.log(r[0].padEnd(42), r[1].padStart(10), r[2].padStart(12));
console.log(`fastest PRG: ${fastest}; protocol uses ${P.PRG_ALGORITHM}`);
mkdirSync(path.dirname(OUT), { recursive: true });
writeFileSync(
  OUT,
  JSON.stringify(
    {
      date: new Date().toISOString(), node: process.version, cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model, loadavg: os.loadavg(), values: N, reps: REPS,
      metric: 'CPU ms of this process (user + system), median',
      prgMs, applyMasksPerSeedMs: perTermMs, fastestPrg: fastest, chosenPrg: P.PRG_ALGORITHM, x25519Us, shamirMs: shamir,
    },
    null,
    2,
  ) + '\n',
);
console.log(`wrote ${path.relative(process.cwd(), OUT)}`);
