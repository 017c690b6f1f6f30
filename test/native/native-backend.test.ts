/**
 * The native TensorFlow backend job: @tensorflow/tfjs-node (installed by scripts/install-native-backend.sh) is
 * selected, trains in the agent's worker thread, learns the MLP and the CNN, matches wasm's accuracy for the same
 * seeds, shows in `fedge agent list` and `fedge demo --format json`; and an addon that cannot load is an error
 * with `--backend tensorflow` and a fallback to wasm in `auto`.
 *
 * Gate: .ci/run installs the backend and sets FEDGE_NATIVE_REQUIRED=1, so there a missing backend FAILS this file.
 * On a developer machine without it, the tests that need it are skipped and their name says why.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { fedge, killAll, lastJson, startAgent, startCoordinator } from '../e2e/harness.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const BREAK = path.join(root, 'test/native/break-native-addon.cjs');
const required = process.env['FEDGE_NATIVE_REQUIRED'] === '1';

/** Loads tfjs-node in a child process, as an agent would: '' when it works, else why not. */
function nativeProblem(): string {
  const r = spawnSync(process.execPath, ['-e', "const tf = require('@tensorflow/tfjs-node'); if (tf.getBackend() !== 'tensorflow') throw new Error('backend ' + tf.getBackend())"], {
    cwd: path.join(root, 'packages/ml'),
    encoding: 'utf8',
    env: { ...process.env, TF_CPP_MIN_LOG_LEVEL: '2' },
  });
  return r.status === 0 ? '' : (r.stderr.split('\n').find((l) => /^\w*Error: /.test(l)) ?? r.stderr.trim().slice(0, 300));
}
const problem = nativeProblem();
const available = problem === '';
const skipReason = available ? '' : ` [SKIPPED: native backend not installed (${problem.slice(0, 120)}); run scripts/install-native-backend.sh]`;

const dirs: string[] = [];
afterAll(() => {
  killAll();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

interface DemoJson { status: string; backend: string; agentBackends: string[]; finalAccuracy: number | null; initialAccuracy: number | null; rounds: number; totalSeconds: number }

async function demo(args: string[], env: Record<string, string>): Promise<DemoJson> {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'fedge-native-'));
  dirs.push(dataDir);
  const res = await fedge(['demo', '--agents', '2', ...args, '--data-dir', dataDir, '--format', 'json'], env);
  expect(res.code, res.stderr.slice(-2000)).toBe(0);
  return lastJson<DemoJson>(res.stdout);
}

describe.runIf(required)('CI gate (FEDGE_NATIVE_REQUIRED=1)', () => {
  it('the native backend that .ci/run installed loads', () => {
    expect(problem, 'scripts/install-native-backend.sh ran, yet @tensorflow/tfjs-node does not load').toBe('');
  });
});

describe.skipIf(!available)(`native TensorFlow backend${skipReason}`, () => {
  it('backend selection reports tensorflow; training and evaluation release every tensor', async () => {
    const ml = await import('@fedge/ml');
    const info = await ml.initBackend();
    expect(info).toMatchObject({ name: 'tensorflow', note: expect.stringMatching(/@tensorflow\/tfjs-node/) });
    expect(ml.tf.getBackend()).toBe('tensorflow');
    // What the agent's training worker runs, task after task: no tensor may survive a round.
    const { train, test } = ml.loadMnist();
    const data = ml.subset(train, Array.from({ length: 500 }, (_, i) => i));
    const model = ml.createBuiltinModel('mnist-cnn', 1);
    const before = ml.tf.memory().numTensors;
    for (let round = 0; round < 2; round++) {
      await ml.trainLocal(model, data, { epochs: 1, batchSize: 50, learningRate: 0.1, seed: round });
      await ml.evaluate(model, test);
      expect(ml.tf.memory().numTensors).toBe(before);
    }
    model.dispose();
  });

  it('an agent with --backend tensorflow joins, trains in its worker thread, and `fedge agent list` shows the backend', async () => {
    const coord = await startCoordinator();
    const agent = startAgent(coord.address, ['--name', 'native-0', '--backend', 'tensorflow', '--num-partitions', '10', '--partition-id', '0']);
    await agent.waitFor(/joined coordinator/);
    expect(agent.output()).toMatch(/tfjs backend \(training worker\): native libtensorflow/);
    const list = await fedge(['agent', 'list', '--coordinator', coord.address, '--format', 'json']);
    const agents = JSON.parse(list.stdout) as { name: string; backend: string }[]; // --format json: an array of agents
    expect(agents.find((a) => a.name === 'native-0')?.backend).toBe('tensorflow');
    const table = await fedge(['agent', 'list', '--coordinator', coord.address]);
    expect(table.stdout).toMatch(/native-0.*tensorflow/);
    const run = await fedge(['run', 'start', '--coordinator', coord.address, '--model', 'mnist-mlp', '--rounds', '1', '--min-agents', '1', '--watch', '--format', 'json']);
    expect(run.code, run.stderr).toBe(0);
    expect(lastJson<{ status: string }>(run.stdout).status).toBe('completed');
    expect(agent.output()).not.toMatch(/training worker (crashed|exited)/);
  }, 90_000);

  it('MLP: the same seeds give the same accuracy on tensorflow as on wasm (within 2 points), and both learn', async () => {
    const args = ['--model', 'mnist-mlp', '--rounds', '2', '--seed', '7'];
    const native = await demo(args, { FEDGE_BACKEND: 'tensorflow' });
    const wasm = await demo(args, { FEDGE_BACKEND: 'wasm' });
    expect(native).toMatchObject({ status: 'completed', backend: 'tensorflow', agentBackends: ['tensorflow'], rounds: 2 });
    expect(wasm).toMatchObject({ status: 'completed', backend: 'wasm' });
    expect(native.finalAccuracy!).toBeGreaterThan(0.85);
    expect(Math.abs(native.finalAccuracy! - wasm.finalAccuracy!)).toBeLessThan(0.02);
    console.log(`mnist-mlp 2 rounds: tensorflow ${native.finalAccuracy} (${native.totalSeconds} s), wasm ${wasm.finalAccuracy} (${wasm.totalSeconds} s)`);
  }, 120_000);

  it('CNN: one round on tensorflow lifts accuracy far above the untrained model', async () => {
    // Batch 50 (the demo's CNN default is 10): fewer, larger steps, where the native backend gains most; brief.
    const cnn = await demo(['--model', 'mnist-cnn', '--rounds', '1', '--batch-size', '50', '--seed', '7'], { FEDGE_BACKEND: 'tensorflow' });
    expect(cnn).toMatchObject({ status: 'completed', backend: 'tensorflow' });
    expect(cnn.initialAccuracy!).toBeLessThan(0.3);
    expect(cnn.finalAccuracy!).toBeGreaterThan(0.6);
    console.log(`mnist-cnn 1 round on tensorflow: ${cnn.initialAccuracy} -> ${cnn.finalAccuracy} (${cnn.totalSeconds} s)`);
  }, 120_000);
});

// These need tfjs-node installed (its addon is then made to fail), not working: they run wherever the package is.
describe('a tfjs-node addon that cannot load', () => {
  const broken = { NODE_OPTIONS: `--require ${BREAK}` };

  it('--backend tensorflow: the agent exits with E_BACKEND saying why and how to install it', async () => {
    const coord = await startCoordinator();
    const agent = startAgent(coord.address, ['--name', 'no-native', '--backend', 'tensorflow'], broken);
    expect(await agent.exited).not.toBe(0);
    const out = agent.output();
    expect(out).toMatch(/E_BACKEND/);
    expect(out).toMatch(/native TensorFlow backend was asked for/);
    // Why: the dlopen failure; on a machine without the backend, that the addon was never built or the package is
    // not installed (the preload has nothing to break there); how: the script.
    expect(out).toMatch(/cannot open shared object file|tfjs_binding\.node\) can not be found|is not installed/);
    expect(out).toMatch(/scripts\/install-native-backend\.sh/);
    expect(out).not.toMatch(/joined coordinator/);
  }, 60_000);

  it('auto: the demo falls back to wasm, names it in its result, and the agents log why', async () => {
    const r = await demo(['--model', 'mnist-mlp', '--rounds', '1', '--seed', '7'], broken);
    expect(r).toMatchObject({ status: 'completed', backend: 'wasm', agentBackends: ['wasm'] });
    expect(r.finalAccuracy!).toBeGreaterThan(0.8);
  }, 90_000);
});
