/** End to end over MQTT: fedge serve's embedded broker, agent processes and MQTT clients of our own, real sockets. */
import { afterAll, describe, expect, it } from 'vitest';
import { connect as netConnect } from 'node:net';
import { connect, type MqttClient } from 'mqtt';
import { MqttConnection } from '@fedge/edge-agent';
import {
  MQTT_AGENT_USERNAME,
  UPDATE_ENCODING,
  decodeFrame,
  encodeFrame,
  mqttTopics,
  newAgentClientId,
  type MqttEnvelope,
  type SubmitReplyMsg,
} from '@fedge/proto';
import { fedge, killAll, lastJson, startAgent, startCoordinator } from './harness.js';

interface RunJson {
  status: string;
  initialAccuracy?: number;
  metrics: { status: string; completed: number; seconds: number; centralAccuracy?: number }[];
  roundsDetail: { participants: { name: string; outcome: string; reason?: string }[] }[];
}

const clients: MqttClient[] = [];
afterAll(() => {
  for (const c of clients) c.end(true);
  killAll();
});

const TOKEN = 's3cret-mqtt';
const MQTT = ['--mqtt-listen', '127.0.0.1:0'];

/** A raw MQTT client; resolves once connected or with the broker's refusal. */
function rawClient(url: string, clientId: string, password?: string): Promise<{ client?: MqttClient; error?: Error & { code?: number } }> {
  return new Promise((resolve) => {
    const client = connect(url, { clientId, username: MQTT_AGENT_USERNAME, ...(password ? { password } : {}), reconnectPeriod: 0, protocolVersion: 4 });
    clients.push(client);
    client.once('connect', () => resolve({ client }));
    client.once('error', (error) => resolve({ error }));
  });
}

/**
 * An MQTT agent that answers every training task with a malformed result. What it saw is returned for the test to
 * check (its loop runs detached, so an expect() inside it would fail nothing): each download's byte count against the
 * announced total, and any error its loop met before stop().
 */
async function startMqttRogue(url: string, name: string, fault: 'nan' | 'size'): Promise<{ replies: SubmitReplyMsg[]; downloads: { got: number; announced: number }[]; errors: unknown[]; stop(): void }> {
  const conn = new MqttConnection(url, { joinToken: TOKEN });
  const { agentId, sessionToken } = await conn.join({ name, agentId: '', joinToken: TOKEN, backend: 'rogue', agentVersion: 'test', numExamples: 100, labels: {} });
  const replies: SubmitReplyMsg[] = [];
  const downloads: { got: number; announced: number }[] = [];
  const errors: unknown[] = [];
  let stopped = false;
  const stream = conn.tasks(agentId, sessionToken);
  void (async () => {
    for await (const task of stream) {
      if (task.kind !== 'train' && task.kind !== 'evaluate') continue;
      const base = { agentId, sessionToken, taskId: task.taskId, runId: task.runId, round: task.round, modelVersion: task.modelVersion, metrics: {} };
      if (task.kind === 'evaluate') {
        await conn.submit({ ...base, kind: 'evaluate', numExamples: 0, tensors: [], totalBytes: 0, encoding: '' }, new Uint8Array(0));
        continue;
      }
      const { header: mh, bytes } = await conn.fetchModel({ agentId, sessionToken, runId: task.runId, modelVersion: task.modelVersion });
      downloads.push({ got: bytes.byteLength, announced: mh.totalBytes });
      const delta = new Float32Array(mh.totalBytes / 4).fill(0.001);
      if (fault === 'nan') delta[delta.length - 1] = NaN;
      const payload = new Uint8Array(delta.buffer, 0, fault === 'size' ? delta.byteLength - 4 : delta.byteLength);
      replies.push(await conn.submit({ ...base, kind: 'train', numExamples: 100, tensors: mh.tensors, totalBytes: payload.byteLength, encoding: UPDATE_ENCODING }, payload));
    }
  })().catch((err: unknown) => {
    if (!stopped) errors.push(err);
  });
  return {
    replies,
    downloads,
    errors,
    stop: () => {
      stopped = true;
      conn.close();
    },
  };
}

describe('federation over MQTT (embedded broker)', () => {
  it('2 MQTT agents and 1 gRPC agent complete 3 rounds of mnist-mlp with int8 updates, and accuracy rises', async () => {
    const coord = await startCoordinator(MQTT);
    expect(coord.mqttUrl).toMatch(/^mqtt:\/\/127\.0\.0\.1:\d+$/);
    // One run, two transports: the engine never knows which one an agent uses.
    const agents = [0, 1, 2].map((i) =>
      startAgent(i < 2 ? coord.mqttUrl! : `grpc://${coord.address}`, ['--name', `${i < 2 ? 'mq' : 'grpc'}-${i}`, '--num-partitions', '3', '--partition-id', String(i), '--seed', '1']),
    );
    await Promise.all(agents.map((a) => a.waitFor(/joined coordinator/)));
    const res = await fedge(['run', 'start', '--coordinator', coord.address, '--model', 'mnist-mlp', '--rounds', '3', '--min-agents', '3',
      '--epochs', '1', '--lr', '0.1', '--compression', 'int8', '--watch', '--format', 'json']);
    expect(res.code, res.stderr).toBe(0);
    const run = lastJson<RunJson>(res.stdout);
    expect(run.status).toBe('completed');
    expect(run.metrics.map((m) => [m.status, m.completed])).toEqual([['completed', 3], ['completed', 3], ['completed', 3]]);
    for (const r of run.roundsDetail)
      expect(r.participants.filter((p) => p.outcome === 'completed').map((p) => p.name).sort()).toEqual(['grpc-2', 'mq-0', 'mq-1']);
    const acc = run.metrics.map((m) => m.centralAccuracy!);
    expect(run.initialAccuracy!).toBeLessThan(0.3);
    expect(acc[0]!).toBeGreaterThan(run.initialAccuracy! + 0.3);
    expect(acc[2]!).toBeGreaterThan(0.85);
    coord.child.kill('SIGTERM');
    expect(await coord.exited).toBe(0);
  }, 120_000);

  it('an agent killed mid-round does not stall the round (its last will detaches it)', async () => {
    const coord = await startCoordinator(MQTT);
    const agents = [0, 1, 2].map((i) =>
      startAgent(coord.mqttUrl!, ['--name', `mk-${i}`, '--num-partitions', '3', '--partition-id', String(i), '--seed', '2']),
    );
    await Promise.all(agents.map((a) => a.waitFor(/joined coordinator/)));
    const start = fedge(['run', 'start', '--coordinator', coord.address, '--model', 'mnist-mlp', '--rounds', '1', '--min-agents', '2',
      '--fraction', '1', '--epochs', '1', '--deadline', '120', '--watch', '--format', 'json']);
    const victim = agents[2]!;
    await victim.waitFor(/task received/);
    victim.child.kill('SIGKILL');
    const res = await start;
    expect(res.code, res.stderr).toBe(0);
    const run = lastJson<RunJson>(res.stdout);
    expect(run.status).toBe('completed');
    const lost = run.roundsDetail[0]!.participants.find((p) => p.name === 'mk-2')!;
    expect(lost.outcome).toBe('dropped');
    expect(lost.reason).toMatch(/disconnected/);
    expect(run.metrics[0]!.completed).toBe(2);
    expect(run.metrics[0]!.seconds).toBeLessThan(60); // closed on the disconnect, not the 120 s deadline
  }, 120_000);

  it('with a join token: strangers are refused, agents confined to their topics, malformed results rejected with a reason', async () => {
    const coord = await startCoordinator([...MQTT, '--join-token', TOKEN]);
    const url = coord.mqttUrl!;
    const agents = [0, 1].map((i) =>
      startAgent(url, ['--name', `mt-${i}`, '--num-partitions', '2', '--partition-id', String(i), '--seed', '3', '--join-token', TOKEN]),
    );

    // No token, a wrong token: refused at CONNECT, before any fedge message.
    const anon = await rawClient(url, newAgentClientId());
    expect(anon.error?.code).toBe(4);
    const wrong = await rawClient(url, newAgentClientId(), 'nope');
    expect(wrong.error?.message).toMatch(/bad username or password/i);
    const intruder = startAgent(url, ['--name', 'intruder', '--join-token', 'nope']);
    await intruder.waitFor(/join-token match/);
    intruder.child.kill('SIGKILL');
    // A packet declaring 256 MiB (the MQTT maximum) is refused from its header: the connection closes at once.
    const { hostname, port } = new URL(url);
    const closedAfter = await new Promise<number>((resolve, reject) => {
      const t0 = Date.now();
      const sock = netConnect(Number(port), hostname, () => sock.write(Buffer.from([0x10, 0xff, 0xff, 0xff, 0x7f])));
      sock.on('error', () => undefined);
      sock.on('close', () => resolve(Date.now() - t0));
      setTimeout(() => reject(new Error('the broker kept a 256 MiB packet open')), 5000).unref();
    });
    expect(closedAfter).toBeLessThan(5000);
    expect(coord.output()).toMatch(/packet too large/);
    // Not an agent client id: refused. With the token: another client's topics are off limits.
    expect((await rawClient(url, 'fedge-coordinator-x', TOKEN)).error).toBeDefined();
    const id = newAgentClientId();
    const { client } = await rawClient(url, id, TOKEN);
    const other = newAgentClientId();
    // mqtt.js rejects a subscription the broker answered with 0x80 (refused).
    const grant = (topic: string): Promise<number | 'refused'> => client!.subscribeAsync(topic, { qos: 1 }).then((g) => g[0]!.qos, () => 'refused');
    expect(await grant(mqttTopics.replies(other))).toBe('refused');
    expect(await grant(mqttTopics.allRequests)).toBe('refused');
    expect(await grant(mqttTopics.replies(id))).toBe(1);
    // Malformed input gets an answer naming the field, and the coordinator stays up.
    const answers: MqttEnvelope[] = [];
    client!.on('message', (_t, payload) => answers.push(decodeFrame(payload).env));
    client!.publish(mqttTopics.requests(id), Buffer.from('garbage'), { qos: 1 });
    client!.publish(mqttTopics.requests(id), encodeFrame({ t: 'join', id: 'j1', msg: { name: '' } }), { qos: 1 });
    client!.publish(mqttTopics.requests(id), encodeFrame({ t: 'submit', id: 's1', msg: { agentId: 'a', round: -1 } }), { qos: 1 });
    await expect.poll(() => answers.length, { timeout: 10_000 }).toBe(2);
    expect(answers.find((a) => a.id === 'j1')).toMatchObject({ t: 'error', code: 'E_VALIDATION', message: expect.stringMatching(/^join\.name/) });
    expect(answers.find((a) => a.id === 's1')).toMatchObject({ t: 'reply', msg: { accepted: false, reason: 'malformed', message: expect.stringMatching(/^header\./) } });
    // Publishing on another client's request topic ends the offender's connection.
    const closed = new Promise<void>((r) => client!.once('close', () => r()));
    client!.publish(mqttTopics.requests(other), encodeFrame({ t: 'gone' }), { qos: 1 });
    await closed;

    await Promise.all(agents.map((a) => a.waitFor(/joined coordinator/)));
    const rogues = await Promise.all([startMqttRogue(url, 'rogue-nan', 'nan'), startMqttRogue(url, 'rogue-size', 'size')]);
    const res = await fedge(['run', 'start', '--coordinator', coord.address, '--model', 'mnist-mlp', '--rounds', '1', '--min-agents', '4',
      '--min-results', '2', '--deadline', '120', '--watch', '--format', 'json']);
    expect(res.code, res.stderr).toBe(0);
    const run = lastJson<RunJson>(res.stdout);
    expect(run.status).toBe('completed');
    expect(run.metrics[0]!.completed).toBe(2);
    expect(run.metrics[0]!.seconds).toBeLessThan(60);
    const parts = run.roundsDetail[0]!.participants;
    expect(parts.find((p) => p.name === 'rogue-nan')).toMatchObject({ outcome: 'rejected', reason: expect.stringMatching(/^non_finite/) });
    expect(parts.find((p) => p.name === 'rogue-size')).toMatchObject({ outcome: 'rejected', reason: expect.stringMatching(/^size_mismatch/) });
    expect(rogues[0]!.replies[0]).toMatchObject({ accepted: false, reason: 'non_finite' });
    expect(rogues[1]!.replies[0]).toMatchObject({ accepted: false, reason: 'size_mismatch' });
    for (const r of rogues) {
      expect(r.errors).toEqual([]);
      expect(r.downloads.length).toBeGreaterThan(0);
      for (const d of r.downloads) expect(d.got, 'downloaded model bytes').toBe(d.announced);
    }
    for (const r of rogues) r.stop();
    expect(coord.child.exitCode).toBeNull();
    // The token never reaches the log.
    expect(coord.output()).not.toContain(TOKEN);
  }, 120_000);
});
