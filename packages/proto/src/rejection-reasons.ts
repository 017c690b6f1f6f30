/**
 * The one list of reasons a coordinator gives for refusing an uploaded result: SubmitReply.reason, the participant's
 * reason in the run record, fedge_rejected_updates_total{reason}. agent.proto's comment and the README list the same
 * names (rejection-reasons.test.ts checks both); RejectedUpdateError takes only these.
 */
export const REJECTION_REASONS = {
  malformed: 'the upload or its header does not parse (a field is missing, of the wrong type or out of range)',
  truncated: 'the upload ended before total_bytes arrived',
  oversized: 'more bytes than total_bytes, or a header announcing more than the model allows',
  bad_offset: 'a chunk does not start where the previous one ended',
  size_mismatch: 'total_bytes does not fit the model and the encoding',
  bad_encoding: "the encoding is not the run's compression codec",
  bad_index: 'a top-k record names an index outside the model',
  wrong_shape: "the tensor list differs from the model's in name or shape",
  wrong_dtype: "a tensor's dtype differs from the model's",
  non_finite: 'the update holds NaN or Infinity',
  non_finite_metric: 'a reported metric is NaN or Infinity',
  norm_exceeds_clip: "the update's L2 norm exceeds the clip norm of a private run",
  variate_mismatch: "a SCAFFOLD result's control variate part is missing, or present when the run has none",
  no_examples: 'a training result with num_examples below 1',
  unknown_agent: 'the agent id or session token is not valid (join again)',
  unknown_run: 'no active run has this run id',
  unknown_task: 'task_id is not the task sent to this agent',
  wrong_kind: "the result's kind (train, evaluate) is not the task's",
  wrong_model_version: 'the result was not computed from the model version the task named',
  stale_round: 'the round it answers is not open',
  too_stale: 'an async update more than async.maxStaleness versions behind',
  round_closed: 'the round closed while the upload was under way or waiting',
  late_discarded: 'a late result arrived when no round was open to take it',
  upload_closed: 'the upload was aborted before it was committed',
  duplicate: 'a result for this task was already recorded',
  agent_failed: 'the agent reported that it could not run the task (the message says why)',
  bad_signature: "an enrolled agent's result signature is missing or does not verify",
  revoked: "the agent's identity was revoked",
  secagg_refused: 'a masked input the secure-aggregation round cannot sum: the agent did not share keys in time, sent it twice, or a neighbor reported its share box as tampered',
  internal: 'the coordinator failed while taking the upload (its log says why)',
} as const;

export type RejectionReason = keyof typeof REJECTION_REASONS;

export const REJECTION_REASON_NAMES = Object.keys(REJECTION_REASONS) as RejectionReason[];
