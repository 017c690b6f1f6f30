/** Picks the fastest TensorFlow.js backend available: native tfjs-node(-gpu), else wasm with fedge kernels, else cpu. */
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { FedgeError } from '@fedge/proto';
import { installWasmTrainingKernels } from './wasm-kernels.js';

export type BackendPreference = 'auto' | 'tensorflow' | 'wasm' | 'cpu';
export interface BackendInfo {
  name: 'tensorflow' | 'tensorflow-gpu' | 'wasm' | 'cpu';
  simd: boolean;
  note: string;
}

const PREFERENCES: readonly BackendPreference[] = ['auto', 'tensorflow', 'wasm', 'cpu'];
const require = createRequire(import.meta.url);

// libtensorflow's start-up notices (CPU features, oneDNN) would go to every agent's stderr. Set at import, on the
// main thread: libtensorflow reads the process environment, which a worker thread's process.env does not write to.
process.env['TF_CPP_MIN_LOG_LEVEL'] ??= '2';

let current: { pref: BackendPreference; info: BackendInfo } | undefined;
let pending: Promise<BackendInfo> | undefined;

export function backendInfo(): BackendInfo | undefined {
  return current?.info;
}

/** Explicit argument wins; `auto`/absent defers to env FEDGE_BACKEND, then to auto-detection. */
function resolvePreference(pref: BackendPreference | undefined): BackendPreference {
  // '' is "not set" (an empty FEDGE_BACKEND= reaches here as the CLI's default); anything else unknown is an error,
  // not a silent drop to the slowest backend, which is where an unmatched name used to end up.
  if (pref) {
    if (!(PREFERENCES as readonly string[]).includes(pref))
      throw new FedgeError('E_BACKEND', `backend "${pref}" is not one of ${PREFERENCES.join(', ')}`);
    if (pref !== 'auto') return pref;
  }
  const env = process.env['FEDGE_BACKEND']?.trim().toLowerCase();
  if (!env) return 'auto';
  if (!(PREFERENCES as readonly string[]).includes(env))
    throw new FedgeError('E_BACKEND', `FEDGE_BACKEND="${env}" is not one of ${PREFERENCES.join(', ')}`);
  return env as BackendPreference;
}

/**
 * Initialises the backend once per process. Repeat calls return the same info unless a different explicit
 * preference is asked for, in which case the backend is switched (useful for benchmarks and tests).
 */
export async function initBackend(pref?: BackendPreference): Promise<BackendInfo> {
  const want = resolvePreference(pref);
  if (pending) await pending.catch(() => undefined);
  if (current && (want === 'auto' || want === current.pref || want === kind(current.info))) return current.info;
  pending = select(want).then((info) => {
    current = { pref: want, info };
    return info;
  });
  try {
    return await pending;
  } finally {
    pending = undefined;
  }
}

function kind(info: BackendInfo): BackendPreference {
  return info.name === 'tensorflow-gpu' ? 'tensorflow' : info.name;
}

/** How to get the native backend, in every message that says it is missing or broken. */
export const NATIVE_INSTALL_HINT =
  'install it with `bash scripts/install-native-backend.sh` in the fedge checkout after `npm ci` ' +
  '(FEDGE_LIBTENSORFLOW_DIR=DIR for an offline libtensorflow; README "Installing the native backend")';

async function select(want: BackendPreference): Promise<BackendInfo> {
  const failures: string[] = [];
  if (want === 'auto' || want === 'tensorflow') {
    for (const [pkg, name] of [['@tensorflow/tfjs-node-gpu', 'tensorflow-gpu'], ['@tensorflow/tfjs-node', 'tensorflow']] as const) {
      const info = await tryNative(pkg, name, failures);
      if (info) return info;
    }
    if (want === 'tensorflow')
      throw new FedgeError('E_BACKEND', `the native TensorFlow backend was asked for (--backend/FEDGE_BACKEND tensorflow) but cannot load: ${failures.join('; ')}; ${NATIVE_INSTALL_HINT}`);
  }
  if (want === 'auto' || want === 'wasm') {
    try {
      return await initWasm(want === 'auto', failures);
    } catch (err) {
      if (want === 'wasm') throw new FedgeError('E_BACKEND', `wasm backend failed to initialise: ${msg(err)}`, { cause: err });
      failures.push(`wasm: ${msg(err)}`);
    }
  }
  if (!(await tf.setBackend('cpu'))) throw new FedgeError('E_BACKEND', 'cpu backend failed to initialise');
  const why = failures.length ? ` (${failures.join('; ')})` : '';
  return { name: 'cpu', simd: false, note: `pure-JS cpu: very slow for the CNN${why}; for native speed ${NATIVE_INSTALL_HINT}` };
}

/**
 * Loads a tfjs-node package and proves it computes. Any failure (package absent, addon not built, libtensorflow
 * missing or incompatible, a kernel that throws) is recorded and the caller falls back; nothing is half-selected.
 */
async function tryNative(pkg: string, name: 'tensorflow' | 'tensorflow-gpu', failures: string[]): Promise<BackendInfo | undefined> {
  try {
    require.resolve(`${pkg}/package.json`);
  } catch {
    // Not installed. The GPU package is optional on top of the CPU one: its absence is not worth a word.
    if (name === 'tensorflow') failures.push(`${pkg} is not installed`);
    return undefined;
  }
  try {
    // Optional dependency: absent where it was not installed, so import by variable name.
    await import(pkg);
    if (!(await tf.setBackend('tensorflow'))) throw new Error('setBackend("tensorflow") returned false');
    // A loaded addon whose libtensorflow lacks or breaks a symbol fails here, not in the first training step.
    const sum = tf.tidy(() => tf.add(tf.tensor1d([1, 2]), tf.tensor1d([3, 4])).dataSync());
    if (sum[0] !== 4 || sum[1] !== 6) throw new Error(`smoke test computed [${Array.from(sum).join(', ')}] for [1,2]+[3,4]`);
    return { name, simd: true, note: `native libtensorflow via ${pkg}` };
  } catch (err) {
    // tfjs-node's own message for a missing addon is a paragraph telling you to rebuild it; its first line says what.
    failures.push(`${pkg} is installed but does not load (${msg(err).split('\n')[0]})`);
    return undefined;
  }
}

async function initWasm(auto: boolean, failures: readonly string[]): Promise<BackendInfo> {
  const wasm = await import('@tensorflow/tfjs-backend-wasm');
  // The .wasm binaries ship next to the package's node entry point (dist/); point emscripten there explicitly.
  wasm.setWasmPaths(dirname(require.resolve('@tensorflow/tfjs-backend-wasm')) + '/');
  const kernels = installWasmTrainingKernels();
  if (!(await tf.setBackend('wasm'))) throw new Error('setBackend("wasm") returned false');
  const simd = tf.env().getBool('WASM_HAS_SIMD_SUPPORT') as boolean;
  const threads = tf.env().getBool('WASM_HAS_MULTITHREAD_SUPPORT') as boolean;
  // In auto mode, say why native was passed over: "not installed" and "installed but broken" need different fixes.
  const hint = auto ? `; native backend not used (${failures.join('; ')}); for native speed ${NATIVE_INSTALL_HINT}` : '';
  return {
    name: 'wasm',
    simd,
    note: `wasm (${simd ? 'SIMD' : 'no SIMD'}, ${threads ? 'threaded' : 'single-threaded'}) with fedge kernels for ${kernels.join(', ')}${hint}`,
  };
}

function msg(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
