/**
 * fedge's shipped Mosquitto configuration (deploy/mosquitto: mosquitto.conf and acl, used in place with only the
 * port, password file path and logging changed; see mosquitto.ts), against a real Mosquitto:
 * - shared by both brokers (the embedded one and Mosquitto): a run completes; a join published on another client id's
 *   request topic never reaches the coordinator (the embedded broker's rule, the shipped ACL), while one on the
 *   client's own topic does;
 * - Mosquitto's ACL in detail: an agent's publish on another agent's topics is refused, it reads none of another
 *   agent's replies, wrong passwords and anonymous clients are refused;
 * - a broker restart while a 48 MB model download is in flight: agents and coordinator reconnect, the run completes.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import mqtt from 'mqtt';
import { afterAll, describe, expect, it } from 'vitest';
import { initBackend, modelToBlob, saveModelDir, tf } from '@fedge/ml';
import { encodeFrame } from '@fedge/proto';
import { FEDGE_AGENT, fedge, killAll, lastJson, startCoordinator, startProcess, type Proc } from './harness.js';
import { brokerClient, killMosquittos, startMosquitto } from './mosquitto.js';

afterAll(() => {
  killAll();
  killMosquittos();
});

const TOKEN = 'acl-test-token';
const COORD_PW = 'coordinator-secret';
const USERS = { 'fedge-coordinator': COORD_PW, 'fedge-agent': TOKEN };

interface Broker { name: string; start(): Promise<{ coordArgs: string[]; agentUrl: string }> }
const brokers: Broker[] = [
  { name: 'the embedded broker', start: async () => ({ coordArgs: ['--mqtt-listen', '127.0.0.1:0'], agentUrl: '' }) },
  {
    name: 'Mosquitto with the shipped config',
    start: async () => {
      const b = await startMosquitto({ shipped: { users: USERS } });
      return { coordArgs: ['--mqtt-broker', `mqtt://fedge-coordinator:${COORD_PW}@127.0.0.1:${b.port}`], agentUrl: b.url };
    },
  },
];

/** A run of `rounds` over MQTT with two real training agents (a tenth of MNIST each, to keep it short); returns the final run record. */
async function runOver(coordArgs: string[], agentUrl: string | undefined, rounds: number): Promise<{ status: string; metrics: { status: string; completed: number }[] }> {
  const coord = await startCoordinator([...coordArgs, '--join-token', TOKEN]);
  const url = agentUrl || coord.mqttUrl!;
  for (const i of [0, 1]) {
    const a = startProcess(FEDGE_AGENT, ['--coordinator', url, '--join-token', TOKEN, '--data', 'mnist', '--name', `sh-${i}`, '--num-partitions', '10', '--partition-id', String(i)]);
    await a.waitFor(/joined coordinator/);
  }
  const res = await fedge(['run', 'start', '--coordinator', coord.address, '--model', 'mnist-mlp', '--rounds', String(rounds), '--min-agents', '2', '--epochs', '1', '--lr', '0.1', '--watch', '--format', 'json']);
  expect(res.code, res.stderr).toBe(0);
  return lastJson(res.stdout);
}

/** An MQTT 3.1.1 client as agents connect (username fedge-agent, the join token as password), without reconnects. */
function agentClient(url: string, clientId: string): Promise<mqtt.MqttClient> {
  return new Promise((resolve, reject) => {
    const c = mqtt.connect(url, { clientId, username: 'fedge-agent', password: TOKEN, protocolVersion: 4, reconnectPeriod: 0, connectTimeout: 5000 });
    c.once('connect', () => resolve(c));
    c.once('error', (err) => (c.end(true), reject(err)));
  });
}

/** A join request frame as the agent's MQTT transport sends it. */
const joinFrame = (name: string): Buffer =>
  encodeFrame({ t: 'join', id: 'j1', msg: { name, agentId: '', joinToken: TOKEN, backend: 'test', agentVersion: 'test', numExamples: 1, labels: {} } });

describe.each(brokers)('MQTT transport over $name', (broker) => {
  it('a run completes with both agents', { timeout: 90_000 }, async () => {
    const { coordArgs, agentUrl } = await broker.start();
    const rec = await runOver(coordArgs, agentUrl, 1);
    expect(rec.status).toBe('completed');
    expect(rec.metrics.map((m) => [m.status, m.completed])).toEqual([['completed', 2]]);
  });

  it('a join published on another client id\'s request topic never reaches the coordinator; on its own it does', { timeout: 30_000 }, async () => {
    const { coordArgs, agentUrl } = await broker.start();
    const coord = await startCoordinator([...coordArgs, '--join-token', TOKEN]);
    await coord.waitFor(/MQTT transport (connected|on)|MQTT broker on/);
    const url = agentUrl || coord.mqttUrl!;
    // The forger: the embedded broker closes its connection, Mosquitto drops the message; either way it goes nowhere.
    const forger = await agentClient(url, 'fa-forgerFFFFFFFFF');
    forger.on('error', () => {});
    forger.publish('fedge/v1/c/fa-victimVVVVVVVVVV/req', joinFrame('forged'), { qos: 1 }, () => {});
    // The control, on its own topic: the coordinator answers and lists the agent.
    const legit = await agentClient(url, 'fa-legitLLLLLLLLLL');
    const replied = new Promise<string>((resolve) => legit.on('message', (_t, payload) => resolve(payload.toString())));
    await legit.subscribeAsync('fedge/v1/c/fa-legitLLLLLLLLLL/res', { qos: 1 });
    await legit.publishAsync('fedge/v1/c/fa-legitLLLLLLLLLL/req', joinFrame('legit'), { qos: 1 });
    expect(await replied).toMatch(/"t":"reply"/);
    await new Promise((r) => setTimeout(r, 500));
    const list = await fedge(['agent', 'list', '--coordinator', coord.address, '--format', 'json']);
    expect(lastJson<{ name: string }[]>(list.stdout).map((a) => a.name)).toEqual(['legit']);
    forger.end(true);
    await legit.endAsync();
  });
});

describe('the shipped Mosquitto ACL', () => {
  it('refuses an agent publishing on another agent\'s topic or reading its replies, and unknown or anonymous logins', { timeout: 30_000 }, async () => {
    const b = await startMosquitto({ shipped: { users: USERS } });
    const coord = await brokerClient(b.port, 'fedge-coordinator-acl', 'fedge-coordinator', COORD_PW);
    const got: string[] = [];
    coord.on('message', (topic, payload) => got.push(`${topic} ${payload.toString()}`));
    await coord.subscribeAsync('fedge/v1/c/+/req', { qos: 1 });
    const alice = await brokerClient(b.port, 'fa-aliceAAAAAAAA', 'fedge-agent', TOKEN);
    const bobId = 'fa-bobBBBBBBBBBB';

    await alice.publishAsync(`fedge/v1/c/fa-aliceAAAAAAAA/req`, 'own', { qos: 1 });
    // MQTT 5: Mosquitto answers a publish the ACL denies with PUBACK reason 135 (not authorized) and drops it.
    await expect(alice.publishAsync(`fedge/v1/c/${bobId}/req`, 'forged', { qos: 1 })).rejects.toThrow(/Not authorized/i);
    await expect(alice.publishAsync(`fedge/v1/c/${bobId}/res`, 'forged', { qos: 1 })).rejects.toThrow(/Not authorized/i);
    // Mosquitto grants any subscription and applies read rights per delivered message: alice gets her replies only.
    const aliceGot: string[] = [];
    alice.on('message', (topic, payload) => aliceGot.push(`${topic} ${payload.toString()}`));
    await alice.subscribeAsync([`fedge/v1/c/${bobId}/res`, 'fedge/v1/c/fa-aliceAAAAAAAA/res'], { qos: 1 });
    await coord.publishAsync(`fedge/v1/c/${bobId}/res`, 'for bob', { qos: 1 });
    await coord.publishAsync('fedge/v1/c/fa-aliceAAAAAAAA/res', 'for alice', { qos: 1 });
    await new Promise((r) => setTimeout(r, 300));
    expect(got).toEqual(['fedge/v1/c/fa-aliceAAAAAAAA/req own']);
    expect(aliceGot).toEqual(['fedge/v1/c/fa-aliceAAAAAAAA/res for alice']);

    await expect(brokerClient(b.port, 'fa-malloryMMMMMMM', 'fedge-agent', 'wrong-token')).rejects.toThrow(/Bad User Name or Password|Not authorized/i);
    await expect(brokerClient(b.port, 'fa-anonNNNNNNNNNN', '', '')).rejects.toThrow(/Bad User Name or Password|Not authorized/i);
    await Promise.all([alice.endAsync(), coord.endAsync()]);
  });
});

describe('a Mosquitto restart during a model download', () => {
  it('agents and coordinator reconnect and the run completes', { timeout: 150_000 }, async () => {
    // 784 x 15,000 + 15,000 x 10 dense weights (+ biases): 47.7 MB of float32, 46 chunks of 1 MiB per download.
    await initBackend('cpu');
    const dir = mkdtempSync(path.join(tmpdir(), 'fedge-mqtt-big-'));
    const model = tf.sequential({ layers: [tf.layers.dense({ inputShape: [784], units: 15_000, kernelInitializer: 'zeros' }), tf.layers.dense({ units: 10, kernelInitializer: 'zeros' })] });
    const blob = modelToBlob(model);
    model.dispose();
    const modelJson = await saveModelDir(blob, dir);
    const chunks = Math.ceil(blob.weights.byteLength / 2 ** 20);

    const b = await startMosquitto({ shipped: { users: USERS }, verbose: true });
    const coord = await startCoordinator(['--mqtt-broker', `mqtt://fedge-coordinator:${COORD_PW}@127.0.0.1:${b.port}`, '--join-token', TOKEN]);
    await coord.waitFor(/MQTT transport connected/);
    // Echo agents download and verify every model like real ones, then send a small fixed update: the transfer is the work.
    const agents: Proc = startProcess(FEDGE_AGENT, ['--coordinator', b.url, '--join-token', TOKEN, '--simulate', '2', '--echo', '--name', 'big']);
    const t0 = Date.now();
    while ((agents.output().match(/joined coordinator/g) ?? []).length < 2) {
      if (Date.now() - t0 > 30_000) throw new Error(`agents did not join:\n${agents.output().slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    const cfg = path.join(dir, 'run.json');
    writeFileSync(cfg, JSON.stringify({ model: { path: modelJson }, rounds: 2, agentsPerRound: { fraction: 1, min: 2 }, centralEvaluation: false, roundDeadlineSeconds: 30 }));
    let ended = '';
    const run = fedge(['run', 'start', '--coordinator', coord.address, '--config', cfg, '--watch', '--format', 'json']);
    void run.then((r) => (ended = `fedge run start exited ${r.code}: ${r.stderr.slice(-1500)}`));
    // A 1 MiB chunk on an agent's reply topic: a download is in flight. Stop the broker right there.
    const chunkSent = /Sending PUBLISH to fa-\S+ \(d0, q0, r0, m0, 'fedge\/v1\/c\/fa-[^']+\/res', \.\.\. \(10\d{5} bytes\)\)/g;
    const tail = (): string => `coordinator:\n${coord.output().slice(-3000)}\nagents:\n${agents.output().slice(-3000)}\nbroker:\n${b.output().slice(-1500)}`;
    const t1 = Date.now();
    while (!chunkSent.test(b.output())) {
      if (ended || Date.now() - t1 > 60_000) throw new Error(`no download chunk through the broker within 60 s; ${ended}\n${tail()}`);
      await new Promise((r) => setTimeout(r, 5));
    }
    await b.stop();
    const sentBefore = (b.output().match(chunkSent) ?? []).length;
    console.log(`broker stopped after ${sentBefore} of ${2 * chunks} download chunks`);
    expect(sentBefore).toBeGreaterThan(0);
    expect(sentBefore).toBeLessThan(2 * chunks);
    await b.start();
    const res = await Promise.race([run, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`run not done 60 s after the restart\n${tail()}`)), 60_000))]);
    expect(res.code, res.stderr).toBe(0);
    const rec = lastJson<{ status: string; metrics: { status: string; completed: number }[] }>(res.stdout);
    expect(rec.status).toBe('completed');
    expect(rec.metrics.at(-1)).toMatchObject({ status: 'completed', completed: 2 });
    expect((agents.output().match(/joined coordinator/g) ?? []).length).toBeGreaterThanOrEqual(4);
  });
});
