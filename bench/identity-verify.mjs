// Agent signature verification throughput on the coordinator: ed25519 verify of update signatures (identity.ts) with
// node:crypto (OpenSSL, what the coordinator uses) against tweetnacl (pure JS), plus signing and the full join check.
// Prints a table, writes bench/results/identity-verify.json.
//   node bench/identity-verify.mjs [--seconds 2]     TWEETNACL=/path/to/node_modules/tweetnacl to compare (optional)
import { createRequire } from 'node:module';
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { generateSigningKeyPair, payloadSha256, rawPublicKey, signUpdate, updateSigningMessage, verifyUpdate, signJoin, verifyJoin, signingKeyFingerprint } from '@fedge/proto';

const here = path.dirname(fileURLToPath(import.meta.url));
const args = Object.fromEntries(process.argv.slice(2).map((a, i, all) => (a.startsWith('--') ? [a.slice(2), all[i + 1]] : [])).filter((x) => x.length));
const SECONDS = Number(args.seconds ?? 2);
const N = 256; // distinct signed messages, cycled

const { privateKey, publicKey } = generateSigningKeyPair();
const refs = Array.from({ length: N }, (_, i) => ({
  agentId: 'agent-0123abcd', taskId: `task-${i}`, runId: 'run-89abcdef', round: i, modelVersion: i, kind: 'train', numExamples: 600, encoding: 'float32-delta', error: '',
  payloadSha256: payloadSha256(Buffer.from(String(i))),
}));
const sigs = refs.map((r) => signUpdate(privateKey, r));
const msgs = refs.map((r) => updateSigningMessage(r));

/** fn(i) for a slice of `ms`: operations per second. */
function slice(fn, ms) {
  const end = performance.now() + ms;
  let n = 0;
  const t0 = performance.now();
  while (performance.now() < end) for (let k = 0; k < 16; k++) fn(n++ % N);
  return n / ((performance.now() - t0) / 1000);
}

const fp = signingKeyFingerprint(publicKey);
const proofs = refs.map((r, i) => ({ name: `cam-${i}`, agentId: '', nonce: `nonce-${i}`, timeMs: 1_700_000_000_000 + i, keyFingerprint: fp }));
const joinSigs = proofs.map((p) => signJoin(privateKey, p));
let nacl;
try {
  nacl = createRequire(import.meta.url)(process.env.TWEETNACL ?? 'tweetnacl');
} catch {
  nacl = undefined;
}
const ops = [
  ['verify update (node:crypto, coordinator path)', (i) => { if (!verifyUpdate(publicKey, refs[i], sigs[i])) throw new Error('verify failed'); }],
  ['sign update (node:crypto, agent)', (i) => signUpdate(privateKey, refs[i])],
  ['verify join proof (node:crypto)', (i) => { if (!verifyJoin(publicKey, proofs[i], joinSigs[i])) throw new Error('verify failed'); }],
];
if (nacl) {
  const pub = new Uint8Array(rawPublicKey(publicKey));
  ops.push(['verify update (tweetnacl 1.x, pure JS)', (i) => { if (!nacl.sign.detached.verify(msgs[i], sigs[i], pub)) throw new Error('verify failed'); }]);
}
for (const [, fn] of ops) slice(fn, 100); // warm up
// Interleaved slices, median per operation: a busy neighbour on a shared machine slows every operation alike.
const REPS = 7;
const samples = ops.map(() => []);
for (let r = 0; r < REPS; r++) ops.forEach(([, fn], k) => samples[k].push(slice(fn, (SECONDS * 1000) / REPS)));
const rows = ops.map(([op], k) => ({ op, perSec: [...samples[k]].sort((a, b) => a - b)[REPS >> 1], samples: samples[k].map(Math.round) }));

const base = rows[0].perSec;
console.log(`ed25519 update signatures, ${os.cpus()[0]?.model ?? 'cpu'} (${os.cpus().length} cores), node ${process.version}`);
console.log(`${'operation'.padEnd(48)} ${'per second'.padStart(12)} ${'vs node verify'.padStart(15)}`);
for (const r of rows) console.log(`${r.op.padEnd(48)} ${Math.round(r.perSec).toLocaleString('en-US').padStart(12)} ${(r.perSec / base).toFixed(3).padStart(15)}`);
if (!nacl) console.log('(tweetnacl not installed: set TWEETNACL=/path/to/tweetnacl to compare)');

const out = path.join(here, 'results', 'identity-verify.json');
mkdirSync(path.dirname(out), { recursive: true });
writeFileSync(out, `${JSON.stringify({ date: new Date().toISOString(), node: process.version, cpu: os.cpus()[0]?.model, cores: os.cpus().length, seconds: SECONDS, rows }, null, 2)}\n`);
console.log(`wrote ${path.relative(process.cwd(), out)}`);
