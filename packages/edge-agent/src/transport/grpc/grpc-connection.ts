/** gRPC implementation of CoordinatorConnection: chunked model download and upload with backpressure. */
import * as grpc from '@grpc/grpc-js';
import {
  type ClientTls,
  CHANNEL_OPTIONS,
  CHUNK_BYTES,
  FedgeError,
  chunkBytes,
  idleTimer,
  loadServices,
  type AgentReportMsg,
  type ReportReplyMsg,
  type ChallengeReplyMsg,
  type ChunkMsg,
  type JoinReplyMsg,
  type JoinRequestMsg,
  type ModelHeaderMsg,
  type ResultHeaderMsg,
  type ResultPartMsg,
  type SecAggReplyMsg,
  type SecAggRequestMsg,
  type SubmitReplyMsg,
  parseOrThrow,
  secaggReplySchema,
  type TaskMsg,
} from '@fedge/proto';
import type { CoordinatorConnection, FetchedModel, TaskStream } from '../connection.js';
import { ModelReceivers, type ModelReceiver } from '../model-receiver.js';
import { checkModelHeader } from '../connection.js';

/** Largest model the agent accepts; protects small devices from a coordinator announcing absurd sizes. */

type AnyClient = grpc.Client & Record<string, (...args: unknown[]) => unknown>;

/** E_AUTH when the coordinator refused the session (as over MQTT): the agent then joins again; else E_CONNECTION. */
export class ConnectionError extends FedgeError {
  constructor(message: string, readonly grpcCode?: number) {
    super(grpcCode === grpc.status.UNAUTHENTICATED ? 'E_AUTH' : 'E_CONNECTION', message);
    this.name = 'ConnectionError';
  }
}

/**
 * Bounds on the calls that have no deadline. Tasks: until the coordinator's headers say the stream is open (after
 * that, keepalive pings watch the connection; tasks may be hours apart). FetchModel: between chunks. SubmitResult:
 * between chunks sent, and for the reply; generous, since the coordinator may hold an upload until a staging slot
 * frees (its own round deadline bounds that).
 */
export interface GrpcTimeouts {
  tasksOpenMs: number;
  fetchIdleMs: number;
  submitIdleMs: number;
}
export const GRPC_TIMEOUTS: GrpcTimeouts = { tasksOpenMs: 15_000, fetchIdleMs: 60_000, submitIdleMs: 5 * 60_000 };

/** A report is small and answered at once; one that takes longer is dropped (the next heartbeat sends a fresh one). */
const REPORT_TIMEOUT_MS = 10_000;

const stalled = (what: string, ms: number): ConnectionError =>
  new ConnectionError(`${what}: nothing from the coordinator for ${ms / 1000} s; giving up on this call`, grpc.status.DEADLINE_EXCEEDED);

/** A TLS failure says so and what to check; grpc-js reports it as a bare UNAVAILABLE. */
const wrap = (err: grpc.ServiceError): ConnectionError => {
  const details = err.details || err.message;
  if (err.code === grpc.status.UNAVAILABLE && /certificate|self[- ]signed|SSL|TLS|handshake/i.test(details))
    return new ConnectionError(`TLS to the coordinator failed: ${details} (does --tls-ca name the CA that signed its certificate?)`, err.code);
  return new ConnectionError(details, err.code);
};

export class GrpcConnection implements CoordinatorConnection {
  private readonly client: AnyClient;
  private readonly receivers = new ModelReceivers();
  private readonly tls: boolean;
  private readonly timeouts: GrpcTimeouts;

  /**
   * `tls` absent: plaintext (grpc://); present, even empty: TLS (grpcs://), with the system's CAs unless `tls.ca`.
   * `ownSocket`: a connection of its own instead of grpc-js' process-wide one per target (simulated fleets, where
   * each virtual agent must cost the coordinator what a device would).
   */
  constructor(target: string, tls?: ClientTls, timeouts: Partial<GrpcTimeouts> = {}, ownSocket = false) {
    this.timeouts = { ...GRPC_TIMEOUTS, ...timeouts };
    const { AgentService } = loadServices();
    this.tls = !!tls;
    const creds = tls ? grpc.credentials.createSsl(tls.ca ?? null, tls.key ?? null, tls.cert ?? null) : grpc.credentials.createInsecure();
    this.client = new AgentService(target, creds, ownSocket ? { ...CHANNEL_OPTIONS, 'grpc.use_local_subchannel_pool': 1 } : CHANNEL_OPTIONS) as unknown as AnyClient;
  }

  join(req: JoinRequestMsg): Promise<JoinReplyMsg> {
    return new Promise((resolve, reject) => {
      this.client.Join!(req, { deadline: Date.now() + 15_000 }, (err: grpc.ServiceError | null, res: JoinReplyMsg) => (err ? reject(this.joinError(err)) : resolve(res)));
    });
  }

  challenge(name: string): Promise<ChallengeReplyMsg> {
    return new Promise((resolve, reject) => {
      this.client.Challenge!({ name }, { deadline: Date.now() + 15_000 }, (err: grpc.ServiceError | null, res: ChallengeReplyMsg) => (err ? reject(this.joinError(err)) : resolve(res)));
    });
  }

  /** A plaintext client meeting a TLS listener sees only "failed to connect": say what else it could be. */
  private joinError(err: grpc.ServiceError): ConnectionError {
    const e = wrap(err);
    // Refused, unresolved or unanswered: nobody is listening there, TLS or not.
    if (this.tls || err.code !== grpc.status.UNAVAILABLE || /ECONNREFUSED|ENOTFOUND|EAI_AGAIN|ETIMEDOUT|EHOSTUNREACH/.test(e.message)) return e;
    return new ConnectionError(`${e.message} (plaintext grpc://; if the coordinator serves TLS, use grpcs://)`, err.code);
  }

  tasks(agentId: string, sessionToken: string): TaskStream {
    const call = this.client.Tasks!({ agentId, sessionToken }) as grpc.ClientReadableStream<TaskMsg>;
    let gaveUp: ConnectionError | undefined;
    const ms = this.timeouts.tasksOpenMs;
    const opening = idleTimer(ms, () => {
      gaveUp = new ConnectionError(`task stream: the coordinator neither opened nor refused it within ${ms / 1000} s`, grpc.status.DEADLINE_EXCEEDED);
      call.cancel();
    });
    call.on('metadata', () => opening.stop());
    call.on('status', () => opening.stop());
    return {
      cancel: () => {
        opening.stop();
        call.cancel();
      },
      async *[Symbol.asyncIterator]() {
        try {
          for await (const t of call) yield t as TaskMsg;
        } catch (err) {
          if (gaveUp) throw gaveUp;
          const e = err as grpc.ServiceError;
          if (e.code === grpc.status.CANCELLED) return;
          throw wrap(e);
        } finally {
          opening.stop();
        }
      },
    };
  }

  fetchModel(req: { agentId: string; sessionToken: string; runId: string; modelVersion: number }): Promise<FetchedModel> {
    return new Promise((resolve, reject) => {
      const call = this.client.FetchModel!(req) as grpc.ClientReadableStream<ChunkMsg>;
      let header: ModelHeaderMsg | undefined;
      let rx: ModelReceiver | undefined;
      let failed = false;
      const fail = (err: unknown): void => {
        failed = true;
        idle.stop();
        rx?.drop();
        call.cancel();
        reject(err);
      };
      const idle = idleTimer(this.timeouts.fetchIdleMs, () => fail(stalled('model download', this.timeouts.fetchIdleMs)));
      call.on('data', (c: ChunkMsg) => {
        idle.touch();
        if (failed) return;
        try {
          if (!header) {
            if (!c.header) throw new ConnectionError('model stream: the first chunk carries no header');
            header = checkModelHeader(c.header);
            rx = this.receivers.start(header.topologyJson, header.tensors as never, header.totalBytes);
          }
          // The receiver checks order and size, and hashes exactly the bytes it assembles; it may take over
          // c.data's buffer, so nothing reads c after this.
          if (c.data.byteLength) rx!.push(c.offset, c.data);
        } catch (err) {
          fail(err);
        }
      });
      call.on('error', (err: grpc.ServiceError) => {
        idle.stop();
        rx?.drop();
        reject(wrap(err));
      });
      call.on('end', () => {
        idle.stop();
        if (failed) return;
        if (!header || !rx) return reject(new ConnectionError('model stream ended without a header'));
        const h = header;
        rx.finish().then(({ bytes, sha256 }) => resolve({ header: h, bytes, sha256 }), reject);
      });
    });
  }

  submit(header: ResultHeaderMsg, payload: Uint8Array): Promise<SubmitReplyMsg> {
    return new Promise((resolve, reject) => {
      const ms = this.timeouts.submitIdleMs;
      const idle = idleTimer(ms, () => {
        reject(stalled('upload', ms));
        call.cancel();
      });
      const call = this.client.SubmitResult!((err: grpc.ServiceError | null, res: SubmitReplyMsg) => {
        idle.stop();
        if (err) reject(wrap(err));
        else resolve(res);
      }) as grpc.ClientWritableStream<ResultPartMsg>;
      void (async () => {
        const write = async (m: ResultPartMsg): Promise<boolean> => {
          if (call.destroyed || call.writableEnded) return false;
          idle.touch();
          if (!call.write(m)) await new Promise<void>((r) => {
            const done = (): void => {
              call.off('drain', done);
              call.off('close', done);
              r();
            };
            call.on('drain', done);
            call.on('close', done);
          });
          return true;
        };
        if (!(await write({ header }))) return;
        for (const { offset, data } of chunkBytes(payload, CHUNK_BYTES)) {
          // The coordinator replies early when it rejects an upload; stop sending then.
          if (!(await write({ chunk: { offset, data: Buffer.from(data.buffer, data.byteOffset, data.byteLength) } }))) return;
        }
        call.end();
      })();
    });
  }

  secagg(req: SecAggRequestMsg, deadline: number): Promise<SecAggReplyMsg> {
    return new Promise((resolve, reject) => {
      this.client.SecAgg!(req, { deadline }, (err: grpc.ServiceError | null, res: SecAggReplyMsg) => {
        if (err) return reject(wrap(err));
        try {
          resolve(parseOrThrow(secaggReplySchema, res, 'secagg_reply'));
        } catch (e) {
          reject(e);
        }
      });
    });
  }

  report(req: AgentReportMsg): Promise<ReportReplyMsg> {
    return new Promise((resolve, reject) => {
      this.client.Report!(req, { deadline: Date.now() + REPORT_TIMEOUT_MS }, (err: grpc.ServiceError | null, res: ReportReplyMsg) => {
        if (err) return reject(wrap(err));
        resolve({ bodyJson: String(res?.bodyJson ?? '') });
      });
    });
  }

  close(): void {
    this.client.close();
    this.receivers.close();
  }
}
