/** zod schemas for every message that crosses the network, so bad input fails with the field's name. */
import { z } from 'zod';
import { DTYPES, MAX_TENSORS } from './tensor.js';
import { ValidationError } from './errors.js';
import { MAX_PROFILE_JSON } from './task.js';
import { signatureBytes } from './identity.js';

const id = z.string().min(1).max(128).regex(/^[A-Za-z0-9._:-]+$/, 'letters, digits and . _ : - only');
const int = z.number().int();
/** Bytes over gRPC, base64 over MQTT's JSON; anything else (or empty) is no signature, which verification refuses. */
// optional() first: over MQTT's JSON an unsigned message has no such key, and a transform to undefined on a required
// key fails ("expected nonoptional"), which refused every unsigned MQTT join and result.
const signature = z.unknown().optional().transform((v) => signatureBytes(v));

export const tensorSpecMsgSchema = z.object({
  name: z.string().min(1).max(512),
  dtype: z.enum(DTYPES, { message: `dtype must be one of ${DTYPES.join(', ')}` }),
  shape: z.array(int.nonnegative()).max(8),
});

export const joinRequestSchema = z.object({
  name: z.string().min(1, 'name is required').max(128),
  agentId: z.union([z.literal(''), id]),
  joinToken: z.string().max(1024),
  backend: z.string().max(64),
  agentVersion: z.string().max(64),
  numExamples: int.nonnegative().max(1e12),
  labels: z.record(z.string().max(128), z.string().max(1024)),
  dataProfileJson: z.string().max(MAX_PROFILE_JSON, `data_profile_json: larger than ${MAX_PROFILE_JSON} bytes`).default(""),
  // Per-device identity (identity.ts); absent or empty on the shared-token path.
  enrollCode: z.string().max(64).default(''),
  publicKey: z.string().max(1024).default(''),
  challengeNonce: z.string().max(64).default(''),
  challengeTimeUnixMs: int.nonnegative().default(0),
  signature: signature,
  agentSecret: z.string().max(128).default(''),
});

export const challengeRequestSchema = z.object({ name: z.string().min(1, 'name is required').max(128) });

export const tasksRequestSchema = z.object({ agentId: id, sessionToken: z.string().min(1).max(256) });

export const fetchModelRequestSchema = z.object({
  agentId: id,
  sessionToken: z.string().min(1).max(256),
  runId: id,
  modelVersion: int.nonnegative(),
  blobSha256: z.union([z.literal(''), z.string().regex(/^[0-9a-f]{64}$/, 'blob_sha256: 64 lowercase hex digits, or empty for a model version')]).default(''),
  haveVersion: int.nonnegative().default(0),
  haveSha256: z.union([z.literal(''), z.string().regex(/^[0-9a-f]{64}$/, 'have_sha256: 64 lowercase hex digits, or empty when the agent holds no version')]).default(''),
});

export const resultHeaderSchema = z.object({
  agentId: id,
  sessionToken: z.string().min(1).max(256),
  taskId: id,
  runId: id,
  round: int.nonnegative(),
  modelVersion: int.nonnegative(),
  // What an agent serves goes by the Report RPC (report/), no longer as a payload-less 'serving' result.
  kind: z.enum(['train', 'evaluate']),
  numExamples: int.nonnegative().max(1e12),
  tensors: z.array(tensorSpecMsgSchema).max(MAX_TENSORS),
  totalBytes: int.nonnegative(),
  encoding: z.string().max(64),
  metrics: z.record(z.string().max(64), z.number()),
  error: z.string().max(2048, 'error: at most 2048 characters').default(''),
  controlVariateDelta: z.boolean().default(false),
  secaggRejected: z.array(id).max(100_000).default([]),
  signature: signature,
});

export const modelHeaderSchema = z.object({
  runId: id,
  modelVersion: int.nonnegative(),
  topologyJson: z.string().min(2),
  tensors: z.array(tensorSpecMsgSchema).min(1).max(MAX_TENSORS),
  totalBytes: int.nonnegative(),
  sha256: z.string().regex(/^[0-9a-f]{64}$/, 'sha256 must be 64 lowercase hex digits'),
  encoding: z.string().max(200).default(''),
  baseVersion: int.nonnegative().default(0),
});

/** A path element (a record key is the peer's own text) or message clipped to `max` characters. */
const clip = (s: string, max: number): string => (s.length > max ? `${s.slice(0, max)}...(${s.length} chars)` : s);

/**
 * Formats the first zod issues as "path.to.field: message" for errors sent back to a peer or printed. Record keys in
 * a path are the peer's text: clipped, so an error stays short enough for an MQTT error frame (4096 characters) and
 * a gRPC status header whatever a peer sent (a 70,000-character label key made an error frame no agent could read).
 */
export function formatZodError(err: z.ZodError, root = ''): string {
  return err.issues
    .slice(0, 3)
    .map((i) => {
      const p = [root, ...i.path.map((k) => clip(String(k), 64))].filter(Boolean).join('.');
      return clip(p ? `${p}: ${i.message}` : i.message, 1000);
    })
    .join('; ');
}

/** Parses `value` with `schema`, throwing a ValidationError that names the field. */
export function parseOrThrow<T extends z.ZodType>(schema: T, value: unknown, root = ''): z.output<T> {
  const r = schema.safeParse(value);
  if (!r.success) throw new ValidationError(formatZodError(r.error, root), { cause: r.error });
  return r.data;
}

/**
 * `json`, the text of message field `field`, parsed and checked with `schema`; a ValidationError names the field and
 * says whether it was not JSON or where it did not match ("data_profile_json: columns.0.name: ..."), then `hint`.
 */
export function parseJsonField<T extends z.ZodType>(schema: T, json: string, field: string, hint = ''): z.output<T> {
  let raw: unknown;
  try {
    raw = JSON.parse(json);
  } catch (err) {
    throw new ValidationError(`${field}: not valid JSON (${(err as Error).message})`);
  }
  const r = schema.safeParse(raw);
  if (!r.success) throw new ValidationError(`${field}: ${formatZodError(r.error)}${hint}`);
  return r.data;
}

// Secure aggregation's stage request, task parameters and refusals (kept in their own module).
export * from './secagg-wire.js';
