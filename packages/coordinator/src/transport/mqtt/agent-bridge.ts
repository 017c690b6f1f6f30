/** MQTT agent transport: maps join, tasks, model downloads and result uploads on per-client topics onto the Coordinator. */
import { randomBytes } from 'node:crypto';
import type { Duplex } from 'node:stream';
import { MqttClient, connect, type IClientOptions } from 'mqtt';
import type { z } from 'zod';
import {
  CHUNK_BYTES,
  FedgeError,
  SendWindow,
  TransferAbortedError,
  challengeRequestSchema,
  chunkBytes,
  clientIdOfRequestTopic,
  decodeFrame,
  encodeFrame,
  fetchModelRequestSchema,
  joinRequestSchema,
  mqttQos,
  mqttTopics,
  parseOrThrow,
  secaggRequestSchema,
  agentReportSchema,
  signatureToJson,
  tasksRequestSchema,
  type MqttEnvelope,
  type MqttFrame,
  type TaskMsg,
} from '@fedge/proto';
import type { Coordinator } from '../../coordinator.js';
import type { AgentChannel } from '../../engine/agent-registry.js';
import { moduleLogger } from '../../log.js';
import { COORDINATOR_VERSION } from '../../version.js';
import { finishUpload, receiveUpload, type Upload, type UploadContext } from './upload-receiver.js';

const log = moduleLogger('mqtt-agent');
/** A download whose receiver acks nothing for this long, or an upload that sends nothing, is dropped (slot freed). */
const IDLE_TIMEOUT_MS = 60_000;
/** Model downloads one MQTT client may have in progress at once. */
const MAX_DOWNLOADS_PER_CLIENT = 4;
/** Each step of close() (offline status, disconnect) waits at most this long for the broker. */
const CLOSE_STEP_MS = 2000;

export interface MqttBridgeOptions {
  /** mqtt://HOST:PORT or mqtts://HOST:PORT; credentials for an external broker may be given as user:pass@. */
  url: string;
  username?: string;
  password?: string;
  /** A stream into a broker in this process (the embedded one) instead of a socket to `url`. */
  stream?: () => Duplex;
  /** The address an agent client connected from (the embedded broker knows it): the key of the join rate limit. */
  sourceOf?: (clientId: string) => string | undefined;
}

export interface MqttBridgeHandle {
  url: string;
  /** The broker saw this client disconnect (embedded broker): same as its last will. */
  clientGone(clientId: string, reason: string): void;
  close(): Promise<void>;
}

interface Download {
  window: SendWindow;
}

/** One MQTT client (one agent connection): its agent once joined, its task channel and its transfers. */
interface Peer {
  clientId: string;
  agentId?: string;
  channel?: AgentChannel;
  /** The join on this connection (request id) and its reply once sent: a repeat (the agent retries) gets that reply, no new session. */
  joined?: { id: string; reply?: MqttEnvelope };
  uploads: Map<string, Upload>;
  downloads: Map<string, Download>;
}

const errorEnvelope = (id: string, err: unknown): MqttEnvelope => ({
  t: 'error',
  id,
  code: err instanceof FedgeError ? err.code : 'E_INTERNAL',
  message: err instanceof Error ? err.message : String(err),
});

export async function startMqttBridge(coord: Coordinator, opts: MqttBridgeOptions): Promise<MqttBridgeHandle> {
  const peers = new Map<string, Peer>();
  const sourceOf = (clientId: string): string => opts.sourceOf?.(clientId) ?? 'mqtt';
  /**
   * Clients already gone. The embedded broker reports a disconnect at once, possibly before that client's last
   * messages reach this subscriber: one of them must not re-create the peer (a task channel to nobody would hold its
   * round until the deadline). Agents use a fresh client id per connection, so a departed id never comes back.
   */
  const departed = new Set<string>();
  const clientOpts: IClientOptions = {
    clientId: `fedge-coordinator-${randomBytes(6).toString('hex')}`,
    ...(opts.username !== undefined ? { username: opts.username } : {}),
    ...(opts.password !== undefined ? { password: opts.password } : {}),
    protocolVersion: 4,
    clean: true,
    keepalive: 30,
    reconnectPeriod: 1000,
    connectTimeout: 10_000,
    // Agents watch this retained status: when the coordinator dies they re-join instead of waiting for tasks forever.
    will: { topic: mqttTopics.status, payload: encodeFrame({ t: 'status', online: false }), qos: 1, retain: true },
  };
  const stream = opts.stream;
  const client: MqttClient = stream ? new MqttClient(() => stream(), clientOpts) : connect(opts.url, clientOpts);

  const send = (topic: string, env: MqttEnvelope, body?: Uint8Array): void => {
    client.publish(topic, encodeFrame(env, body), { qos: mqttQos(env.t) }, (err) => {
      if (err) log.debug({ topic, t: env.t, err: err.message }, 'publish failed');
    });
  };
  const reply = (peer: Peer, env: MqttEnvelope, body?: Uint8Array): void => send(mqttTopics.replies(peer.clientId), env, body);

  const peerOf = (clientId: string): Peer => {
    let p = peers.get(clientId);
    if (!p) peers.set(clientId, (p = { clientId, uploads: new Map(), downloads: new Map() }));
    return p;
  };

  /** Requests after join must come from the MQTT client that joined as that agent: the broker's ACL then guards sessions. */
  const boundAgent = (peer: Peer, agentId: string): void => {
    if (peer.agentId !== agentId)
      throw new FedgeError('E_AUTH', peer.agentId ? `agent_id: this MQTT client joined as "${peer.agentId}", not "${agentId}"` : 'agent_id: join on this MQTT connection first');
  };

  const gone = (clientId: string, reason: string): void => {
    departed.add(clientId);
    if (departed.size > 10_000) departed.delete(departed.values().next().value!);
    const peer = peers.get(clientId);
    if (!peer) return;
    peers.delete(clientId);
    if (peer.agentId && peer.channel) coord.closeTasks(peer.agentId, peer.channel, reason);
    for (const u of peer.uploads.values()) finishUpload(u, 'disconnected mid-upload');
    for (const d of peer.downloads.values()) d.window.fail(new TransferAbortedError(reason));
    log.debug({ clientId, agentId: peer.agentId, reason }, 'MQTT client gone');
  };

  const uploads: UploadContext<Peer> = { coord, reply, boundAgent, idleMs: IDLE_TIMEOUT_MS };

  const onJoin = async (peer: Peer, id: string, env: MqttEnvelope): Promise<void> => {
    if (peer.joined?.id === id) {
      if (peer.joined.reply) reply(peer, peer.joined.reply);
      return;
    }
    const joined: NonNullable<Peer['joined']> = { id };
    peer.joined = joined;
    try {
      const req = parseOrThrow(joinRequestSchema, env.msg, 'join');
      // An external broker does not tell the bridge agents' addresses: its MQTT joins share one source bucket.
      const r = await coord.join(req, sourceOf(peer.clientId));
      peer.agentId = r.agentId;
      joined.reply = { t: 'reply', id, msg: { ...r, coordinatorVersion: COORDINATOR_VERSION } };
    } catch (err) {
      log.warn({ clientId: peer.clientId, err: (err as Error).message }, 'join refused');
      joined.reply = errorEnvelope(id, err);
    }
    reply(peer, joined.reply);
  };

  const onTasks = (peer: Peer, id: string, env: MqttEnvelope): void => {
    try {
      const req = parseOrThrow(tasksRequestSchema, env.msg, 'tasks');
      boundAgent(peer, req.agentId);
      const topic = mqttTopics.tasks(peer.clientId);
      let closed = false;
      const channel: AgentChannel = {
        transport: 'mqtt',
        send: (task: TaskMsg) => {
          if (closed) throw new Error('channel closed');
          // JSON envelope: the signature bytes travel as base64 (signatureToJson), not as a Buffer's JSON form.
          const { modelSignature, ...rest } = task;
          const sig = signatureToJson(modelSignature);
          send(topic, { t: 'task', msg: sig ? { ...rest, modelSignature: sig } : rest });
        },
        close: (reason: string) => {
          if (closed) return;
          closed = true;
          if (peer.channel === channel) delete peer.channel;
          send(topic, { t: 'close', message: reason });
        },
      };
      if (peer.channel) coord.closeTasks(req.agentId, peer.channel, 'task stream reopened');
      peer.channel = channel;
      coord.openTasks(req.agentId, req.sessionToken, channel);
      reply(peer, { t: 'reply', id });
    } catch (err) {
      delete peer.channel;
      reply(peer, errorEnvelope(id, err));
    }
  };

  const onFetch = async (peer: Peer, id: string, env: MqttEnvelope): Promise<void> => {
    const d: Download = { window: new SendWindow() };
    peer.downloads.set(id, d);
    let sent = 0;
    let idle: NodeJS.Timeout | undefined;
    try {
      const req = parseOrThrow(fetchModelRequestSchema, env.msg, 'fetch_model');
      boundAgent(peer, req.agentId);
      coord.registry.verify(req.agentId, req.sessionToken);
      const { model, engine } = await coord.fetchModel(req.runId, req.modelVersion, req.blobSha256);
      // compression.downlink, as over gRPC: the deltas from the version the agent holds, when kept and smaller than the model.
      const chain = !req.blobSha256 && req.haveSha256 ? engine?.downlinkChain(req.haveVersion, req.haveSha256, model) : undefined;
      const payload = chain ? chain.payload : model.bytes;
      reply(peer, { t: 'model', id, msg: chain ? { ...model.header, totalBytes: payload.byteLength, encoding: chain.encoding, baseVersion: req.haveVersion } : model.header });
      try {
        for (const { offset, data } of chunkBytes(payload, CHUNK_BYTES)) {
          clearTimeout(idle);
          idle = setTimeout(() => d.window.fail(new TransferAbortedError(`no ack for ${IDLE_TIMEOUT_MS / 1000} s`)), IDLE_TIMEOUT_MS);
          await d.window.reserve(offset + data.byteLength);
          reply(peer, { t: 'chunk', id, offset }, data);
          sent += data.byteLength;
        }
        reply(peer, { t: 'end', id });
      } finally {
        // A whole chain counts as the full model it stands for in the dense figure (bytesSentDense), like gRPC's.
        engine?.noteModelSent(sent, chain && sent === payload.byteLength ? model.bytes.byteLength : sent);
      }
    } catch (err) {
      if (!(err instanceof TransferAbortedError)) reply(peer, errorEnvelope(id, err));
      else log.debug({ clientId: peer.clientId, err: err.message }, 'model download abandoned');
    } finally {
      clearTimeout(idle);
      peer.downloads.delete(id);
    }
  };

  /**
   * A request answered by one Coordinator call for the agent bound to this client: a secure-aggregation stage message
   * (its reply goes out when the stage has closed) or a status report. Refused: an error envelope naming the field or
   * the session problem.
   */
  const onAgentCall = async <S extends z.ZodType<{ agentId: string }>>(peer: Peer, id: string, msg: unknown, schema: S, root: string, call: (req: z.output<S>) => Promise<unknown>, refused: string): Promise<void> => {
    try {
      const req = parseOrThrow(schema, msg, root);
      boundAgent(peer, req.agentId);
      const r = await call(req);
      if (peers.get(peer.clientId) === peer) reply(peer, { t: 'reply', id, msg: r });
    } catch (err) {
      log.warn({ clientId: peer.clientId, agentId: peer.agentId, err: (err as Error).message }, refused);
      reply(peer, errorEnvelope(id, err));
    }
  };

  const onMessage = (topic: string, payload: Buffer): void => {
    const clientId = clientIdOfRequestTopic(topic);
    if (!clientId || departed.has(clientId)) return;
    let f: MqttFrame;
    try {
      f = decodeFrame(payload);
    } catch (err) {
      log.warn({ clientId, err: (err as Error).message }, 'dropped a malformed MQTT frame');
      return;
    }
    const { env, body } = f;
    if (env.t === 'gone') return gone(clientId, 'connection closed');
    const id = env.id;
    if (id === undefined) {
      log.warn({ clientId, t: env.t }, `dropped an MQTT "${env.t}" message without an id`);
      return;
    }
    const peer = peerOf(clientId);
    switch (env.t) {
      case 'join':
        void onJoin(peer, id, env);
        return;
      case 'challenge':
        try {
          const req = parseOrThrow(challengeRequestSchema, env.msg, 'challenge');
          return reply(peer, { t: 'reply', id, msg: coord.gate.challenge(req.name, sourceOf(peer.clientId)) });
        } catch (err) {
          return reply(peer, errorEnvelope(id, err));
        }
      case 'tasks':
        return onTasks(peer, id, env);
      case 'fetch':
        if (peer.downloads.has(id)) return reply(peer, errorEnvelope(id, new FedgeError('E_VALIDATION', `id: request "${id}" is already in progress`)));
        // An agent needs one model at a time (a few while training, serving and promotion versions overlap); more would
        // let one client make the broker buffer many models for a socket it does not read.
        if (peer.downloads.size >= MAX_DOWNLOADS_PER_CLIENT)
          return reply(peer, errorEnvelope(id, new FedgeError('E_VALIDATION', `fetch: ${peer.downloads.size} model downloads already in progress on this connection; the limit is ${MAX_DOWNLOADS_PER_CLIENT}`)));
        void onFetch(peer, id, env);
        return;
      case 'ack':
      case 'cancel': {
        const d = peer.downloads.get(id);
        if (!d) return;
        try {
          if (env.t === 'cancel') d.window.fail(new TransferAbortedError('cancelled by the agent'));
          else d.window.ack(env.offset ?? 0);
        } catch (err) {
          d.window.fail(new TransferAbortedError((err as Error).message));
          reply(peer, errorEnvelope(id, err));
        }
        return;
      }
      case 'submit':
        if (peer.uploads.has(id)) return reply(peer, errorEnvelope(id, new FedgeError('E_VALIDATION', `id: upload "${id}" is already in progress`)));
        return receiveUpload(peer, id, env, uploads);
      case 'secagg':
        void onAgentCall(peer, id, env.msg, secaggRequestSchema, 'secagg', (req) => coord.secagg(req), 'secagg stage refused');
        return;
      case 'report':
        void onAgentCall(peer, id, env.msg, agentReportSchema, 'report', (req) => coord.report(req), 'report refused');
        return;
      case 'chunk':
        return peer.uploads.get(id)?.chunk?.(env.offset, body);
      case 'end':
        return peer.uploads.get(id)?.end?.();
      default:
        reply(peer, errorEnvelope(id, new FedgeError('E_VALIDATION', `frame.t: "${env.t}" is not a request an agent sends`)));
    }
  };

  client.on('message', (topic, payload) => {
    try {
      onMessage(topic, payload);
    } catch (err) {
      // Nothing from the network may take the coordinator down.
      log.error({ topic, err: (err as Error).message }, 'MQTT message handler failed');
    }
  });
  client.on('connect', () => {
    client.subscribe(mqttTopics.allRequests, { qos: 1 }, (err, grants) => {
      if (err || grants?.some((g) => g.qos === 128)) return log.error({ err: err?.message }, `could not subscribe to ${mqttTopics.allRequests}`);
      // Online only once subscribed: agents (re)send their join when they see this, and it must not be dropped.
      client.publish(mqttTopics.status, encodeFrame({ t: 'status', online: true }), { qos: 1, retain: true });
    });
    log.info({ broker: redactUrl(opts.url) }, 'MQTT transport connected to the broker');
  });
  client.on('close', () => {
    // Every agent's session rode on this connection: they re-join once they see the status go offline.
    for (const id of [...peers.keys()]) gone(id, 'coordinator lost the MQTT broker');
  });
  client.on('error', (err) => log.warn({ broker: redactUrl(opts.url), err: err.message }, 'MQTT broker connection error'));

  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => {
      client.end(true); // or it keeps retrying and holds the process open
      reject(new FedgeError('E_CONNECTION', `MQTT broker ${redactUrl(opts.url)} not reachable within 10 s`));
    }, 10_000);
    client.once('connect', () => {
      clearTimeout(t);
      resolve();
    });
  });

  return {
    url: redactUrl(opts.url),
    clientGone: gone,
    close: async () => {
      for (const id of [...peers.keys()]) gone(id, 'coordinator shutting down');
      // Published (not left to the will) so agents re-join at once on a clean shutdown too. Bounded, and skipped with
      // the broker unreachable: mqtt.js would queue the QoS 1 publish, and a plain end() would wait for it, forever.
      const published = client.connected
        ? await within(client.publishAsync(mqttTopics.status, encodeFrame({ t: 'status', online: false }), { qos: 1, retain: true }).then(() => true, () => false), CLOSE_STEP_MS, false)
        : false;
      // A broker that took the status gets a clean DISCONNECT; otherwise the socket is dropped (its will says the same).
      await within(client.endAsync(!published).then(() => true, () => true), CLOSE_STEP_MS, false);
    },
  };
}

/** `p`, or `fallback` once `ms` have passed (the timer does not hold the process open). */
function within<T>(p: Promise<T>, ms: number, fallback: T): Promise<T> {
  return new Promise<T>((resolve) => {
    const t = setTimeout(() => resolve(fallback), ms);
    t.unref();
    void p.then((v) => {
      clearTimeout(t);
      resolve(v);
    });
  });
}

/** Broker URLs may carry a password (user:pass@host); it must never reach a log line. */
export function redactUrl(url: string): string {
  return url.replace(/\/\/[^/@]*@/, '//[redacted]@');
}
