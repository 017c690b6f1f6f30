/** End to end: central DP-FedAvg over real processes; epsilon per round matches `fedge privacy epsilon`, maxEpsilon stops the run. */
import { afterAll, describe, expect, it } from 'vitest';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createServer } from 'node:net';
import { FEDGE, fedge, killAll, lastJson, startAgent, startCoordinator, startProcess, type Proc } from './harness.js';

interface RunJson {
  id: string;
  status: string;
  statusMessage?: string;
  round: number;
  metrics: { round: number; status: string; completed: number; epsilon?: number; clipNorm?: number; centralAccuracy?: number }[];
}

afterAll(() => killAll());

function configFile(cfg: unknown): string {
  const f = path.join(mkdtempSync(path.join(tmpdir(), 'fedge-dp-')), 'run.json');
  writeFileSync(f, JSON.stringify(cfg));
  return f;
}

async function plannedEpsilon(q: number, z: number, steps: number, delta: number): Promise<number> {
  const r = await fedge(['privacy', 'epsilon', '--sampling-rate', String(q), '--noise-multiplier', String(z), '--steps', String(steps), '--delta', String(delta), '--format', 'json']);
  expect(r.code, r.stderr).toBe(0);
  return lastJson<{ epsilon: number }>(r.stdout).epsilon;
}

describe('differential privacy over gRPC', () => {
  it('central DP-FedAvg: epsilon after each round equals the planner, and maxEpsilon stops the run before it is exceeded', async () => {
    const coord = await startCoordinator();
    const agents = [0, 1, 2, 3].map((i) =>
      startAgent(coord.address, ['--name', `dp-${i}`, '--partition', 'iid', '--num-partitions', '4', '--partition-id', String(i), '--seed', '3']),
    );
    await Promise.all(agents.map((a) => a.waitFor(/joined coordinator/)));
    const q = 0.5;
    const z = 1.0;
    const delta = 1e-5;
    const base = {
      model: 'mnist-mlp',
      agentsPerRound: { fraction: q, min: 4 },
      epochs: 1,
      learningRate: 0.1,
      roundDeadlineSeconds: 120,
      privacy: { mode: 'central', clipNorm: 1, noiseMultiplier: z, delta },
    };

    const res = await fedge(['run', 'start', '--coordinator', coord.address, '--config', configFile({ ...base, rounds: 3 }), '--watch', '--format', 'json']);
    expect(res.code, res.stderr).toBe(0);
    const run = lastJson<RunJson>(res.stdout);
    expect(run.status).toBe('completed');
    expect(run.metrics).toHaveLength(3);
    const planned = await Promise.all([1, 2, 3].map((t) => plannedEpsilon(q, z, t, delta)));
    run.metrics.forEach((m, i) => {
      expect(m.status).toBe('completed'); // a DP round always publishes
      expect(m.epsilon).toBeDefined();
      expect(Math.abs(m.epsilon! - planned[i]!) / planned[i]!).toBeLessThan(1e-9);
      expect(m.clipNorm).toBe(1);
    });
    expect(planned[2]!).toBeGreaterThan(planned[1]!);

    const show = await fedge(['run', 'show', run.id, '--coordinator', coord.address]);
    expect(show.code, show.stderr).toBe(0);
    expect(show.stdout).toMatch(/privacy central DP: clip norm 1, noise multiplier 1, epsilon [\d.]+ at delta 0\.00001/);
    expect(show.stdout).toMatch(/EPSILON/);

    // A budget between epsilon(2 rounds) and epsilon(3 rounds): the run stops cleanly before round 3.
    const maxEpsilon = (planned[1]! + planned[2]!) / 2;
    const capped = await fedge(['run', 'start', '--coordinator', coord.address, '--format', 'json', '--watch',
      '--config', configFile({ ...base, rounds: 5, privacy: { ...base.privacy, maxEpsilon } })]);
    expect(capped.code, capped.stderr).toBe(0);
    const c = lastJson<RunJson>(capped.stdout);
    expect(c.status).toBe('completed');
    expect(c.metrics).toHaveLength(2);
    expect(c.metrics.at(-1)!.epsilon!).toBeLessThanOrEqual(maxEpsilon);
    expect(c.statusMessage).toMatch(/privacy budget: stopped before round 3, which would take epsilon from [\d.]+ to [\d.]+ > maxEpsilon/);
    expect(c.statusMessage).toMatch(/completed 2 of 5 rounds/);
  }, 240_000);

  it('a central DP run survives SIGKILLs of a --data-dir coordinator: it completes and epsilon still matches the planner', async () => {
    const dataDir = mkdtempSync(path.join(tmpdir(), 'fedge-e2e-dp-crash-'));
    const port = await new Promise<number>((resolve) => {
      const srv = createServer().listen(0, '127.0.0.1', () => {
        const { port: p } = srv.address() as { port: number };
        srv.close(() => resolve(p));
      });
    });
    const address = `127.0.0.1:${port}`;
    const serve = (): Proc => startProcess(FEDGE, ['serve', '--listen', address, '--data-dir', dataDir]);
    let coord = serve();
    await coord.waitFor(/coordinator ready on/);
    const agents = [0, 1, 2, 3].map((i) =>
      startAgent(address, ['--name', `dpc-${i}`, '--partition', 'iid', '--num-partitions', '4', '--partition-id', String(i), '--seed', '3']),
    );
    await Promise.all(agents.map((a) => a.waitFor(/joined coordinator/)));
    const q = 0.5;
    const z = 1.0;
    const delta = 1e-5;
    const rounds = 6;
    const cfg = {
      model: 'mnist-mlp', rounds, agentsPerRound: { fraction: q, min: 4 }, epochs: 1, learningRate: 0.1, roundDeadlineSeconds: 120,
      privacy: { mode: 'central', clipNorm: 1, noiseMultiplier: z, delta, adaptiveClipping: { targetQuantile: 0.5, learningRate: 0.2 } },
    };
    const started = await fedge(['run', 'start', '--coordinator', address, '--config', configFile(cfg), '--format', 'json']);
    expect(started.code, started.stderr).toBe(0);
    const id = lastJson<{ id: string }>(started.stdout).id;
    const show = async (): Promise<RunJson | undefined> => {
      const r = await fedge(['run', 'show', id, '--coordinator', address, '--format', 'json']);
      return r.code === 0 ? lastJson<RunJson>(r.stdout) : undefined;
    };
    const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
    const kills = 2;
    for (let k = 1; k <= kills; k++) {
      // Kill once round 2k-1 is recorded, i.e. mid-run with accounted steps behind it.
      for (let i = 0; i < 600; i++) {
        const r = await show();
        if ((r?.round ?? 0) >= 2 * k - 1 || r?.status === 'completed') break;
        await sleep(100);
      }
      coord.child.kill('SIGKILL');
      await coord.exited;
      coord = serve();
      await coord.waitFor(/coordinator ready on/);
    }
    let run: RunJson | undefined;
    for (let i = 0; i < 1200; i++) {
      run = await show();
      if (run?.status === 'completed' || run?.status === 'failed') break;
      await sleep(200);
    }
    expect(run?.status, run?.statusMessage).toBe('completed');
    expect(run!.metrics.map((m) => m.round)).toEqual(Array.from({ length: rounds }, (_, i) => i + 1));
    const planned = await Promise.all(Array.from({ length: rounds + kills }, (_, t) => plannedEpsilon(q, z, t + 1, delta)));
    // Round r is step r; only a kill after a version was released but before its round was recorded accounts the
    // redone round again (over-reporting, never under-reporting), at most once per kill.
    let extra = 0;
    run!.metrics.forEach((m, i) => {
      expect(m.epsilon).toBeDefined();
      const steps = planned.findIndex((e) => Math.abs(m.epsilon! - e) / e < 1e-9) + 1;
      expect(steps, `round ${m.round} epsilon ${m.epsilon}`).toBeGreaterThanOrEqual(i + 1 + extra);
      extra = steps - (i + 1);
      expect(extra).toBeLessThanOrEqual(kills);
    });
    console.log(`DP resume: extra accounted steps after ${kills} kills: ${extra}`);
    // Adaptive clipping carried over: the clip norm moved from 1 and every round used a positive one.
    expect(run!.metrics.every((m) => (m.clipNorm ?? 0) > 0)).toBe(true);
    for (const a of agents) a.child.kill('SIGKILL');
    coord.child.kill('SIGKILL');
  }, 300_000);
});
