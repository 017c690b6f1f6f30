/** What the agent needs from a coordinator, independent of the transport (gRPC today, MQTT later). */
import type { JoinReplyMsg, JoinRequestMsg, ModelHeaderMsg, ResultHeaderMsg, SubmitReplyMsg, TaskMsg } from '@fedge/proto';

export interface TaskStream extends AsyncIterable<TaskMsg> {
  cancel(): void;
}

export interface CoordinatorConnection {
  join(req: JoinRequestMsg): Promise<JoinReplyMsg>;
  tasks(agentId: string, sessionToken: string): TaskStream;
  fetchModel(req: { agentId: string; sessionToken: string; runId: string; modelVersion: number }): Promise<{ header: ModelHeaderMsg; bytes: Uint8Array }>;
  submit(header: ResultHeaderMsg, payload: Uint8Array): Promise<SubmitReplyMsg>;
  close(): void;
}
