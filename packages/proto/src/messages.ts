/** TypeScript shapes of the protocol messages as @grpc/proto-loader decodes them (see LOADER_OPTIONS). */

export interface TensorSpecMsg { name: string; dtype: string; shape: number[] }

export interface ModelHeaderMsg {
  runId: string;
  modelVersion: number;
  topologyJson: string;
  tensors: TensorSpecMsg[];
  totalBytes: number;
  sha256: string;
  /** Empty or absent: the payload is the weights; "chain:..." a delta chain from baseVersion (codec/downlink.ts). */
  encoding?: string;
  baseVersion?: number;
}

export interface ChunkMsg { header?: ModelHeaderMsg | null; offset: number; data: Buffer }

/**
 * A join label an agent that serves no model sets to "false": it ignores announce and promote tasks, so the coordinator
 * does not send it each new version. An agent without the label (older ones, raw protocol clients) is told.
 */
export const SERVES_LABEL = 'fedge.serves';

export interface JoinRequestMsg {
  name: string;
  agentId: string;
  joinToken: string;
  backend: string;
  agentVersion: string;
  numExamples: number;
  labels: Record<string, string>;
  /** JSON of a DataProfile (task.ts); empty or absent from agents that report none. */
  dataProfileJson?: string;
  /** Per-device identity (identity.ts): the one-time enrollment code (first join only). */
  enrollCode?: string;
  /** SPKI PEM of the agent's ed25519 key. */
  publicKey?: string;
  challengeNonce?: string;
  challengeTimeUnixMs?: number;
  /** ed25519 over joinSigningMessage; base64 text over MQTT. */
  signature?: Uint8Array | string | undefined;
  /** With agentId: the agentSecret of this agent's first join reply, which proves it is that agent. */
  agentSecret?: string;
}
export interface ChallengeRequestMsg { name: string }
export interface ChallengeReplyMsg { nonce: string; expiresUnixMs: number }
export interface JoinReplyMsg {
  agentId: string;
  sessionToken: string;
  coordinatorVersion: string;
  /** SPKI PEM of the coordinator's model signing key (signing.ts); empty from a coordinator that does not sign. */
  modelSigningKey?: string;
  /** Issued at an agent's first join (the same on every proven rejoin): required to rejoin with its agentId. */
  agentSecret?: string;
}
export interface TasksRequestMsg { agentId: string; sessionToken: string }
export interface TrainConfigMsg {
  epochs: number;
  batchSize: number;
  learningRate: number;
  seed: number;
  /** DP: clip the update delta to this L2 norm (0 or absent: no clipping). */
  clipNorm?: number;
  /** DP: std of Gaussian noise the agent adds to every parameter of the clipped delta (local DP; 0 or absent: none). */
  noiseStd?: number;
  /** DP: report metric dp_clipped (1 if the update was scaled down) for adaptive clipping. */
  reportClipped?: boolean;
  /** Update codec: float32, int8, topk or a pipeline spec (codec/spec.ts); empty or absent: float32. */
  codec?: string;
  /** topk: fraction of values kept. */
  topkFraction?: number;
  /** Carry what the codec dropped into the next update of the same run. */
  errorFeedback?: boolean;
  /** DGC momentum correction factor of the error feedback (0 or absent: off). */
  efMomentum?: number;
  /** JSON of a TaskPayload (task.ts): task and preprocessing. Empty or absent: softmax classification with SGD. */
  taskJson?: string;
  /** SCAFFOLD: sha256 of the server control variate the agent fetches (FetchModel blobSha256) and corrects its steps with. */
  controlVariateSha256?: string;
  /** Secure aggregation: JSON of the round's secagg parameters (secagg-wire.ts); empty or absent: no secagg. */
  secaggJson?: string;
}
/**
 * `announce`: a new global version exists (run, version, sha256); no result is expected. `promote`: serve this
 * version of the run (older or newer) and from now on only promoted versions of that run.
 */
export type TaskKind = 'train' | 'evaluate' | 'cancel' | 'announce' | 'promote';
export interface TaskMsg {
  taskId: string;
  runId: string;
  round: number;
  modelVersion: number;
  kind: TaskKind;
  modelSha256: string;
  modelBytes: number;
  config: TrainConfigMsg;
  deadlineUnixMs: number;
  /** ed25519 signature of (runId, modelVersion, modelSha256) by the coordinator (signing.ts); absent on cancel. */
  modelSignature?: Uint8Array;
  /** A canary promote: serve modelVersion to this fraction of requests, stableVersion to the rest (0 or absent: alone). */
  canaryFraction?: number;
  stableVersion?: number;
}
export interface FetchModelRequestMsg {
  agentId: string;
  sessionToken: string;
  runId: string;
  modelVersion: number;
  /** Non-empty: fetch this strategy blob of the run (SCAFFOLD's server control variate) by sha256 instead of a version. */
  blobSha256?: string;
  /** The version the agent holds (haveSha256 non-empty): the model may come as a delta chain from it. */
  haveVersion?: number;
  haveSha256?: string;
}
export interface ResultHeaderMsg {
  agentId: string;
  sessionToken: string;
  taskId: string;
  runId: string;
  round: number;
  modelVersion: number;
  kind: 'train' | 'evaluate';
  numExamples: number;
  tensors: TensorSpecMsg[];
  totalBytes: number;
  encoding: string;
  metrics: Record<string, number>;
  /** Non-empty: the task failed on the agent (why, for the round record); no payload follows. */
  error?: string;
  /** SCAFFOLD: the payload is [model delta | control-variate delta] (2 x the model's values, float32). */
  controlVariateDelta?: boolean;
  /** Secure aggregation: neighbors whose share box did not open (the masked input's `rejected`). */
  secaggRejected?: string[];
  /** Enrolled agents: ed25519 over updateSigningMessage (identity.ts); base64 text over MQTT. */
  signature?: Uint8Array | string | undefined;
}
export interface ResultPartMsg { header?: ResultHeaderMsg | null; chunk?: ChunkMsg | null; part?: 'header' | 'chunk' }
export interface SubmitReplyMsg { accepted: boolean; reason: string; message: string }
/** Secure aggregation: one stage message (agent -> coordinator) and the next stage's input (the reply). */
export interface SecAggRequestMsg { agentId: string; sessionToken: string; runId: string; taskId: string; round: number; stage: string; payloadJson: string }
export interface SecAggReplyMsg { accepted: boolean; reason: string; message: string; payloadJson: string }
/** Agent status (report/): body_json holds the sections; the reply's body_json what the coordinator has for the agent. */
export interface AgentReportMsg { agentId: string; sessionToken: string; bodyJson: string }
export interface ReportReplyMsg { bodyJson: string }

export interface StartRunRequestMsg { configJson: string }
export interface RunReplyMsg { runJson: string }
export interface ListRunsReplyMsg { runsJson: string[] }
export interface GetRunRequestMsg { runId: string }
export interface ListAgentsRequestMsg { limit: number; after: string; state: string; name: string; site: string; serving: string; backend: string; transport: string; summary: boolean }
export interface ListAgentsReplyMsg { agentsJson: string[]; total?: number; skipped?: number; next?: string; fleet?: number; summaryJson?: string }
export interface FetchRunModelRequestMsg { runId: string; modelVersion: number }
export interface EnrollAgentRequestMsg { name: string; ttlSeconds: number }
export interface EnrollAgentReplyMsg { name: string; code: string; expiresUnixMs: number }
export interface ListIdentitiesReplyMsg { identitiesJson: string[] }
export interface RevokeAgentRequestMsg { name: string }
export interface IdentityReplyMsg { identityJson: string }
export interface PromoteModelRequestMsg { runId: string; modelVersion: number; canary: number; margin: number; force: boolean; autoJson?: string }

/** Encoding of update payloads: float32 model delta (new weights minus the global model the task carried). */
export const UPDATE_ENCODING = 'float32-delta';
