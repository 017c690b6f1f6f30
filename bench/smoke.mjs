#!/usr/bin/env node
/**
 * bench:smoke: runs every benchmark briefly (tiny parameters, seconds each) so a broken one (a moved import, a
 * renamed flag, a CLI change) fails CI instead of the next person who wants its numbers. The figures mean nothing.
 *
 *   npx tsc -b && npm run bench:smoke              # every bench in BENCHES
 *   node bench/smoke.mjs --only privacy,mqtt       # some of them
 *
 * Each bench runs from a sandbox copy of bench/ in a temp dir (packages/, node_modules/ and examples/ linked), so
 * whatever it writes to bench/results/ lands in the sandbox: the repository's results are never touched, whichever
 * way the bench picks its output path. Prints one line per bench (exit code, seconds) and exits 1 if any failed.
 */
import { spawn } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** Every bench with its smoke parameters; a bench file missing from this list fails the smoke run. */
const BENCHES = {
  aggregate: { args: ['--reps', '1', '--sizes', '1'], expose: true },
  async: { args: ['--quick', '--agents', '3', '--slowdown', '2', '--rounds', '1', '--async-rounds', '2', '--target', '0.5', '--only', 'waitforall,async'] },
  backends: { args: ['--seconds', '0.5', '--backends', 'wasm', '--demo-rounds', '0'] },
  compression: { args: ['--model', 'mnist-mlp', '--rounds', '1', '--agents', '2', '--codecs', 'none,int8'] },
  'coordinator-rss': { args: ['--agents', '3'] },
  drift: { args: ['--smoke'] },
  'fedprox-synthetic': { args: ['--rounds', '2', '--epochs', '1'] },
  'fedprox-synthetic-agents': { args: ['--rounds', '1', '--epochs', '1', '--arms', 'fedprox-mu1'] },
  flower: { args: ['--only', 'fedge', '--models', 'mnist-cnn', '--rounds', '1', '--clients', '2'] },
  'identity-verify': { args: ['--seconds', '0.2'] },
  learning: { args: ['--quick', '--models', 'mnist-mlp', '--rounds', '1', '--agents', '2'] },
  mqtt: { env: { BENCH_MB: '2', BENCH_REPS: '1' } },
  privacy: { args: ['--agents', '20', '--rounds', '2', '--z', '0,1', '--every', '1'] },
  'retention-rss': { args: ['--rounds', '3', '--keep', '1', '--units', '16'] },
  robust: { args: ['--agents', '4', '--rounds', '1', '--fractions', '0.25', '--ks', '5', '--params', '10000'] },
  scale: { args: ['--agents', '5', '--rounds', '1', '--hidden', '8', '--case-timeout', '120'] },
  serving: { args: ['--smoke'] },
  spool: { args: ['--updates', '20', '--concurrency', '1,4', '--params', '10000'] },
  'serving-while-training': { args: ['--seconds', '1', '--phases', 'idle'] },
  strategies: { args: ['--agents', '2', '--rounds', '1', '--configs', 'fedavg'] },
  tasks: { args: ['--examples', 'wine', '--seeds', '1', '--agents', '2'] },
  transport: { env: { BENCH_MB: '2', BENCH_REPS: '1' } },
  // Added by other work (issue 13, secure aggregation): run when the file exists.
  secagg: { args: ['--params', '10000', '--agents', '3', '--dropouts', '0', '--quantization', 'ring,int8'], optional: true },
  'secagg-prg': { args: ['--reps', '1'], optional: true },
};
/** Modules bench files import, not benchmarks. */
const NOT_BENCHES = new Set(['smoke', 'synthetic-data']);
// Generous: on a machine shared with other jobs a bench that needs 10 s of CPU can take minutes of wall time.
const TIMEOUT_S = Number(process.env.BENCH_SMOKE_TIMEOUT ?? 600);

/**
 * CPU seconds used by this process's waited-for children so far (Linux /proc: cutime + cstime, in clock ticks of
 * 1/100 s), so the report shows what each bench costs apart from how busy the machine is.
 */
function childCpuSeconds() {
  try {
    const fields = readFileSync('/proc/self/stat', 'utf8').split(') ')[1].split(' ');
    return (Number(fields[13]) + Number(fields[14])) / 100;
  } catch {
    return NaN;
  }
}

const onlyArg = process.argv.indexOf('--only');
const only = onlyArg > 0 ? process.argv[onlyArg + 1].split(',') : null;

const files = readdirSync(path.join(ROOT, 'bench')).filter((f) => f.endsWith('.mjs')).map((f) => f.slice(0, -4)).filter((f) => !NOT_BENCHES.has(f));
const unlisted = files.filter((f) => !BENCHES[f]);
if (unlisted.length) {
  process.stderr.write(`bench/smoke.mjs: no smoke parameters for ${unlisted.join(', ')}: add them to BENCHES\n`);
  process.exit(1);
}

/** A temp dir shaped like the repository: bench/ copied (results empty), the rest linked. */
function sandbox() {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'fedge-bench-smoke-'));
  cpSync(path.join(ROOT, 'bench'), path.join(dir, 'bench'), { recursive: true, filter: (src) => !src.includes(`${path.sep}results${path.sep}`) && !src.endsWith(`${path.sep}.venv`) });
  mkdirSync(path.join(dir, 'bench', 'results'), { recursive: true });
  for (const d of ['packages', 'node_modules', 'examples']) symlinkSync(path.join(ROOT, d), path.join(dir, d));
  // flower.mjs needs the Python venv only for its flower side; link it when it exists.
  if (existsSync(path.join(ROOT, 'bench/flower/.venv'))) symlinkSync(path.join(ROOT, 'bench/flower/.venv'), path.join(dir, 'bench/flower/.venv'));
  return dir;
}

function run(dir, name, spec) {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const cpu0 = childCpuSeconds();
    const nodeArgs = spec.expose ? ['--expose-gc'] : [];
    const child = spawn(process.execPath, [...nodeArgs, path.join(dir, 'bench', `${name}.mjs`), ...(spec.args ?? [])], {
      cwd: dir, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, FEDGE_LOG_LEVEL: 'warn', ...(spec.env ?? {}) },
    });
    let out = '';
    child.stdout.on('data', (b) => (out += b));
    child.stderr.on('data', (b) => (out += b));
    const timer = setTimeout(() => child.kill('SIGKILL'), TIMEOUT_S * 1000);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ name, code: signal ? `${signal}${signal === 'SIGKILL' ? ` (over ${TIMEOUT_S} s)` : ''}` : code, seconds: (performance.now() - t0) / 1000, cpu: childCpuSeconds() - cpu0, out });
    });
  });
}

const dir = sandbox();
const results = [];
const t0 = performance.now();
for (const [name, spec] of Object.entries(BENCHES)) {
  if (only && !only.includes(name)) continue;
  if (!files.includes(name)) {
    if (!spec.optional) results.push({ name, code: 'missing file', seconds: 0, out: '' });
    continue;
  }
  const r = await run(dir, name, spec);
  results.push(r);
  console.log(`${r.code === 0 ? 'ok  ' : 'FAIL'} ${name.padEnd(26)} ${r.seconds.toFixed(1).padStart(6)} s  cpu ${r.cpu.toFixed(1).padStart(5)} s${r.code === 0 ? '' : `  (exit ${r.code})`}`);
  if (r.code !== 0) console.log(r.out.split('\n').slice(-25).map((l) => `     | ${l}`).join('\n'));
}
const failed = results.filter((r) => r.code !== 0);
const cpu = results.reduce((a, r) => a + (r.cpu ?? 0), 0);
console.log(`bench:smoke: ${results.length - failed.length}/${results.length} ran in ${((performance.now() - t0) / 1000).toFixed(1)} s (cpu ${cpu.toFixed(1)} s)${failed.length ? `; failed: ${failed.map((r) => r.name).join(', ')}` : ''} (sandbox ${dir})`);
if (!failed.length && !process.env.BENCH_SMOKE_KEEP) rmSync(dir, { recursive: true, force: true });
process.exit(failed.length ? 1 : 0);
