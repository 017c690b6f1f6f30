/** Secure aggregation on the wire: the stage request both transports carry, the task's secagg parameters, refusals. */
import { z } from 'zod';

/** The encoding of a masked input (SubmitResult): uint32 little-endian ring elements, [masked weight × update | masked weight]. */
export const SECAGG_ENCODING = 'secagg-masked';

/**
 * Stages an agent sends by the SecAgg request (the masked input goes by SubmitResult). "survivors" carries nothing:
 * its reply, once the masked-input stage has closed, names the agents whose masked inputs are in the sum. "report"
 * ({ rejected }) names neighbors whose share box did not open, as soon as the agent opened them: the coordinator drops
 * those senders before their masked input can arrive (the masked input repeats the list, for older agents).
 */
export const SECAGG_STAGES = ['advertise', 'share', 'survivors', 'unmask', 'report'] as const;
export type SecAggStage = (typeof SECAGG_STAGES)[number];

/** Why a stage message is refused (SecAggReply.reason). */
export const SECAGG_REFUSALS = {
  unknown_task: 'the task is not a secure-aggregation task of this agent in the open round',
  stage_closed: 'the stage is over (its deadline passed or the round moved on); the agent counts as dropped from here on',
  malformed: 'the stage message does not match its schema',
  round_failed: 'the round failed (fewer survivors than the threshold); nothing more is needed from the agent',
  duplicate: 'the agent already sent this stage',
  out_of_order: 'an earlier stage of this agent is missing',
} as const;
export type SecAggRefusal = keyof typeof SECAGG_REFUSALS;

const id = z.string().min(1).max(128).regex(/^[A-Za-z0-9._:-]+$/, 'letters, digits and . _ : - only');

/** Largest stage message: share stage of an agent with many neighbors (each share ciphertext is ~150 bytes as base64). */
export const SECAGG_MAX_PAYLOAD_CHARS = 4 << 20;

export const secaggRequestSchema = z.object({
  agentId: id,
  sessionToken: z.string().min(1).max(256),
  runId: id,
  taskId: id,
  round: z.number().int().nonnegative(),
  stage: z.enum(SECAGG_STAGES, { message: `stage: use one of ${SECAGG_STAGES.join(', ')}` }),
  payloadJson: z.string().max(SECAGG_MAX_PAYLOAD_CHARS, `payload_json: larger than ${SECAGG_MAX_PAYLOAD_CHARS} characters`).default(''),
});

export const secaggReplySchema = z.object({
  accepted: z.boolean(),
  reason: z.string().max(64).default(''),
  message: z.string().max(4096).default(''),
  payloadJson: z.string().max(64 << 20).default(''),
});

/**
 * What a train task of a secagg round tells the agent (TrainConfig.secagg_json): the round's SecAggParams and the stage
 * deadlines (coordinator clock, unix ms). An agent's stage calls wait at most until then (plus a margin for the reply).
 */
export const secaggTaskSchema = z.object({
  /** Agents in the round's cohort (the quantization grid depends on it). */
  nAgents: z.number().int().min(2).max(1_000_000),
  /** Survivors needed to unmask (Shamir threshold t). */
  threshold: z.number().int().min(2).max(1_000_000),
  /** Neighbors per agent on the round's graph (SecAgg+); n - 1: every agent is every agent's neighbor. */
  neighbors: z.number().int().min(1).max(1_000_000),
  /** Ring Z_{2^bits} of the masked values. */
  bits: z.number().int().min(1).max(32),
  /** Weights (example counts) above this are capped: the sum of weights must fit the ring too. */
  maxWeight: z.number().positive().max(1e12),
  /** Every coordinate of the update is clipped to [-clipRange, clipRange] before quantization. */
  clipRange: z.number().positive().max(1e9),
  /** A fixed grid 0..levels per agent (int8 mode: 255; bits is then the smallest ring for nAgents of them). */
  levels: z.number().int().min(1).max(2 ** 31).optional(),
  advertiseBy: z.number().int().nonnegative(),
  shareBy: z.number().int().nonnegative(),
  /** The round's deadline: the masked input must be in by then. */
  maskedInputBy: z.number().int().nonnegative(),
  /** The unmask stage's length once the masked-input stage closes. */
  unmaskSeconds: z.number().positive().max(3600),
});
export type SecAggTask = z.output<typeof secaggTaskSchema>;
