/** MQTT implementation of CoordinatorConnection: request/reply over per-client topics, chunked transfers paced by acks. */
import { connect, type MqttClient } from 'mqtt';
import { z } from 'zod';
import {
  type ClientTls,
  AckSchedule,
  CHUNK_BYTES,
  FedgeError,
  MQTT_AGENT_USERNAME,
  SendWindow,
  chunkBytes,
  decodeFrame,
  encodeFrame,
  mqttQos,
  mqttTopics,
  newAgentClientId,
  parseOrThrow,
  signatureFromJson,
  signatureToJson,
  type ChallengeReplyMsg,
  type JoinReplyMsg,
  type JoinRequestMsg,
  type ModelHeaderMsg,
  type MqttEnvelope,
  type MqttFrame,
  type ResultHeaderMsg,
  type SecAggReplyMsg,
  type AgentReportMsg,
  type ReportReplyMsg,
  type SecAggRequestMsg,
  type SubmitReplyMsg,
  type TaskMsg,
  secaggReplySchema,
} from '@fedge/proto';
import { checkModelHeader, type CoordinatorConnection, type FetchedModel, type TaskStream } from '../connection.js';
import { ModelReceivers, type ModelReceiver } from '../model-receiver.js';
import { TaskQueue } from './task-queue.js';
import { moduleLogger } from '../../log.js';

const log = moduleLogger('mqtt-connection');

/** A reply (join, tasks) or the next download chunk not arriving within this long means the coordinator is gone. */
const REPLY_TIMEOUT_MS = 15_000;
/** A join not answered within this long is sent again (same id: the coordinator answers a repeat with its first reply). */
const JOIN_RETRY_MS = 2000;
const IDLE_TIMEOUT_MS = 60_000;

const connError = (message: string): FedgeError => new FedgeError('E_CONNECTION', message);

const joinReplySchema = z.object({ agentId: z.string().min(1), sessionToken: z.string().min(1), coordinatorVersion: z.string(), modelSigningKey: z.string().max(4096).default(''), agentSecret: z.string().max(256).default('') });
const challengeReplySchema = z.object({ nonce: z.string().min(1).max(64), expiresUnixMs: z.number() });
/** Signatures are bytes here; a string would already be base64. */
const asBytes = (s: Uint8Array | string | undefined): Uint8Array | undefined => (typeof s === 'string' ? Buffer.from(s, 'base64') : s);
const submitReplySchema = z.object({ accepted: z.boolean(), reason: z.string(), message: z.string() });
// The agent trusts its coordinator's tasks as the gRPC agent does; this only keeps a garbled one from crashing it.
const taskSchema = z.looseObject({ taskId: z.string(), runId: z.string(), kind: z.string(), round: z.number(), modelVersion: z.number() });

export interface MqttConnectionOptions {
  /** The join token: the embedded broker admits only clients presenting it (as MQTT password). */
  joinToken?: string;
  /** An enrolled device's MQTT password for this connection's client id (AgentIdentity.mqttPassword); replaces joinToken. */
  password?: (clientId: string) => string;
  /** The broker username instead of fedge-agent: a device's own login on a dynamic-security Mosquitto (AgentIdentity.brokerLogin). */
  username?: string;
  /** For mqtts://: the CA to trust instead of the system's, and a client certificate for mutual TLS. */
  tls?: ClientTls;
}

/** Accepts mqtt://HOST:PORT and mqtts://HOST:PORT (TLS with the system's CAs, or opts.tls.ca). */
export function isMqttUrl(url: string): boolean {
  return /^mqtts?:\/\//.test(url);
}

type Handler = (f: MqttFrame) => void;

export class MqttConnection implements CoordinatorConnection {
  private readonly clientId = newAgentClientId();
  private readonly client: MqttClient;
  private readonly ready: Promise<void>;
  private readonly handlers = new Map<string, Handler>();
  private readonly receivers = new ModelReceivers();
  private readonly failers = new Map<string, (e: Error) => void>();
  /** Joins waiting for a reply, by request id: sent again when the coordinator comes (back) online. */
  private readonly pendingJoins = new Map<string, () => void>();
  private nextId = 0;
  private closedWith: Error | undefined;
  private readonly taskQueue = new TaskQueue();

  constructor(url: string, opts: MqttConnectionOptions = {}) {
    const topics = mqttTopics;
    this.client = connect(url, {
      clientId: this.clientId,
      username: opts.username ?? MQTT_AGENT_USERNAME,
      ...(opts.password ? { password: opts.password(this.clientId) } : opts.joinToken ? { password: opts.joinToken } : {}),
      ...(opts.tls?.ca ? { ca: opts.tls.ca } : {}),
      ...(opts.tls?.cert && opts.tls.key ? { cert: opts.tls.cert, key: opts.tls.key } : {}),
      protocolVersion: 4,
      clean: true,
      keepalive: 30,
      // The Agent reconnects (and re-joins) itself with backoff; a silent reconnect would lose in-flight transfers.
      reconnectPeriod: 0,
      connectTimeout: REPLY_TIMEOUT_MS,
      // The coordinator learns of a crash from this will: the agent's round slot is freed at once.
      will: { topic: topics.requests(this.clientId), payload: encodeFrame({ t: 'gone' }), qos: 1, retain: false },
    });
    this.ready = new Promise<void>((resolve, reject) => {
      this.client.once('connect', () => {
        this.client
          .subscribeAsync({ [topics.replies(this.clientId)]: { qos: 1 }, [topics.tasks(this.clientId)]: { qos: 1 }, [topics.status]: { qos: 1 } })
          .then((grants) => {
            const refused = grants.find((g) => g.qos === 128);
            if (refused) throw connError(`MQTT broker refused the subscription to ${refused.topic}`);
            resolve();
          })
          .catch((err: Error) => reject(this.shutdown(err)));
      });
      this.client.on('error', (err: Error & { code?: number }) => {
        const hint = err.code === 4 || err.code === 5
          ? opts.password
            ? ' (this device\'s key or code was refused: is it enrolled and not revoked? fedge agent list --identities)'
            : ' (does --join-token match the coordinator\'s?)'
          : /certificate|self[- ]signed|SSL|TLS/i.test(err.message) ? ' (TLS: does --tls-ca name the CA that signed the broker\'s certificate?)' : '';
        reject(this.shutdown(connError(`MQTT: ${err.message}${hint}`)));
      });
      this.client.on('close', () => reject(this.shutdown(connError('MQTT connection closed'))));
    });
    this.ready.catch(() => undefined);
    this.client.on('message', (topic, payload, packet) => this.onMessage(topic, payload, packet.retain));
  }

  async join(req: JoinRequestMsg): Promise<JoinReplyMsg> {
    // JSON envelope: signature bytes travel as base64 (signatureToJson), not as a Buffer's JSON form.
    const f = await this.call('join', { msg: { ...req, signature: signatureToJson(asBytes(req.signature)) } }, REPLY_TIMEOUT_MS);
    return parseOrThrow(joinReplySchema, f.env.msg, 'join_reply');
  }

  /** The reply is held by the coordinator until the stage closes: the call waits until the stage's deadline. */
  async secagg(req: SecAggRequestMsg, deadline: number): Promise<SecAggReplyMsg> {
    const f = await this.call('secagg', { msg: req }, Math.max(1000, deadline - Date.now()));
    return parseOrThrow(secaggReplySchema, f.env.msg, 'secagg_reply');
  }

  async report(req: AgentReportMsg): Promise<ReportReplyMsg> {
    const f = await this.call('report', { msg: req }, REPLY_TIMEOUT_MS);
    const m = f.env.msg as { bodyJson?: unknown } | undefined;
    return { bodyJson: typeof m?.bodyJson === 'string' ? m.bodyJson : '' };
  }

  async challenge(name: string): Promise<ChallengeReplyMsg> {
    const f = await this.call('challenge', { msg: { name } }, REPLY_TIMEOUT_MS);
    return parseOrThrow(challengeReplySchema, f.env.msg, 'challenge_reply');
  }

  tasks(agentId: string, sessionToken: string): TaskStream {
    const self = this;
    return {
      cancel: () => this.taskQueue.end(null),
      async *[Symbol.asyncIterator]() {
        await self.call('tasks', { msg: { agentId, sessionToken } }, REPLY_TIMEOUT_MS);
        yield* self.taskQueue.drain();
      },
    };
  }

  /** haveVersion/haveSha256 ride in the fetch envelope's msg (fetchModelRequestSchema): the model may come as a delta chain. */
  async fetchModel(req: { agentId: string; sessionToken: string; runId: string; modelVersion: number; blobSha256?: string; haveVersion?: number; haveSha256?: string }): Promise<FetchedModel> {
    await this.ready;
    const id = this.newId();
    return new Promise<FetchedModel>((resolve, reject) => {
      let header: ModelHeaderMsg | undefined;
      let rx: ModelReceiver | undefined;
      let received = 0;
      let acks: AckSchedule | undefined;
      let idle: NodeJS.Timeout | undefined;
      const armIdle = (): void => {
        clearTimeout(idle);
        idle = setTimeout(() => fail(connError(`model download stalled: nothing for ${IDLE_TIMEOUT_MS / 1000} s`)), IDLE_TIMEOUT_MS);
      };
      const done = (): void => {
        clearTimeout(idle);
        this.handlers.delete(id);
        this.failers.delete(id);
      };
      const fail = (err: Error): void => {
        done();
        rx?.drop();
        if (!this.closedWith) this.publish({ t: 'cancel', id });
        reject(err);
      };
      this.failers.set(id, fail);
      this.handlers.set(id, (f) => {
        try {
          armIdle();
          const { env } = f;
          if (env.t === 'error') throw new FedgeError(env.code ?? 'E_CONNECTION', env.message ?? 'model download refused');
          if (!header) {
            if (env.t !== 'model') throw connError(`model download: expected the header first, got "${env.t}"`);
            header = checkModelHeader(env.msg);
            // The same receiver as gRPC: order and size checks here, assembly and sha256 off this thread for large models.
            rx = this.receivers.start(header.topologyJson, header.tensors as never, header.totalBytes);
            acks = new AckSchedule(header.totalBytes);
            return;
          }
          if (env.t === 'chunk') {
            const n = f.body.byteLength;
            rx!.push(env.offset ?? -1, f.body); // may take over the body's buffer: not read after this
            received += n;
            if (acks!.due(received)) this.publish({ t: 'ack', id, offset: received });
            return;
          }
          if (env.t !== 'end') throw connError(`model download: unexpected "${env.t}"`);
          const h = header;
          done();
          rx!.finish().then(({ bytes, sha256 }) => resolve({ header: h, bytes, sha256 }), reject);
        } catch (err) {
          fail(err as Error);
        }
      });
      armIdle();
      this.publish({ t: 'fetch', id, msg: req });
    });
  }

  async submit(header: ResultHeaderMsg, payload: Uint8Array): Promise<SubmitReplyMsg> {
    await this.ready;
    const id = this.newId();
    // Closed until the coordinator grants the first window: it may be waiting for a free staging slot.
    const window = new SendWindow(undefined, false);
    let replied = false;
    const reply = new Promise<SubmitReplyMsg>((resolve, reject) => {
      const done = (): void => {
        replied = true;
        this.handlers.delete(id);
        this.failers.delete(id);
      };
      const fail = (err: Error): void => {
        done();
        window.fail(err);
        reject(err);
      };
      this.failers.set(id, fail);
      this.handlers.set(id, ({ env }) => {
        try {
          if (env.t === 'ack') return window.ack(env.offset ?? 0);
          if (env.t === 'error') throw new FedgeError(env.code ?? 'E_CONNECTION', env.message ?? 'upload refused');
          if (env.t !== 'reply') throw connError(`upload: unexpected "${env.t}"`);
          const r = parseOrThrow(submitReplySchema, env.msg, 'submit_reply');
          done();
          // The coordinator replies early when it rejects an upload; the sender stops at its next reserve.
          window.fail(connError('upload answered'));
          resolve(r);
        } catch (err) {
          fail(err as Error);
        }
      });
    });
    this.publish({ t: 'submit', id, msg: { ...header, signature: signatureToJson(asBytes(header.signature)) } });
    void (async () => {
      try {
        for (const { offset, data } of chunkBytes(payload, CHUNK_BYTES)) {
          await window.reserve(offset + data.byteLength);
          if (replied) return;
          this.publish({ t: 'chunk', id, offset }, data);
        }
        if (payload.byteLength === 0) await window.reserve(0);
        if (!replied) this.publish({ t: 'end', id });
      } catch {
        // The reply (or the failure) already settled the promise.
      }
    })();
    return reply;
  }

  close(): void {
    if (this.closedWith) return;
    // A clean MQTT disconnect discards the will, so say goodbye explicitly: the coordinator detaches at once.
    if (this.client.connected) this.publish({ t: 'gone' });
    this.shutdown(connError('connection closed'));
    this.client.end(false);
    this.receivers.close();
  }

  private newId(): string {
    return `r${++this.nextId}`;
  }

  /** Sends a request and resolves with its first reply (or rejects with the coordinator's error). */
  private async call(t: 'join' | 'tasks' | 'challenge' | 'secagg' | 'report', env: Omit<MqttEnvelope, 't' | 'id'>, timeoutMs: number): Promise<MqttFrame> {
    await this.ready;
    const id = this.newId();
    return new Promise<MqttFrame>((resolve, reject) => {
      const timer = setTimeout(() => fail(connError(`no reply to ${t} within ${timeoutMs / 1000} s: is the coordinator connected to this broker?`)), timeoutMs);
      let retry: NodeJS.Timeout | undefined;
      const settle = (): void => {
        clearTimeout(timer);
        clearTimeout(retry);
        this.handlers.delete(id);
        this.failers.delete(id);
        this.pendingJoins.delete(id);
      };
      const fail = (err: Error): void => {
        settle();
        reject(err);
      };
      this.failers.set(id, fail);
      this.handlers.set(id, (f) => {
        settle();
        if (f.env.t === 'error') reject(new FedgeError(f.env.code ?? 'E_CONNECTION', f.env.message ?? `${t} refused`));
        else resolve(f);
      });
      const send = (): void => this.publish({ ...env, t, id });
      if (t === 'join') {
        // After a broker restart the join may reach the broker before the coordinator has subscribed again, and
        // the broker drops it: send it again when the coordinator says it is online, and every few seconds.
        let wait = JOIN_RETRY_MS;
        const again = (): void => {
          clearTimeout(retry);
          retry = setTimeout(() => {
            send();
            wait *= 2;
            again();
          }, wait);
        };
        this.pendingJoins.set(id, () => {
          send();
          again();
        });
        again();
      }
      send();
    });
  }

  private publish(env: MqttEnvelope, body?: Uint8Array): void {
    this.client.publish(mqttTopics.requests(this.clientId), encodeFrame(env, body), { qos: mqttQos(env.t) }, (err) => {
      if (err && !this.closedWith) log.debug({ err: err.message, t: env.t }, 'publish failed');
    });
  }

  private onMessage(topic: string, payload: Buffer, retained: boolean): void {
    let f: MqttFrame;
    try {
      f = decodeFrame(payload);
    } catch (err) {
      log.warn({ topic, err: (err as Error).message }, 'dropped a malformed MQTT frame');
      return;
    }
    if (topic === mqttTopics.status) {
      if (f.env.t === 'status' && f.env.online === false) this.shutdown(connError('the coordinator went offline'));
      // Not the retained status every subscriber gets, but the coordinator announcing itself just now: it has
      // (re)subscribed, so a join it may have missed goes again at once.
      else if (f.env.t === 'status' && f.env.online === true && !retained) for (const resend of [...this.pendingJoins.values()]) resend();
      return;
    }
    if (topic === mqttTopics.tasks(this.clientId)) {
      // Like the end of a gRPC task stream: the Agent re-joins.
      if (f.env.t === 'close') return this.taskQueue.end(null);
      if (f.env.t !== 'task') return;
      const r = taskSchema.safeParse(f.env.msg);
      if (!r.success) return log.warn({ err: r.error.message }, 'dropped a malformed task');
      // The signature crossed the JSON envelope as base64 (the bridge's signatureToJson): back to bytes.
      const { modelSignature, ...task } = r.data;
      const sig = signatureFromJson(modelSignature);
      this.taskQueue.push({ ...(task as unknown as TaskMsg), ...(sig ? { modelSignature: sig } : {}) });
      return;
    }
    const h = f.env.id !== undefined ? this.handlers.get(f.env.id) : undefined;
    if (h) h(f);
  }

  /** Fails everything in flight; returns the error for convenience. */
  private shutdown(err: Error): Error {
    if (this.closedWith) return this.closedWith;
    this.closedWith = err;
    for (const fail of [...this.failers.values()]) fail(err);
    this.taskQueue.end(err);
    return err;
  }
}
