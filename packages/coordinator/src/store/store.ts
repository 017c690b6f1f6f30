/** The one interface all run state goes through, so a durable store can replace the in-memory one without engine changes. */
import type { ColumnProfile, DataProfileCounts, DriftSection, ModelBlob, Preprocessing, ResolvedTask } from '@fedge/proto';
import type { RunConfig } from '../config/run-config.js';
import type { RoundSummary } from './round-summary.js';

export type RunStatus = 'pending' | 'waiting' | 'running' | 'completed' | 'failed' | 'stopped';

export type ParticipantOutcome = 'completed' | 'rejected' | 'dropped' | 'late';

export interface Participant {
  agentId: string;
  name: string;
  outcome: ParticipantOutcome;
  reason?: string;
  numExamples?: number;
  seconds?: number;
  metrics?: Record<string, number>;
  /** The version the agent trained from, how many versions behind it was when folded, and its aggregation weight. */
  baseVersion?: number;
  staleness?: number;
  weight?: number;
  /** Async with async.speedWeighting: the factor (>= 1) in `weight` for an agent slower than the fleet's median. */
  speedFactor?: number;
  /** Data lineage: the fingerprint of the dataset the agent reported when it trained (DataProfile.fingerprint). */
  fingerprint?: string;
}

export interface RoundRecord {
  round: number;
  /** The global version this round trained from, and the one it produced (undefined when the round failed). */
  baseVersion: number;
  version?: number;
  status: 'completed' | 'failed';
  reason?: string;
  startedAt: string;
  endedAt: string;
  seconds: number;
  /**
   * Who took part, in a few numbers (round-summary.ts); the list itself is kept apart (Store.listParticipants), so a
   * record's size does not grow with participants per round. Absent on records written before it (issue 16).
   */
  summary?: RoundSummary;
  /**
   * The list inline: records written before the summary (a store migrates its own), and views of a round small
   * enough to list (`fedge run show`: up to INLINE_PARTICIPANTS); a larger round's view has participantsNote instead.
   */
  participants?: Participant[];
  participantsNote?: string;
  /** Example-weighted means over completed participants. */
  trainLoss?: number;
  trainAccuracy?: number;
  /** Example-weighted federated evaluation of `version` on agents' held-out splits (filled when it arrives). */
  federatedLoss?: number;
  federatedAccuracy?: number;
  federatedExamples?: number;
  /** Central evaluation of `version` on the coordinator's test set. */
  centralLoss?: number;
  centralAccuracy?: number;
  /** The task's metrics (RunData.task.metrics, e.g. rmse, r2, f1): example-weighted means over participants' training batches, federated and central evaluation. */
  trainMetrics?: Record<string, number>;
  federatedMetrics?: Record<string, number>;
  centralMetrics?: Record<string, number>;
  bytesReceived: number;
  bytesSent: number;
  /** What the accepted updates / the model downloads would have weighed as dense float32 (issue 14's ratios). */
  bytesReceivedDense?: number;
  bytesSentDense?: number;
  aggregationMs?: number;
  /** Updates per staleness (versions behind), e.g. {"0": 2, "3": 1}. */
  stalenessHistogram?: Record<string, number>;
  /** Differential privacy: epsilon spent after this round (at config.privacy.delta) and the clip norm it used. */
  epsilon?: number;
  clipNorm?: number;
  /** Secure aggregation: how far the round's cohort got through the protocol, and the unmask stage's time. */
  secagg?: SecAggRoundStats;
}

/** One secure-aggregation round's counts (agents of the cohort; names where a person needs to know who). */
export interface SecAggRoundStats {
  /** The ring's bits and the grid: 'int8' (0..255 per agent) or 'ring' (the finest grid the ring holds). */
  bits: number;
  quantization: 'int8' | 'ring';
  threshold: number;
  cohort: number;
  advertised: number;
  shared: number;
  /** Masked inputs in the unmasked sum. */
  survivors: number;
  /** Sent their shares but no masked input reached the sum: their pairwise masks were removed from it. */
  droppedBeforeInput: number;
  /** In the cohort but never sent their shares (or keys): nothing of theirs is in the sum. */
  droppedBeforeShares: number;
  /** Input in the sum but no unmask shares by the time the stage closed (it closes once every secret has t shares). */
  droppedAfterInput: number;
  /** Agents a neighbor reported for a share box that failed its MAC (tampered or forged); excluded ones were dropped. */
  tampered: string[];
  tamperedExcluded: string[];
  /** Masked inputs the coordinator refused (an excluded sender, a closed stage). */
  refusedInputs: number;
  /** From the masked-input stage's close to the unmasked sum (waiting for shares + removing the masks). */
  unmaskSeconds?: number;
}

export interface ModelVersionRecord {
  version: number;
  sha256: string;
  round: number;
  parent?: number;
  createdAt: string;
  centralLoss?: number;
  centralAccuracy?: number;
  federatedAccuracy?: number;
  centralMetrics?: Record<string, number>;
  federatedMetrics?: Record<string, number>;
  /**
   * Set when model retention (engine/retention.ts) removed this version's weights: the record stays (lineage,
   * metrics, sha256 for delta downloads), the blob is gone. Saved before the blob is deleted, so a record without
   * this mark always has its blob.
   */
  collected?: { at: string; keepLast: number | 'all' };
  /** Not stored: the coordinator's ed25519 signature (hex) of this version, filled in by getRun (fedge model show). */
  signature?: string;
}

export interface RunRecord {
  id: string;
  config: RunConfig;
  status: RunStatus;
  statusMessage?: string;
  createdAt: string;
  startedAt?: string;
  endedAt?: string;
  round: number;
  modelVersion: number;
  rounds: RoundRecord[];
  versions: ModelVersionRecord[];
  modelPath?: string;
  /**
   * The sync round in progress when the store is durable: its invitees (by agent name, in task-seed order) and
   * the updates accepted so far (spooled to disk), so a restarted coordinator continues it where it was.
   */
  openRound?: OpenRoundState;
  /**
   * The promoted model serving agents follow. Absent until the first `fedge model promote`: until then serving
   * agents follow every new version; afterwards only promotions (and rollbacks) are announced to them.
   */
  promotion?: PromotionState;
  /** The run config's promotion gate, once the run ended (config.promotion.auto). */
  promotionGate?: PromotionGateRecord;
  /**
   * Differential privacy: the strategy's accounting state (composed steps, fixed denominator q * N, current clip norm),
   * saved with every run save and before a new version is released, so a restarted coordinator continues the run.
   */
  privacyState?: { steps: number; denominator?: number; clipNorm: number; lastClipNorm?: number; statisticsSteps?: number };
  /**
   * Server optimizer strategies (fedavgm, fedadam, fedyogi, fedadagrad): the state that produced `modelVersion`. The
   * moments are a blob in the model store under `sha256` (content-addressed like a model version); the record keeps
   * the reference, saved with the round record of that version.
   */
  serverOptState?: { name: string; numParams: number; step: number; options: Record<string, number>; sha256: string };
  /** SCAFFOLD: the server control variate c that pairs with `modelVersion`, a blob in the model store (saved as serverOptState is). */
  scaffoldState?: { numParams: number; step: number; sha256: string };
  /** Set when the run stopped because a version reached config.targetAccuracy (accuracy) or config.stopAt (metric, value). */
  reachedTarget?: { version: number; round: number; accuracy: number; seconds: number; metric?: string; value?: number };
  /** The statistics step before round 1: what the run learns and from which data. Absent on runs without a task. */
  data?: RunData;
  /**
   * Data drift: each agent's training profile for this run (histograms on the run's shared bins, counts only), by
   * agent name, as its latest training task computed it. The fleet reference is their sum (drift/profile.ts).
   */
  driftProfiles?: Record<string, DriftProfileRecord>;
}

export interface DriftProfileRecord { round: number; at: string; profile: DataProfileCounts }

/** Written once by the statistics step (before round 1), read by every task and by `fedge run show`. */
export interface RunData {
  task: ResolvedTask;
  preprocessing: Preprocessing;
  /** The fleet's combined statistics per column (Gaussian-noised in a private run), over `n` training examples. */
  statistics: ColumnProfile[];
  n: number;
  /** Agents whose data took part, with the fingerprint of their dataset (lineage). */
  agents: { agentId: string; name: string; format: string; n: number; fingerprint: string }[];
  /** Agents left out of the run and why (e.g. a column that differs from the fleet's schema). */
  refused: { agentId: string; name: string; reason: string }[];
  /** Private runs: std of the Gaussian noise added to the statistics (one more step for the accountant). */
  statisticsNoiseStd?: number;
  preparedAt: string;
}

export interface PromotionState {
  /** The version all (non-canary) serving agents get; undefined while the first promotion is still a canary. */
  version?: number;
  /** The version promoted before `version` (what `fedge model rollback` returns to). */
  previous?: number;
  /** A rollout in progress: `version` went to these agents (ids, and names for people) only. */
  canary?: { version: number; fraction: number; agents: string[]; agentNames: string[]; auto?: CanaryAutoState };
  /** How the last self-healing canary ended, and why (fedge model show). */
  lastCanary?: { version: number; outcome: 'completed' | 'rolled-back'; reason: string; at: string };
  history: { action: 'promote' | 'canary' | 'rollback'; version: number; at: string; from?: number; fraction?: number; agents?: string[]; forced?: boolean; auto?: boolean; reason?: string }[];
}

/**
 * A self-healing canary (fedge model promote --auto, or the run config's promotion): every online serving agent sends
 * `fraction` of its requests to the canary version beside `stable` and reports health; the coordinator rolls back at
 * once when a threshold is crossed and completes the rollout at `deadline` otherwise.
 */
export interface CanaryAutoState {
  stable: number;
  windowMs: number;
  startedAt: string;
  /** When the rollout completes if nothing failed; a restarted coordinator re-arms its timer from here. */
  deadline: string;
  thresholds: { maxErrorRate: number; maxLatencyRatio: number; maxDrift: number; minAccuracyDelta?: number; minRequests: number };
}

/** The run config's promotion gate at the run's end (fedge run show): promoted through a canary, or why not. */
export interface PromotionGateRecord {
  at: string;
  passed: boolean;
  /** The run's best version by its task metric (undefined: none was evaluated). */
  version?: number;
  metric: string;
  value?: number;
  min: number;
  /** Why it failed, or what was started. */
  message: string;
}

export interface OpenRoundState {
  round: number;
  baseVersion: number;
  invitees: { name: string; index: number }[];
  accepted: { name: string; numExamples: number; weight: number; staleness: number; baseVersion: number; metrics: Record<string, number>; file: string; seconds: number }[];
}

export interface AgentRecord {
  id: string;
  name: string;
  status: 'online' | 'offline';
  backend: string;
  agentVersion: string;
  numExamples: number;
  labels: Record<string, string>;
  joinedAt: string;
  lastSeen: string;
  currentTask?: string;
  tasksCompleted: number;
  tasksFailed: number;
  /** The transport of its latest task channel (an agent may move between gRPC and MQTT across reconnects). */
  transport?: 'grpc' | 'mqtt';
  /** What the agent said of its data at its last join: format, training examples, columns, dataset fingerprint. */
  data?: { format: string; n: number; columns: number; fingerprint: string };
  /** Fingerprint of the enrolled key it joined with (IdentityRecord); absent: it joined with the shared token. */
  identity?: string;
  /** The global model version the agent serves (`--serve`) and its run, as it last reported; cleared by a new join until it reports again. */
  servedVersion?: number;
  servedRun?: string;
  /** Data drift the agent last reported (with --serve): its served inputs vs its own and the fleet's training data. In memory; a new join clears it. */
  drift?: DriftSection & { at: string };
  /**
   * sha256 (hex) of the agent_secret its first join returned: a rejoin with this agent's id must present the secret,
   * so a holder of the shared join token cannot take over a live agent's id (and session). Never listed.
   */
  secretSha256?: string;
}

/** An enrolled device (`fedge agent enroll`): its name is its identity; its key proves it at every join and upload. */
export interface IdentityRecord {
  name: string;
  /** SPKI PEM of the agent's ed25519 public key. */
  publicKey: string;
  /** sha256 of the raw key, first 16 hex digits (what `fedge agent list` shows). */
  fingerprint: string;
  enrolledAt: string;
  lastSeen?: string;
  /** Set by `fedge agent revoke`: from then on every join, task and upload of this identity is refused. */
  revokedAt?: string;
}

/** A pending enrollment: only the code's sha256 is kept, so the store never holds a usable code. */
export interface EnrollmentRecord {
  codeSha256: string;
  name: string;
  createdAt: string;
  expiresAt: string;
}

/** Participant rows a run save writes in the same transaction as the record (engine/run-context.ts). */
export interface ParticipantWrites {
  /** Finished rounds' whole lists: each replaces what the store held for that round (a round redone after a restart). */
  rounds: { round: number; participants: Participant[] }[];
  /** Notes appended to the reason of a participant of a round already written (what became of a late result). */
  notes: { round: number; agentId: string; note: string }[];
}

/** `fedge run participants`: filters and a page (offset, limit) of a run's participants in round, then invitation, order. */
export interface ParticipantQuery {
  round?: number;
  /** One outcome, or 'failed': every one but completed. */
  status?: ParticipantOutcome | 'failed';
  limit: number;
  offset: number;
}

export interface ParticipantPage {
  /** Rows matching the filters, over all pages. */
  total: number;
  participants: (Participant & { round: number })[];
}

export interface Store {
  createRun(run: RunRecord): Promise<void>;
  /**
   * `docOnly`: only the run's own fields (status, open round, strategy state) changed since its last save, not its
   * rounds or versions, so a store may skip re-serializing those. `participants`: rows written with it, atomically.
   */
  saveRun(run: RunRecord, docOnly?: boolean, participants?: ParticipantWrites): Promise<void>;
  listParticipants(runId: string, query: ParticipantQuery): Promise<ParticipantPage>;
  getRun(id: string): Promise<RunRecord | undefined>;
  listRuns(): Promise<RunRecord[]>;
  /** Stores a model by content; returns its sha256. Idempotent. */
  putModel(sha256: string, blob: ModelBlob): Promise<void>;
  getModel(sha256: string): Promise<ModelBlob | undefined>;
  /**
   * Whether any saved version record not marked `collected` (of any run), or any run's strategy state, names the
   * model: retention deletes a blob only when nothing does.
   */
  modelReferenced(sha256: string): Promise<boolean>;
  /** The weight bytes of a stored model, undefined when it is not stored (cheap: no read of the weights). */
  modelBytes(sha256: string): Promise<number | undefined>;
  /** Deletes a stored model; returns the weight bytes freed (0 when it was not stored). Idempotent. */
  deleteModel(sha256: string): Promise<number>;
  saveAgent(agent: AgentRecord): Promise<void>;
  /** Saves many agent records in one transaction (the registry batches its writes: one per join would be N fsyncs). */
  saveAgents(agents: readonly AgentRecord[]): Promise<void>;
  listAgents(): Promise<AgentRecord[]>;
  saveIdentity(identity: IdentityRecord): Promise<void>;
  listIdentities(): Promise<IdentityRecord[]>;
  saveEnrollment(e: EnrollmentRecord): Promise<void>;
  deleteEnrollment(codeSha256: string): Promise<void>;
  listEnrollments(): Promise<EnrollmentRecord[]>;
}

/** Whether `run` still needs the blob `sha256`: a version not collected, or its strategy state (moments, control variate). */
export function runReferences(run: Pick<RunRecord, 'versions' | 'serverOptState' | 'scaffoldState'>, sha256: string): boolean {
  return run.versions.some((v) => v.sha256 === sha256 && !v.collected) || run.serverOptState?.sha256 === sha256 || run.scaffoldState?.sha256 === sha256;
}
