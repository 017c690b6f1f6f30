/** End to end over real gRPC: a coordinator process, agent processes and the fedge CLI federate real MNIST digits. */
import { afterAll, describe, expect, it } from 'vitest';
import { fedge, killAll, lastJson, startAgent, startCoordinator, freePort } from './harness.js';


interface RunJson {
  id: string;
  status: string;
  round: number;
  accuracy?: number;
  initialAccuracy?: number;
  metrics: { round: number; status: string; completed: number; failed: number; centralAccuracy?: number; federatedAccuracy?: number; trainLoss?: number; seconds: number }[];
  roundsDetail: { round: number; participants: { name: string; outcome: string; reason?: string }[] }[];
}

afterAll(() => killAll());

describe('federation over gRPC', () => {
  it('3 agents complete 3 rounds of mnist-mlp and accuracy rises', async () => {
    const coord = await startCoordinator();
    const agents = [0, 1, 2].map((i) =>
      startAgent(coord.address, ['--name', `e2e-${i}`, '--partition', 'iid', '--num-partitions', '3', '--partition-id', String(i), '--seed', '1']),
    );
    await Promise.all(agents.map((a) => a.waitFor(/joined coordinator/)));

    const list = await fedge(['agent', 'list', '--coordinator', coord.address, '--format', 'json']);
    expect(list.code).toBe(0);
    const listed = JSON.parse(list.stdout) as { name: string; status: string; backend: string }[];
    expect(listed.map((a) => a.name).sort()).toEqual(['e2e-0', 'e2e-1', 'e2e-2']);
    expect(listed.every((a) => a.status === 'online' && a.backend !== '')).toBe(true);

    const res = await fedge(['run', 'start', '--coordinator', coord.address, '--model', 'mnist-mlp', '--rounds', '3', '--min-agents', '3',
      '--epochs', '1', '--lr', '0.1', '--watch', '--format', 'json']);
    expect(res.code, res.stderr).toBe(0);
    const run = lastJson<RunJson>(res.stdout);
    expect(run.status).toBe('completed');
    expect(run.metrics).toHaveLength(3);
    for (const m of run.metrics) {
      expect(m.status).toBe('completed');
      expect(m.completed).toBe(3);
    }
    const acc = run.metrics.map((m) => m.centralAccuracy!);
    expect(run.initialAccuracy!).toBeLessThan(0.3);
    expect(acc[0]!).toBeGreaterThan(run.initialAccuracy! + 0.3);
    expect(acc[2]!).toBeGreaterThanOrEqual(acc[0]! - 0.01);
    expect(acc[2]!).toBeGreaterThan(0.85);
    // Federated evaluation of each version arrives from the agents' held-out splits.
    expect(run.metrics[2]!.federatedAccuracy!).toBeGreaterThan(0.8);

    const show = await fedge(['run', 'show', run.id, '--coordinator', coord.address, '--format', 'json']);
    const shown = lastJson<RunJson>(show.stdout);
    expect(shown.status).toBe('completed');
    expect(shown.round).toBe(3);
    expect(shown.metrics.map((m) => m.centralAccuracy)).toEqual(acc);
  }, 240_000);

  it('an agent killed mid-round does not stall the round', async () => {
    const coord = await startCoordinator();
    const agents = [0, 1, 2].map((i) =>
      startAgent(coord.address, ['--name', `k-${i}`, '--partition', 'iid', '--num-partitions', '3', '--partition-id', String(i), '--seed', '2']),
    );
    await Promise.all(agents.map((a) => a.waitFor(/joined coordinator/)));
    // min 2 agents, all 3 invited: losing one still leaves enough results.
    const start = fedge(['run', 'start', '--coordinator', coord.address, '--model', 'mnist-mlp', '--rounds', '2', '--min-agents', '2',
      '--fraction', '1', '--epochs', '3', '--deadline', '120', '--watch', '--format', 'json']);
    const victim = agents[2]!;
    await victim.waitFor(/task received/);
    victim.child.kill('SIGKILL');
    const res = await start;
    expect(res.code, res.stderr).toBe(0);
    const run = lastJson<RunJson>(res.stdout);
    expect(run.status).toBe('completed');
    const r1 = run.roundsDetail[0]!;
    const lost = r1.participants.find((p) => p.name === 'k-2')!;
    expect(lost.outcome).toBe('dropped');
    expect(lost.reason).toMatch(/disconnected/);
    expect(r1.participants.filter((p) => p.outcome === 'completed')).toHaveLength(2);
    // The round closed on the disconnect, not on the 120 s deadline.
    expect(run.metrics[0]!.seconds).toBeLessThan(60);
    expect(run.metrics[1]!.completed).toBe(2);
  }, 240_000);

  it('an agent reconnects with backoff after the coordinator restarts', async () => {
    const port = await freePort();
    const first = await startCoordinator(['--listen', `127.0.0.1:${port}`]);
    const agent = startAgent(first.address, ['--name', 'phoenix']);
    await agent.waitFor(/joined coordinator/);
    first.child.kill('SIGKILL');
    await agent.waitFor(/retrying/);
    // A restart keeps its data dir, and with it the model signing key the agent pinned at its first join (a
    // coordinator with another key would be refused: trust on first use).
    const dataDir = (JSON.parse(await first.waitFor(/opened durable store/)) as { dataDir: string }).dataDir;
    const second = await startCoordinator(['--listen', `127.0.0.1:${port}`, '--data-dir', dataDir]);
    let listed: { name: string; status: string }[] = [];
    for (let i = 0; i < 60 && !listed.some((a) => a.name === 'phoenix' && a.status === 'online'); i++) {
      await new Promise((r) => setTimeout(r, 500));
      listed = JSON.parse((await fedge(['agent', 'list', '--coordinator', second.address, '--format', 'json'])).stdout) as typeof listed;
    }
    expect(listed).toContainEqual(expect.objectContaining({ name: 'phoenix', status: 'online' }));
    expect(agent.output().match(/joined coordinator/g)!.length).toBe(2);
  }, 120_000);
});
