/** gRPC implementation of CoordinatorConnection: chunked model download and upload with backpressure. */
import * as grpc from '@grpc/grpc-js';
import {
  CHANNEL_OPTIONS,
  CHUNK_BYTES,
  ChunkAssembler,
  FedgeError,
  chunkBytes,
  loadServices,
  modelHasher,
  modelHeaderSchema,
  parseOrThrow,
  type ChunkMsg,
  type JoinReplyMsg,
  type JoinRequestMsg,
  type ModelHeaderMsg,
  type ResultHeaderMsg,
  type ResultPartMsg,
  type SubmitReplyMsg,
  type TaskMsg,
} from '@fedge/proto';
import type { Hash } from 'node:crypto';
import type { CoordinatorConnection, FetchedModel, TaskStream } from '../connection.js';

/** Largest model the agent accepts; protects small devices from a coordinator announcing absurd sizes. */
export const MAX_MODEL_BYTES = 2 * 1024 ** 3;

type AnyClient = grpc.Client & Record<string, (...args: unknown[]) => unknown>;

export class ConnectionError extends FedgeError {
  constructor(message: string, readonly grpcCode?: number) {
    super('E_CONNECTION', message);
    this.name = 'ConnectionError';
  }
}

const wrap = (err: grpc.ServiceError): ConnectionError => new ConnectionError(err.details || err.message, err.code);

export class GrpcConnection implements CoordinatorConnection {
  private readonly client: AnyClient;

  constructor(target: string) {
    const { AgentService } = loadServices();
    this.client = new AgentService(target, grpc.credentials.createInsecure(), CHANNEL_OPTIONS) as unknown as AnyClient;
  }

  join(req: JoinRequestMsg): Promise<JoinReplyMsg> {
    return new Promise((resolve, reject) => {
      this.client.Join!(req, { deadline: Date.now() + 15_000 }, (err: grpc.ServiceError | null, res: JoinReplyMsg) => (err ? reject(wrap(err)) : resolve(res)));
    });
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
      let asm: ChunkAssembler | undefined;
      let hash: Hash | undefined;
      const fail = (err: unknown): void => {
        call.cancel();
        reject(err);
      };
      call.on('data', (c: ChunkMsg) => {
        try {
          if (!header) {
            if (!c.header) throw new ConnectionError('model stream: the first chunk carries no header');
            header = parseOrThrow(modelHeaderSchema, c.header, 'model_header') as ModelHeaderMsg;
            if (header.totalBytes > MAX_MODEL_BYTES) throw new ConnectionError(`model of ${header.totalBytes} bytes exceeds this agent's limit of ${MAX_MODEL_BYTES}`);
            asm = new ChunkAssembler(header.totalBytes);
            hash = modelHasher(header.topologyJson, header.tensors as never);
          }
          if (c.data.byteLength) {
            asm!.push(c.offset, c.data);
            // Hashing each chunk only after push accepted it keeps the digest over exactly the assembled bytes.
            hash!.update(c.data);
          }
        } catch (err) {
          fail(err);
        }
      });
      call.on('error', (err: grpc.ServiceError) => reject(wrap(err)));
      call.on('end', () => {
        try {
          if (!header || !asm || !hash) throw new ConnectionError('model stream ended without a header');
          resolve({ header, bytes: asm.finish(), sha256: hash.digest('hex') });
        } catch (err) {
          reject(err);
        }
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
  }
}
