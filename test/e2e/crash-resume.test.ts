/**
 * Crash safety, bit for bit: a run whose coordinator is SIGKILLed at random points (at least 10, spread over
 * rounds, uploads and aggregation) and restarted on the same data directory ends with exactly the model of an
 * uninterrupted run with the same seed and deterministic agents.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { FEDGE, fedge, killAll, lastJson, startAgent, startProcess, type Proc, freePort } from './harness.js';

afterAll(() => killAll());

const ROUNDS_DEFAULT = 24;
const AGENTS = 3;


const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface RunJson { id: string; status: string; round: number; modelVersion: number; versions: { version: number; sha256: string }[] }

async function show(address: string, id: string): Promise<RunJson | undefined> {
  const r = await fedge(['run', 'show', id, '--coordinator', address, '--format', 'json']);
  return r.code === 0 ? lastJson<RunJson>(r.stdout) : undefined;
}

/**
 * Runs the federation; `kills` > 0 SIGKILLs and restarts the coordinator that many times at random moments.
 * `opts.strategy` adds `--strategy` (a server optimizer keeps moments that must resume exactly too).
 */
async function federate(kills: number, rng: () => number, opts: { rounds?: number; strategy?: string } = {}): Promise<{ sha: string; killed: number; phases: string[]; dataDir: string }> {
  const ROUNDS = opts.rounds ?? ROUNDS_DEFAULT;
  const dataDir = mkdtempSync(path.join(tmpdir(), 'fedge-e2e-crash-'));
  const port = await freePort();
  const address = `127.0.0.1:${port}`;
  const serve = (): Proc => startProcess(FEDGE, ['serve', '--listen', address, '--data-dir', dataDir]);
  let coord = serve();
  await coord.waitFor(/coordinator ready on/);
  const agents = Array.from({ length: AGENTS }, (_, i) =>
    startAgent(address, ['--name', `c-${i}`, '--partition', 'iid', '--num-partitions', String(AGENTS), '--partition-id', String(i), '--seed', '11',
      // Slower training (a sleep after each fit; the math is unchanged) so that rounds outlast the test's own polling.
      ...(kills > 0 ? ['--slowdown', '2'] : [])]),
  );
  await Promise.all(agents.map((a) => a.waitFor(/joined coordinator/)));
  const started = await fedge(['run', 'start', '--coordinator', address, '--model', 'mnist-mlp', '--rounds', String(ROUNDS),
    '--min-agents', String(AGENTS), '--epochs', '1', '--lr', '0.1', '--seed', '5', ...(opts.strategy ? ['--strategy', opts.strategy] : []), '--format', 'json']);
  expect(started.code, started.stderr).toBe(0);
  const id = lastJson<{ id: string }>(started.stdout).id;

  const phases: string[] = [];
  let killed = 0;
  // Kills are spread over the first two thirds of the rounds: kill k waits until the run reaches round
  // 1 + k * span / kills, then lands at a random moment (training, uploads, aggregation) or, a third of the time,
  // right after the restart while agents reconnect. The last third of the run has no kills, so a fast machine cannot
  // finish the run before every kill has landed (a schedule that chased the end of the run was flaky).
  const span = Math.floor((ROUNDS * 2) / 3);
  while (killed < kills) {
    const target = Math.floor((killed * span) / kills);
    for (let i = 0; i < 600 && ((await show(address, id))?.round ?? 0) < target; i++) await sleep(100);
    await sleep(rng() < 0.33 ? rng() * 150 : 50 + rng() * 600);
    const before = await show(address, id);
    if (!before || before.status === 'completed') break;
    phases.push(`round ${before.round + 1}`);
    coord.child.kill('SIGKILL');
    await coord.exited;
    killed++;
    coord = serve();
    await coord.waitFor(/coordinator ready on/);
  }
  let run: RunJson | undefined;
  for (let i = 0; i < 600; i++) {
    run = await show(address, id);
    if (run?.status === 'completed' || run?.status === 'failed') break;
    await sleep(200);
  }
  expect(run?.status).toBe('completed');
  expect(run!.modelVersion).toBe(ROUNDS);
  for (const a of agents) a.child.kill('SIGKILL');
  coord.child.kill('SIGKILL');
  return { sha: run!.versions.find((v) => v.version === ROUNDS)!.sha256, killed, phases, dataDir };
}

describe('crash-safe resume', () => {
  it('10 SIGKILLs at random points leave the final model bit-identical to an uninterrupted run', async () => {
    let seed = 12345;
    const rng = (): number => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const reference = await federate(0, rng);
    const crashed = await federate(10, rng);
    console.log(`killed ${crashed.killed} times during: ${crashed.phases.join(', ')}`);
    expect(crashed.killed).toBeGreaterThanOrEqual(10);
    expect(crashed.sha).toBe(reference.sha);
  }, 600_000);

  it('fedadam: 5 SIGKILLs leave the final model bit-identical to an uninterrupted run (the moments resume with the model)', async () => {
    let seed = 777;
    const rng = (): number => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const opts = { rounds: 8, strategy: 'fedadam:lr=0.01' };
    const t0 = Date.now();
    const reference = await federate(0, rng, opts);
    const crashed = await federate(5, rng, opts);
    console.log(`fedadam: killed ${crashed.killed} times during: ${crashed.phases.join(', ')} (${((Date.now() - t0) / 1000).toFixed(1)}s for both runs)`);
    expect(crashed.killed).toBeGreaterThanOrEqual(5);
    expect(crashed.sha).toBe(reference.sha);
    // The moments are a blob in the model store, not base64 in the run record.
    const models = readdirSync(path.join(crashed.dataDir, 'models')).filter((f) => f.endsWith('.json'));
    const states = models.filter((f) => readFileSync(path.join(crashed.dataDir, 'models', f), 'utf8').includes('fedge-server-opt-state/1'));
    expect(states.length).toBeGreaterThanOrEqual(opts.rounds);
  }, 300_000);

  it('an async (FedBuff) run survives SIGKILLs: it completes every step with consecutive versions', async () => {
    const dataDir = mkdtempSync(path.join(tmpdir(), 'fedge-e2e-crash-async-'));
    const port = await freePort();
    const address = `127.0.0.1:${port}`;
    const serve = (): Proc => startProcess(FEDGE, ['serve', '--listen', address, '--data-dir', dataDir]);
    let coord = serve();
    await coord.waitFor(/coordinator ready on/);
    const agents = [0, 1, 2].map((i) => startAgent(address, ['--name', `ca-${i}`, '--num-partitions', '3', '--partition-id', String(i), '--seed', '4']));
    await Promise.all(agents.map((a) => a.waitFor(/joined coordinator/)));
    const steps = 10;
    const started = await fedge(['run', 'start', '--coordinator', address, '--model', 'mnist-mlp', '--mode', 'async', '--buffer-size', '2',
      '--rounds', String(steps), '--min-agents', '1', '--epochs', '1', '--format', 'json']);
    expect(started.code, started.stderr).toBe(0);
    const id = lastJson<{ id: string }>(started.stdout).id;
    for (let k = 0; k < 3; k++) {
      await sleep(700);
      coord.child.kill('SIGKILL');
      await coord.exited;
      coord = serve();
      await coord.waitFor(/coordinator ready on/);
    }
    let run: (RunJson & { metrics: { round: number; version?: number }[] }) | undefined;
    for (let i = 0; i < 600; i++) {
      run = (await show(address, id)) as typeof run;
      if (run?.status === 'completed' || run?.status === 'failed') break;
      await sleep(200);
    }
    expect(run?.status).toBe('completed');
    expect(run!.metrics.map((m) => m.round)).toEqual(Array.from({ length: steps }, (_, i) => i + 1));
    expect(run!.metrics.map((m) => m.version)).toEqual(Array.from({ length: steps }, (_, i) => i + 1));
    expect(run!.modelVersion).toBe(steps);
  }, 300_000);
});
