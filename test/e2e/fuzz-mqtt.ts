/**
 * MQTT side of the fuzz test: seeded malformed frames and hostile requests on the topic the coordinator subscribes to
 * (every agent's request topic), answers tracked by request id, and one-shot connections that break the broker's rules.
 */
import { connect as netConnect } from 'node:net';
import { connect, type MqttClient } from 'mqtt';
import { MQTT_AGENT_USERNAME, MQTT_FRAME_VERSION, decodeFrame, encodeFrame, mqttTopics, newAgentClientId, type MqttEnvelope } from '@fedge/proto';
import { Counts, Gen, reportBody } from './fuzz-gen.js';

export interface MqttTargets {
  url: string;
  joinToken: string;
  realAgentIds: string[];
  runId: string;
}

/** Requests the bridge must answer (reply or error) whatever their fields; what an answer must never be. */
const ANSWERED = ['challenge', 'join', 'tasks', 'fetch', 'submit', 'report', 'reply', 'error', 'model', 'task', 'close', 'status'] as const;

export interface MqttStats {
  sent: Counts;
  /** Answers by request type and envelope type, e.g. join->error. */
  answers: Counts;
  /** Requests that must be answered and were not (see `unanswered`). */
  pending: Map<string, string>;
  /** Answers that accepted what must be refused: a join, an opened task stream, a model, an accepted update. */
  accepted: string[];
  violators: Counts;
}

export const newMqttStats = (): MqttStats => ({ sent: new Counts(), answers: new Counts(), pending: new Map(), accepted: [], violators: new Counts() });

function clientFor(url: string, clientId: string, password: string): Promise<MqttClient | Error> {
  return new Promise((resolve) => {
    const c = connect(url, { clientId, username: MQTT_AGENT_USERNAME, password, reconnectPeriod: 0, protocolVersion: 4, connectTimeout: 20_000 });
    c.once('connect', () => resolve(c));
    c.once('error', (e) => {
      c.end(true);
      resolve(e);
    });
  });
}

function forgedId(g: Gen, t: MqttTargets): string {
  return g.pick([...t.realAgentIds, `agent-${g.hex(8)}`, '', g.str()]);
}

/** The `msg` of a request of type `type`: forged ids and sessions, hostile values (never the join token). */
function requestMsg(g: Gen, type: string, t: MqttTargets): unknown {
  const creds = { agentId: forgedId(g, t), sessionToken: g.pick([g.hex(48), '', g.str()]) };
  switch (type) {
    case 'challenge': return { name: g.str() };
    case 'join': return { name: g.str(), agentId: forgedId(g, t), joinToken: g.pick(['', 'wrong', g.str()]), backend: 'fz', agentVersion: 'fz', numExamples: g.num(), labels: { [g.str()]: g.str() }, signature: g.pick([undefined, g.hex(88), 42, { a: 1 }]) };
    case 'tasks': return creds;
    case 'fetch': return { ...creds, runId: g.pick([t.runId, `run-${g.hex(8)}`]), modelVersion: g.num(), blobSha256: g.pick(['', g.hex(64)]) };
    case 'submit':
      return { ...creds, taskId: `task-${g.hex(8)}`, runId: t.runId, round: g.num(), modelVersion: g.num(), kind: g.pick(['train', 'evaluate', 'x']), numExamples: g.num(),
        tensors: [{ name: 'w', dtype: 'float32', shape: [g.pick([1, 2 ** 40])] }], totalBytes: g.num(), encoding: 'float32-delta', metrics: { train_loss: g.pick([NaN, 1]) } };
    case 'report': return { ...creds, bodyJson: reportBody(g, t.runId) };
    default: return g.pick([undefined, null, 42, 'x', [], { runId: t.runId }]);
  }
}

/** One frame on a clean client's own request topic; `track` is set when the bridge must answer it. */
function fuzzFrame(g: Gen, t: MqttTargets, seq: string): { label: string; payload: Buffer; track?: string } {
  const style = g.int(10);
  if (style === 0) return { label: 'random-bytes', payload: g.bytes(g.len(2048)) };
  if (style === 1) {
    const json = Buffer.from(g.pick(['{', '[]', 'null', '{"t":"join"}', `{"t":"${g.hex(4)}","id":"x"}`, '{"t":"chunk","id":"a","offset":-1}', '{"t":"ack","id":"a","offset":1.5}', `{"t":"join","id":"${'x'.repeat(65)}"}`, '{"t":"join","id":"a/b"}']));
    const p = encodeFrame({ t: 'gone' });
    const out = Buffer.concat([p.subarray(0, 5), json]);
    out.writeUInt32BE(g.chance(0.3) ? 0xffffffff : g.chance(0.5) ? json.length : json.length + 10, 1);
    if (g.chance(0.2)) out[0] = MQTT_FRAME_VERSION + 1 + g.int(200);
    return { label: 'bad-envelope', payload: out };
  }
  if (style === 2) {
    const type = g.pick(['ack', 'cancel', 'chunk', 'end'] as const);
    const body = type === 'chunk' ? (g.chance(0.05) ? g.floats((3 << 20) / 4) : g.floats(g.len(16384))) : undefined;
    return { label: `stray-${type}`, payload: encodeFrame({ t: type, id: g.pick([seq, `u${g.hex(6)}`]), offset: g.pick([0, 4, 2 ** 40, Number.MAX_SAFE_INTEGER]) }, body) };
  }
  const type = g.pick(ANSWERED);
  const env: MqttEnvelope = { t: type, id: seq, msg: requestMsg(g, type, t) };
  return { label: type, payload: encodeFrame(env, g.chance(0.2) ? g.floats(g.len(4096)) : undefined), track: type };
}

/**
 * Records the answers on a client's reply topic against `stats.pending`; flags answers that accept what must be
 * refused. `insider`: the client joined with the real token, so its model downloads may succeed.
 */
function listen(c: MqttClient, clientId: string, stats: MqttStats, insider: boolean, onJoin?: (env: MqttEnvelope) => void): void {
  c.on('message', (topic, payload) => {
    let env: MqttEnvelope;
    try {
      env = decodeFrame(payload).env;
    } catch {
      stats.accepted.push(`undecodable answer on ${topic}`);
      return;
    }
    if (topic === mqttTopics.tasks(clientId)) return void stats.accepted.push(`a task frame (${env.t}) for a client that never asked for tasks`);
    if (env.id === 'join0' && onJoin) return onJoin(env);
    const key = `${clientId}/${env.id}`;
    const type = stats.pending.get(key);
    if (!type) return;
    stats.pending.delete(key);
    const msg = env.msg as { accepted?: boolean; reason?: string } | undefined;
    stats.answers.add(`${insider ? 'insider-' : ''}${type}->${env.t}${env.t === 'error' ? `:${env.code}` : type === 'submit' ? `:${msg?.reason}` : ''}`);
    if ((type === 'join' && env.t === 'reply') || (type === 'tasks' && env.t === 'reply') || (type === 'report' && env.t === 'reply') || (type === 'fetch' && env.t === 'model' && !insider) || (type === 'submit' && msg?.accepted === true))
      stats.accepted.push(`${type} answered ${env.t} ${JSON.stringify(env.msg).slice(0, 200)}`);
  });
}

/** A client that sends `n` frames on its own request topic and records the answers; the caller ends it (endClean). */
export async function cleanClient(t: MqttTargets, g: Gen, n: number, stats: MqttStats, tag: string, onSend: () => void = () => undefined): Promise<MqttClient> {
  const clientId = newAgentClientId();
  const c = await clientFor(t.url, clientId, t.joinToken);
  if (c instanceof Error) throw new Error(`fuzz MQTT client could not connect: ${c.message}`);
  await c.subscribeAsync([mqttTopics.replies(clientId), mqttTopics.tasks(clientId)], { qos: 1 });
  listen(c, clientId, stats, false);
  for (let i = 0; i < n; i++) {
    const seq = `${tag}${i}`;
    const f = fuzzFrame(g, t, seq);
    if (f.track) stats.pending.set(`${clientId}/${seq}`, f.track);
    stats.sent.add(f.label);
    onSend();
    await c.publishAsync(mqttTopics.requests(clientId), f.payload, { qos: g.pick([0, 1, 1]) });
  }
  return c;
}

/**
 * A client that joins with the real token (and never asks for tasks, so no round picks it), then sends `n` requests
 * with its valid session: model downloads of any version or blob, acks beyond what was sent, cancels, uploads that
 * name no task of it, then stray chunks and ends for them.
 */
export async function insiderClient(t: MqttTargets, g: Gen, n: number, stats: MqttStats, tag: string, onSend: () => void = () => undefined): Promise<MqttClient> {
  const clientId = newAgentClientId();
  const c = await clientFor(t.url, clientId, t.joinToken);
  if (c instanceof Error) throw new Error(`fuzz MQTT client could not connect: ${c.message}`);
  await c.subscribeAsync([mqttTopics.replies(clientId), mqttTopics.tasks(clientId)], { qos: 1 });
  const joined = new Promise<MqttEnvelope>((resolve) => listen(c, clientId, stats, true, resolve));
  await c.publishAsync(mqttTopics.requests(clientId), encodeFrame({ t: 'join', id: 'join0', msg: { name: `fz-mqtt-insider-${tag}`, agentId: '', joinToken: t.joinToken, backend: 'fuzz', agentVersion: 'fuzz', numExamples: 0, labels: {} } }), { qos: 1 });
  const env = await joined;
  const session = env.msg as { agentId?: string; sessionToken?: string } | undefined;
  if (env.t !== 'reply' || !session?.agentId || !session.sessionToken) throw new Error(`fuzz MQTT insider could not join: ${JSON.stringify(env).slice(0, 300)}`);
  const creds = { agentId: session.agentId, sessionToken: session.sessionToken };
  let last = `${tag}x`;
  for (let i = 0; i < n; i++) {
    const seq = `${tag}${i}`;
    let label: string;
    let frame: Buffer;
    switch (g.int(5)) {
      case 0:
        label = 'insider-fetch';
        frame = encodeFrame({ t: 'fetch', id: seq, msg: { ...creds, runId: g.pick([t.runId, `run-${g.hex(8)}`]), modelVersion: g.pick([0, 1, 2, 3, 4, 99, g.num()]), blobSha256: g.pick(['', '', g.hex(64)]) } });
        stats.pending.set(`${clientId}/${seq}`, 'fetch');
        last = seq;
        break;
      case 1:
        label = 'insider-ack';
        frame = encodeFrame({ t: g.pick(['ack', 'cancel'] as const), id: g.pick([last, seq]), offset: g.pick([0, 1 << 20, 2 ** 40, Number.MAX_SAFE_INTEGER]) });
        break;
      case 2:
        label = 'insider-submit';
        frame = encodeFrame({ t: 'submit', id: seq, msg: { ...creds, taskId: `task-${g.hex(8)}`, runId: t.runId, round: g.int(5), modelVersion: g.int(5), kind: g.pick(['train', 'evaluate']), numExamples: 100,
          tensors: [{ name: 'dense/kernel', dtype: 'float32', shape: [784, 128] }], totalBytes: g.pick([4, 401_408, 2 ** 40]), encoding: 'float32-delta', metrics: { train_loss: 1 } } });
        stats.pending.set(`${clientId}/${seq}`, 'submit');
        last = seq;
        break;
      case 3:
        label = 'insider-chunk';
        frame = encodeFrame({ t: g.pick(['chunk', 'end'] as const), id: last, offset: g.pick([0, 4, 2 ** 40]) }, g.floats(g.len(65536)));
        break;
      default:
        label = 'insider-tasks-forged';
        // Another agent's task stream with this client's valid session: refused (the session is not theirs).
        frame = encodeFrame({ t: 'tasks', id: seq, msg: { agentId: g.pick(t.realAgentIds), sessionToken: creds.sessionToken } });
        stats.pending.set(`${clientId}/${seq}`, 'tasks');
    }
    stats.sent.add(label);
    onSend();
    await c.publishAsync(mqttTopics.requests(clientId), frame, { qos: 1 });
  }
  return c;
}

/** Ends a clean client with a `gone` frame (what its last will would say). */
export async function endClean(c: MqttClient): Promise<void> {
  await c.publishAsync(mqttTopics.requests(c.options.clientId!), encodeFrame({ t: 'gone' }), { qos: 1 }).catch(() => undefined);
  await c.endAsync();
}

/**
 * One connection that breaks a rule of the broker: a wrong token, a client id that is not an agent's, a publish on
 * another client's topic or the coordinator's status (retained), a retained request, a 5 MiB packet, raw garbage.
 * Resolves with how it ended: refused at CONNECT, closed by the broker, or left open (counted, reported).
 */
export async function violator(t: MqttTargets, g: Gen, stats: MqttStats): Promise<void> {
  const kind = g.pick(['wrong-token', 'not-agent-id', 'other-topic', 'status-retained', 'retained-request', 'oversized', 'raw-tcp'] as const);
  let outcome: string;
  if (kind === 'raw-tcp') outcome = await rawMqttGarbage(t.url, g);
  else if (kind === 'wrong-token' || kind === 'not-agent-id') {
    const c = await clientFor(t.url, kind === 'not-agent-id' ? g.pick(['fedge-coordinator-x', 'x', `fa-${g.hex(4)}`]) : newAgentClientId(), kind === 'wrong-token' ? g.pick(['', 'wrong', t.joinToken + 'x']) : t.joinToken);
    outcome = c instanceof Error ? 'refused' : 'connected';
    if (!(c instanceof Error)) c.end(true);
  } else {
    const id = newAgentClientId();
    const c = await clientFor(t.url, id, t.joinToken);
    if (c instanceof Error) throw new Error(`fuzz MQTT client could not connect: ${c.message}`);
    const closed = new Promise<string>((r) => c.once('close', () => r('closed')));
    const topic = kind === 'other-topic' ? mqttTopics.requests(newAgentClientId()) : kind === 'status-retained' ? mqttTopics.status : mqttTopics.requests(id);
    const payload = kind === 'oversized' ? g.bytes(5 << 20) : kind === 'status-retained' ? encodeFrame({ t: 'status', online: false }) : encodeFrame({ t: 'gone' });
    c.publish(topic, payload, { qos: 1, retain: kind === 'status-retained' || kind === 'retained-request' }, () => undefined);
    outcome = await Promise.race([closed, new Promise<string>((r) => setTimeout(() => r('left-open'), 5000))]);
    c.end(true);
  }
  stats.violators.add(`${kind}:${outcome}`);
}

function rawMqttGarbage(url: string, g: Gen): Promise<string> {
  const u = new URL(url);
  const payload = g.pick([
    g.bytes(1 + g.len(4096)),
    Buffer.from([0x10, 0xff, 0xff, 0xff, 0x7f]), // CONNECT declaring 256 MiB
    Buffer.concat([Buffer.from([0x10, 0x0c, 0x00, 0x04]), Buffer.from('MQTT'), g.bytes(8)]), // CONNECT with garbage flags
    Buffer.from([0x30, 0x05, 0x00, 0x01, 0x61, 0x62, 0x63]), // PUBLISH before CONNECT
  ]);
  return new Promise((resolve) => {
    const sock = netConnect(Number(u.port), u.hostname, () => sock.write(payload));
    const timer = setTimeout(() => {
      sock.destroy();
      resolve('left-open');
    }, 5000);
    sock.on('error', () => undefined);
    sock.resume(); // read to the server's FIN, or 'close' never comes
    sock.on('close', () => {
      clearTimeout(timer);
      resolve('closed');
    });
  });
}
