/** What the agent needs from a coordinator, independent of the transport (gRPC or MQTT), and what both transports check alike. */
import {
  FedgeError,
  modelHeaderSchema,
  parseOrThrow,
  type AgentReportMsg,
  type ReportReplyMsg,
  type ChallengeReplyMsg,
  type JoinReplyMsg,
  type JoinRequestMsg,
  type ModelHeaderMsg,
  type ResultHeaderMsg,
  type SecAggReplyMsg,
  type SecAggRequestMsg,
  type SubmitReplyMsg,
  type TaskMsg,
} from '@fedge/proto';

/** The largest model an agent accepts to download, whatever the transport. */
export const MAX_MODEL_BYTES = 2 * 1024 ** 3;

/** Validates a download's header (either transport) and checks the model fits this agent's limit. */
export function checkModelHeader(raw: unknown): ModelHeaderMsg {
  const header = parseOrThrow(modelHeaderSchema, raw, 'model_header') as ModelHeaderMsg;
  if (header.totalBytes > MAX_MODEL_BYTES) throw new FedgeError('E_CONNECTION', `model of ${header.totalBytes} bytes exceeds this agent's limit of ${MAX_MODEL_BYTES}`);
  return header;
}

export interface TaskStream extends AsyncIterable<TaskMsg> {
  cancel(): void;
}

/** A downloaded model. */
export interface FetchedModel {
  header: ModelHeaderMsg;
  bytes: Uint8Array;
  /**
   * modelDigest of header and bytes, when the transport hashed the chunks as they arrived (the caller still compares
   * it with the announced digest); absent, the caller hashes `bytes`.
   */
  sha256?: string;
}

export interface CoordinatorConnection {
  join(req: JoinRequestMsg): Promise<JoinReplyMsg>;
  /** A one-use nonce to sign in the next join (enrolled agents; identity.ts). */
  challenge(name: string): Promise<ChallengeReplyMsg>;
  tasks(agentId: string, sessionToken: string): TaskStream;
  /** A model version, or with `blobSha256` a strategy blob of the run (SCAFFOLD's server control variate), same header and chunks. */
  /** haveVersion/haveSha256: the version held, so the model may come as a delta chain (header.encoding; gRPC and MQTT). */
  fetchModel(req: { agentId: string; sessionToken: string; runId: string; modelVersion: number; blobSha256?: string; haveVersion?: number; haveSha256?: string }): Promise<FetchedModel>;
  submit(header: ResultHeaderMsg, payload: Uint8Array): Promise<SubmitReplyMsg>;
  /**
   * One secure-aggregation stage message; the reply comes when the stage has closed. `deadline` (unix ms, the
   * stage's own plus a margin) bounds the call: a coordinator that never answers fails it with E_CONNECTION.
   */
  secagg(req: SecAggRequestMsg, deadline: number): Promise<SecAggReplyMsg>;
  /** An agent status report (report/); a refusal rejects (E_AUTH: join again; E_VALIDATION: the body was wrong). */
  report(req: AgentReportMsg): Promise<ReportReplyMsg>;
  close(): void;
}

/**
 * `conn` with the methods in `overrides` replaced; every other method (fetches, submits, SecAgg, reports, whatever
 * the interface grows) goes straight to `conn`, so an observer (metrics, health) lists only what it watches.
 */
export function overrideConnection(conn: CoordinatorConnection, overrides: Partial<CoordinatorConnection>): CoordinatorConnection {
  return new Proxy(conn, {
    get(target, key) {
      if (key in overrides) return overrides[key as keyof CoordinatorConnection];
      const v = Reflect.get(target, key) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}

/** `stream` watched: `task` sees each task before the consumer, `error` a failure (rethrown), `end` a clean end. */
export function tapTaskStream(stream: TaskStream, tap: { task?: (t: TaskMsg) => void; error?: (err: unknown) => void; end?: () => void }): TaskStream {
  return {
    cancel: () => stream.cancel(),
    async *[Symbol.asyncIterator](): AsyncGenerator<TaskMsg> {
      try {
        for await (const t of stream) {
          tap.task?.(t);
          yield t;
        }
      } catch (err) {
        tap.error?.(err);
        throw err;
      }
      tap.end?.();
    },
  };
}
