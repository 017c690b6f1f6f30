/** End to end against a real external broker (Mosquitto): shutdown while it is down, agents rejoining after it restarts. */
import { afterAll, describe, expect, it } from 'vitest';
import { fedge, killAll, lastJson, startAgent, startCoordinator, type Proc } from './harness.js';
import { killMosquittos, startMosquitto } from './mosquitto.js';

afterAll(() => {
  killAll();
  killMosquittos();
});

const count = (p: Proc, re: RegExp): number => p.output().split('\n').filter((l) => re.test(l)).length;

/** Resolves with the ms it took until `p` printed `n` lines matching `re` (rejects after `ms`). */
async function nthLine(p: Proc, re: RegExp, n: number, ms: number): Promise<number> {
  const t0 = Date.now();
  while (count(p, re) < n) {
    if (Date.now() - t0 > ms) throw new Error(`no ${n}th ${re} within ${ms} ms:\n${p.output().slice(-3000)}`);
    if (p.child.exitCode !== null) throw new Error(`process exited (${p.child.exitCode}) before its ${n}th ${re}:\n${p.output().slice(-3000)}`);
    await new Promise((r) => setTimeout(r, 25));
  }
  return Date.now() - t0;
}

/** Sends SIGTERM and resolves with how long the process took to exit and its code (null code: still running after `ms`). */
async function terminate(p: Proc, ms: number): Promise<{ ms: number; code: number | null | 'running' }> {
  const t0 = Date.now();
  p.child.kill('SIGTERM');
  const code = await Promise.race([p.exited, new Promise<'running'>((r) => setTimeout(() => r('running'), ms))]);
  return { ms: Date.now() - t0, code };
}

describe('external MQTT broker (Mosquitto)', () => {
  it('SIGTERM while the broker is down: the coordinator and an agent exit within 5 s', async () => {
    const broker = await startMosquitto();
    const coord = await startCoordinator(['--mqtt-broker', broker.url]);
    await coord.waitFor(/MQTT transport connected/);
    const agent = startAgent(broker.url, ['--name', 'down-0', '--num-partitions', '2', '--partition-id', '0']);
    await agent.waitFor(/joined coordinator/);
    await broker.stop();
    // The coordinator is in its reconnect loop (mqtt.js queues QoS 1 publishes meanwhile), the agent retrying.
    await coord.waitFor(/MQTT broker connection error/, 10_000);
    await agent.waitFor(/coordinator unreachable or session lost/, 10_000);
    const [c, a] = await Promise.all([terminate(coord, 10_000), terminate(agent, 10_000)]);
    console.log(`shutdown with the broker down: coordinator ${c.ms} ms (exit ${c.code}), agent ${a.ms} ms (exit ${a.code})`);
    expect(c.code).toBe(0);
    expect(c.ms).toBeLessThan(5000);
    expect(a.code).toBe(0);
    expect(a.ms).toBeLessThan(5000);
  }, 60_000);

  it('after a broker restart under a run, every agent rejoins within 3 s and the run completes', async () => {
    const broker = await startMosquitto();
    const coord = await startCoordinator(['--mqtt-broker', broker.url]);
    await coord.waitFor(/MQTT transport connected/);
    const n = 3;
    const agents = Array.from({ length: n }, (_, i) =>
      startAgent(broker.url, ['--name', `rj-${i}`, '--num-partitions', String(n), '--partition-id', String(i), '--seed', '5']),
    );
    await Promise.all(agents.map((a) => a.waitFor(/joined coordinator/)));
    const rounds = 8;
    const run = fedge(['run', 'start', '--coordinator', coord.address, '--model', 'mnist-mlp', '--rounds', String(rounds), '--min-agents', String(n),
      '--epochs', '1', '--lr', '0.1', '--deadline', '60', '--watch', '--format', 'json']);
    // Restart the broker once the run is under way (its second round), as `systemctl restart mosquitto` would.
    await nthLine(coord, /"msg":"round ended"/, 1, 90_000);
    await broker.stop();
    await broker.start();
    const restarted = Date.now();
    const rejoinMs = await Promise.all(agents.map((a) => nthLine(a, /joined coordinator/, 2, 30_000).then(() => Date.now() - restarted)));
    console.log(`rejoin after the broker restart: ${rejoinMs.join(', ')} ms`);
    for (const ms of rejoinMs) expect(ms).toBeLessThan(3000);
    const res = await run;
    expect(res.code, res.stderr).toBe(0);
    const rec = lastJson<{ status: string; metrics: { status: string; completed: number }[] }>(res.stdout);
    expect(rec.status).toBe('completed');
    // The round the restart interrupted may fail (its agents were cut off); every round after it has all agents.
    const completed = rec.metrics.filter((m) => m.status === 'completed');
    expect(completed.length).toBeGreaterThanOrEqual(rounds - 1);
    expect(rec.metrics.at(-1)).toMatchObject({ status: 'completed', completed: n });
    const c = await terminate(coord, 10_000);
    expect(c.code).toBe(0);
  }, 180_000);
});
