/**
 * A fleet's connections to the embedded broker ending all at once (a simulated fleet stopped, a NAT dropping every
 * socket) must leave the coordinator running: real TCP clients, reset together, against startEmbeddedBroker.
 */
import { connect, type Socket } from 'node:net';
import { generate } from 'mqtt-packet';
import mqtt from 'mqtt';
import { afterEach, describe, expect, it } from 'vitest';
import { mqttTopics, newAgentClientId } from '@fedge/proto';
import { startEmbeddedBroker, type EmbeddedBroker } from './broker.js';

const CLIENTS = 3000;

/** An agent-like raw client: CONNECT with a QoS 1 will on its request topic (as mqtt-connection.ts sets), until CONNACK. */
function rawAgent(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const id = newAgentClientId();
    const s = connect(port, '127.0.0.1', () => {
      (s as Socket & { agentId?: string }).agentId = id;
      s.write(generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: id, keepalive: 0,
        will: { topic: mqttTopics.requests(id), payload: Buffer.from('gone'), qos: 1, retain: false } }));
    });
    s.once('data', (b: Buffer) => (b[0] === 0x20 && b[3] === 0 ? resolve(s) : reject(new Error(`CONNACK refused: ${b.toString('hex')}`))));
    s.once('error', reject);
  });
}

/** `n` raw agents connected, 200 at a time. */
async function rawFleet(port: number, n: number): Promise<Socket[]> {
  const sockets: Socket[] = [];
  for (let i = 0; i < n; i += 200) sockets.push(...(await Promise.all(Array.from({ length: Math.min(200, n - i) }, () => rawAgent(port)))));
  return sockets;
}

/** The uncaught exceptions thrown while `fn` runs (a broker dying of a stack overflow throws one); `fn` sees them so far. */
async function uncaughtDuring(fn: (uncaught: readonly Error[]) => Promise<void>): Promise<Error[]> {
  const uncaught: Error[] = [];
  const onUncaught = (err: Error): void => void uncaught.push(err);
  process.on('uncaughtException', onUncaught);
  try {
    await fn(uncaught);
  } finally {
    process.off('uncaughtException', onUncaught);
  }
  return uncaught;
}

let broker: EmbeddedBroker | undefined;
afterEach(async () => {
  await broker?.close();
  broker = undefined;
});

describe('embedded broker, many clients gone at once', () => {
  it(`survives ${CLIENTS} connections reset together, delivering every will and every gone callback`, async () => {
    broker = await startEmbeddedBroker({ host: '127.0.0.1', port: 0 });
    const port = Number(broker.address.split(':').pop());
    const gone = new Set<string>();
    broker.onClientGone((id) => gone.add(id));
    // The coordinator's own client, subscribed to every agent's request topic as the bridge is.
    const coord = await mqtt.connectAsync(broker.localUrl, {
      clientId: `fedge-coordinator-test`, ...broker.coordinatorCredentials, reconnectPeriod: 0,
    });
    let wills = 0;
    coord.on('message', () => void wills++);
    await coord.subscribeAsync(mqttTopics.requests('+'), { qos: 1 });
    const sockets = await rawFleet(port, CLIENTS);
    const uncaught = await uncaughtDuring(async (seen) => {
      for (const s of sockets) s.resetAndDestroy();
      const deadline = Date.now() + 10_000;
      while ((gone.size < CLIENTS || wills < CLIENTS) && Date.now() < deadline && seen.length === 0) await new Promise((r) => setTimeout(r, 50));
    });
    expect(uncaught.map((e) => e.message)).toEqual([]);
    expect(gone.size).toBe(CLIENTS);
    expect(wills).toBe(CLIENTS);
    // Still serving: a new client is admitted.
    (await rawAgent(port)).destroy();
    await coord.endAsync();
  }, 15_000);

  it(`survives ${CLIENTS} clean disconnects queued behind a subscriber that stopped reading`, async () => {
    broker = await startEmbeddedBroker({ host: '127.0.0.1', port: 0 });
    const port = Number(broker.address.split(':').pop());
    let gone = 0;
    broker.onClientGone(() => void gone++);
    // A coordinator-credentialed raw subscriber that reads nothing: the broker's writes to it block on drain, so
    // messages pile up inside the broker's emitter while it is busy, as when the coordinator's loop is loaded.
    const sub = connect(port, '127.0.0.1');
    await new Promise<void>((r) => sub.once('connect', () => r()));
    sub.write(generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: 'fedge-coordinator-stalled', keepalive: 0,
      username: broker.coordinatorCredentials.username, password: Buffer.from(broker.coordinatorCredentials.password) }));
    sub.write(generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: mqttTopics.requests('+'), qos: 0 }] }));
    await new Promise((r) => setTimeout(r, 200));
    sub.pause();
    const sockets = await rawFleet(port, CLIENTS);
    const big = Buffer.alloc(256 << 10, 1);
    const [first] = sockets;
    const firstId = (first as Socket & { agentId?: string }).agentId!;
    for (let i = 0; i < 150; i++) first!.write(generate({ cmd: 'publish', topic: mqttTopics.requests(firstId), payload: big, qos: 0, retain: false, dup: false }));
    await new Promise((r) => setTimeout(r, 500));
    const uncaught = await uncaughtDuring(async () => {
      for (const s of sockets.slice(1)) s.end(generate({ cmd: 'disconnect' }));
      // Each disconnect's $SYS notice now waits in the broker's emitter behind the stalled deliveries.
      const deadline = Date.now() + 8000;
      while (gone < CLIENTS - 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      expect(gone).toBe(CLIENTS - 1);
      sub.resume(); // the deliveries drain and the queue behind them runs
      await new Promise((r) => setTimeout(r, 1000));
    });
    expect(uncaught.map((e) => e.message)).toEqual([]);
    (await rawAgent(port)).destroy();
    first!.destroy();
    sub.destroy();
  }, 15_000);
});
