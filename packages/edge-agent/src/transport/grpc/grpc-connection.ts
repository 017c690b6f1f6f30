/** gRPC implementation of CoordinatorConnection: chunked model download and upload with backpressure. */
import * as grpc from '@grpc/grpc-js';
import {
  type ClientTls,
  CHANNEL_OPTIONS,
  CHUNK_BYTES,
  FedgeError,
  chunkBytes,
  loadServices,
  type ChallengeReplyMsg,
  type ChunkMsg,
  type JoinReplyMsg,
  type JoinRequestMsg,
  type ModelHeaderMsg,
  type ResultHeaderMsg,
  type ResultPartMsg,
  type SubmitReplyMsg,
  type TaskMsg,
} from '@fedge/proto';
import type { CoordinatorConnection, FetchedModel, TaskStream } from '../connection.js';
import { ModelReceivers, type ModelReceiver } from '../model-receiver.js';
import { checkModelHeader } from '../connection.js';

/** Largest model the agent accepts; protects small devices from a coordinator announcing absurd sizes. */

type AnyClient = grpc.Client & Record<string, (...args: unknown[]) => unknown>;

export class ConnectionError extends FedgeError {
  constructor(message: string, readonly grpcCode?: number) {
    super('E_CONNECTION', message);
    this.name = 'ConnectionError';
  }
}

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

  /** `tls` absent: plaintext (grpc://); present, even empty: TLS (grpcs://), with the system's CAs unless `tls.ca`. */
  constructor(target: string, tls?: ClientTls) {
    const { AgentService } = loadServices();
    this.tls = !!tls;
    const creds = tls ? grpc.credentials.createSsl(tls.ca ?? null, tls.key ?? null, tls.cert ?? null) : grpc.credentials.createInsecure();
    this.client = new AgentService(target, creds, CHANNEL_OPTIONS) as unknown as AnyClient;
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
    return {
      cancel: () => call.cancel(),
      async *[Symbol.asyncIterator]() {
        try {
          for await (const t of call) yield t as TaskMsg;
        } catch (err) {
          const e = err as grpc.ServiceError;
          if (e.code === grpc.status.CANCELLED) return;
          throw wrap(e);
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
        rx?.drop();
        call.cancel();
        reject(err);
      };
      call.on('data', (c: ChunkMsg) => {
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
        rx?.drop();
        reject(wrap(err));
      });
      call.on('end', () => {
        if (failed) return;
        if (!header || !rx) return reject(new ConnectionError('model stream ended without a header'));
        const h = header;
        rx.finish().then(({ bytes, sha256 }) => resolve({ header: h, bytes, sha256 }), reject);
      });
    });
  }

  submit(header: ResultHeaderMsg, payload: Uint8Array): Promise<SubmitReplyMsg> {
    return new Promise((resolve, reject) => {
      const call = this.client.SubmitResult!((err: grpc.ServiceError | null, res: SubmitReplyMsg) => (err ? reject(wrap(err)) : resolve(res))) as grpc.ClientWritableStream<ResultPartMsg>;
      void (async () => {
        const write = async (m: ResultPartMsg): Promise<boolean> => {
          if (call.destroyed || call.writableEnded) return false;
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

  close(): void {
    this.client.close();
    this.receivers.close();
  }
}
