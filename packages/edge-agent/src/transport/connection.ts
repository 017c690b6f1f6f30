/** What the agent needs from a coordinator, independent of the transport (gRPC today, MQTT later). */
import type { JoinReplyMsg, JoinRequestMsg, ModelHeaderMsg, ResultHeaderMsg, SubmitReplyMsg, TaskMsg } from '@fedge/proto';

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
  tasks(agentId: string, sessionToken: string): TaskStream;
  fetchModel(req: { agentId: string; sessionToken: string; runId: string; modelVersion: number }): Promise<FetchedModel>;
  submit(header: ResultHeaderMsg, payload: Uint8Array): Promise<SubmitReplyMsg>;
  close(): void;
}
