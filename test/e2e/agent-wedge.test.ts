/**
 * Issue 11, bug 1: a holder of the shared join token re-joined with a live agent's agent_id, took its session, and the
 * real agent's next FetchModel hung forever (the refusal carried no status, the call no deadline): the run stalled at
 * 0 rounds. Now the impostor is refused (a rejoin by id needs the agent_secret of that agent's first join) and the
 * real agent trains on unaffected.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { GrpcConnection, MqttConnection } from '@fedge/edge-agent';
import { fedge, killAll, lastJson, startAgent, startCoordinator } from './harness.js';

afterAll(() => killAll());

const TOKEN = 'wedge-token';

describe('agent wedge', () => {
  it('a token holder rejoining under a live agent\'s id is refused at once; the real agent completes the run', async () => {
    const coord = await startCoordinator(['--join-token', TOKEN, '--mqtt-listen', '127.0.0.1:0']);
    const real = startAgent(coord.address, ['--name', 'real', '--join-token', TOKEN, '--seed', '3']);
    await real.waitFor(/agent online|joined coordinator/);
    const listed = JSON.parse((await fedge(['agent', 'list', '--coordinator', coord.address, '--format', 'json'])).stdout) as { id: string; name: string }[];
    const id = listed.find((a) => a.name === 'real')!.id;

    // Over either transport: the rule is the coordinator's, not the transport's.
    const grpc = new GrpcConnection(coord.address);
    const mqtt = new MqttConnection(coord.mqttUrl!, { joinToken: TOKEN });
    for (const [impostor, name] of [[grpc, 'real'], [grpc, 'impostor'], [mqtt, 'real']] as const) {
      const t0 = Date.now();
      const err = await impostor
        .join({ name, agentId: id, joinToken: TOKEN, backend: 'rogue', agentVersion: 'test', numExamples: 100, labels: {} })
        .then(() => undefined, (e: unknown) => e as { code?: string; message: string });
      expect(err, `a join as "${name}" under ${id} was accepted`).toBeDefined();
      expect(err!.code).toBe('E_AUTH');
      expect(err!.message).toMatch(new RegExp(`agent_secret: missing or wrong for agent_id "${id}"`));
      expect(Date.now() - t0).toBeLessThan(3000);
    }
    grpc.close();
    mqtt.close();

    const t0 = Date.now();
    const res = await fedge(['run', 'start', '--coordinator', coord.address, '--model', 'mnist-mlp', '--rounds', '2', '--min-agents', '1',
      '--deadline', '60', '--watch', '--format', 'json']);
    expect(res.code, res.stderr).toBe(0);
    const run = lastJson<{ status: string; metrics: { completed: number }[] }>(res.stdout);
    expect(run.status).toBe('completed');
    expect(run.metrics.map((m) => m.completed)).toEqual([1, 1]);
    expect(Date.now() - t0).toBeLessThan(60_000); // closed on results, not on a deadline
    expect(real.output()).not.toMatch(/session refused|task failed/);
  }, 120_000);
});
