/** Per-device identity: the bytes an enrolled agent signs to join and to vouch for an update, and their checks. */
import { createHash, sign, verify, type KeyObject } from 'node:crypto';
import { FedgeError } from './errors.js';

/**
 * Domain tags: a join proof, an update signature and a model signature (signing.ts) are different messages even when
 * their fields coincide, so one can never be replayed as another.
 */
export const JOIN_SIGNATURE_DOMAIN = 'fedge-join-v1';
export const UPDATE_SIGNATURE_DOMAIN = 'fedge-update-v1';
export const AGENT_SIGNATURE_BYTES = 64;

/** How long a challenge nonce may wait for its join, and how far an agent's clock may be from the coordinator's. */
export const CHALLENGE_TTL_MS = 60_000;
export const JOIN_CLOCK_SKEW_MS = 5 * 60_000;

/** Enrollment codes: `fe1-` and 32 base64url characters (24 random bytes). */
export const ENROLL_CODE = /^fe1-[A-Za-z0-9_-]{32}$/;

/** What an agent proves at join: it holds the key, now, for this name (and id), answering this nonce. */
export interface JoinProof {
  name: string;
  agentId: string;
  nonce: string;
  timeMs: number;
  /** agentKeyFingerprint of the key that signs: binds the proof to the key the coordinator checks it with. */
  keyFingerprint: string;
}

/** The fields of a result header that name what an update is and what it claims (both types below take them). */
interface UpdateIdentity {
  agentId: string;
  taskId: string;
  runId: string;
  round: number;
  /** The global version the update was trained from (its base). */
  modelVersion: number;
  kind: string;
  numExamples: number;
  encoding: string;
}

/** What an agent vouches for when it submits a result. */
export interface SignedUpdateRef extends UpdateIdentity {
  /** Non-empty for a task the agent could not run. */
  error: string;
  /** sha256 (hex) of the payload bytes exactly as sent. */
  payloadSha256: string;
  /** updateExtrasSha256 of the header's tensors, metrics and control-variate flag; absent: those are not covered. */
  extrasSha256?: string;
}

/** The header fields an update signature covers besides the payload (what ResultHeaderMsg carries). */
export interface UpdateHeaderFields extends UpdateIdentity {
  error?: string | undefined;
  tensors?: readonly { name: string; dtype: string; shape: readonly number[] }[] | undefined;
  metrics?: Readonly<Record<string, number>> | undefined;
  controlVariateDelta?: boolean | undefined;
}

/**
 * sha256 of a canonical JSON of how the payload is read (tensor names, dtypes, shapes; the control-variate flag) and
 * what the agent reports with it (metrics, keys sorted): an altered metric or tensor layout breaks the signature.
 */
export function updateExtrasSha256(h: UpdateHeaderFields): string {
  const metrics = Object.entries(h.metrics ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const tensors = (h.tensors ?? []).map((t) => [t.name, t.dtype, t.shape.map(Number)]);
  return createHash('sha256').update(JSON.stringify([tensors, metrics, !!h.controlVariateDelta]), 'utf8').digest('hex');
}

/** What an update signature covers, from a result header and its payload's digest: one function for both ends. */
export function signedUpdateRef(h: UpdateHeaderFields, payloadDigest: string): SignedUpdateRef {
  return {
    agentId: h.agentId, taskId: h.taskId, runId: h.runId, round: h.round, modelVersion: h.modelVersion, kind: h.kind, numExamples: h.numExamples,
    encoding: h.encoding, error: h.error ?? '', payloadSha256: payloadDigest, extrasSha256: updateExtrasSha256(h),
  };
}

const noNewline = (what: string, v: string): string => {
  if (v.includes('\n')) throw new FedgeError('E_SIGNATURE', `${what} ${JSON.stringify(v.slice(0, 80))} contains a newline`);
  return v;
};
const int = (what: string, v: number): number => {
  if (!Number.isSafeInteger(v) || v < 0) throw new FedgeError('E_SIGNATURE', `${what} ${v} is not a non-negative integer`);
  return v;
};

/** Newline-separated fields (none may hold a newline), so distinct proofs never give the same bytes. */
export function joinSigningMessage(p: JoinProof): Buffer {
  return Buffer.from(
    [JOIN_SIGNATURE_DOMAIN, noNewline('name', p.name), noNewline('agent_id', p.agentId), noNewline('nonce', p.nonce), int('challenge time', p.timeMs), noNewline('key fingerprint', p.keyFingerprint)].join('\n'),
    'utf8',
  );
}

/**
 * Binds everything the coordinator folds or records: which agent, task, run, round and base version, the weight it
 * claims (num_examples), how to decode it and the payload digest. The error text is hashed so it cannot break lines.
 */
export function updateSigningMessage(u: SignedUpdateRef): Buffer {
  if (!/^[0-9a-f]{64}$/.test(u.payloadSha256)) throw new FedgeError('E_SIGNATURE', 'payload sha256 is not 64 lowercase hex digits');
  const errorDigest = createHash('sha256').update(u.error, 'utf8').digest('hex');
  return Buffer.from(
    [
      UPDATE_SIGNATURE_DOMAIN, noNewline('agent_id', u.agentId), noNewline('task_id', u.taskId), noNewline('run_id', u.runId), int('round', u.round),
      int('model_version', u.modelVersion), noNewline('kind', u.kind), int('num_examples', u.numExamples), noNewline('encoding', u.encoding), errorDigest, u.payloadSha256,
      ...(u.extrasSha256 !== undefined ? [noNewline('extras', u.extrasSha256)] : []),
    ].join('\n'),
    'utf8',
  );
}

export function signJoin(privateKey: KeyObject, p: JoinProof): Buffer {
  return sign(null, joinSigningMessage(p), privateKey);
}

export function signUpdate(privateKey: KeyObject, u: SignedUpdateRef): Buffer {
  return sign(null, updateSigningMessage(u), privateKey);
}

/** node:crypto's ed25519 (OpenSSL): ~45x tweetnacl's verify rate (bench/identity-verify.mjs). Never throws on bad input. */
function verifyMessage(publicKey: KeyObject, message: () => Buffer, signature: Uint8Array | undefined): boolean {
  if (!signature || signature.byteLength !== AGENT_SIGNATURE_BYTES) return false;
  try {
    return verify(null, message(), publicKey, signature);
  } catch {
    return false;
  }
}

export function verifyJoin(publicKey: KeyObject, p: JoinProof, signature: Uint8Array | undefined): boolean {
  return verifyMessage(publicKey, () => joinSigningMessage(p), signature);
}

export function verifyUpdate(publicKey: KeyObject, u: SignedUpdateRef, signature: Uint8Array | undefined): boolean {
  return verifyMessage(publicKey, () => updateSigningMessage(u), signature);
}

/** sha256 hex of a payload as sent (what an update signature covers). */
export function payloadSha256(payload: Uint8Array): string {
  return createHash('sha256').update(payload).digest('hex');
}

/** Signature bytes from the network: a Buffer (gRPC), base64 text (MQTT's JSON envelopes), or nothing. */
export function signatureBytes(value: unknown): Buffer | undefined {
  if (value instanceof Uint8Array) return value.byteLength ? Buffer.from(value.buffer, value.byteOffset, value.byteLength) : undefined;
  if (typeof value === 'string' && value.length > 0 && value.length <= 256) return Buffer.from(value, 'base64');
  return undefined;
}

/**
 * MQTT password of an enrolled agent for a broker that otherwise wants the shared join token: a signature binding this
 * connection's client id, the name and the time, so a password seen on the wire is useless for another connection.
 * `fedge-id1 NAME TIME SIGNATURE` (base64url); the enrolling agent's is `fedge-enroll1 NAME CODE`.
 */
export const MQTT_IDENTITY_DOMAIN = 'fedge-mqtt-v1';

export function mqttIdentityMessage(clientId: string, name: string, timeMs: number): Buffer {
  return Buffer.from([MQTT_IDENTITY_DOMAIN, noNewline('client id', clientId), noNewline('name', name), int('time', timeMs)].join('\n'), 'utf8');
}

export function mqttIdentityPassword(privateKey: KeyObject, clientId: string, name: string): string {
  const timeMs = Date.now();
  return `fedge-id1 ${encodeURIComponent(name)} ${timeMs} ${sign(null, mqttIdentityMessage(clientId, name, timeMs), privateKey).toString('base64url')}`;
}

export function mqttEnrollPassword(name: string, code: string): string {
  return `fedge-enroll1 ${encodeURIComponent(name)} ${code}`;
}

export type MqttIdentityCredential =
  | { kind: 'identity'; name: string; timeMs: number; signature: Buffer }
  | { kind: 'enroll'; name: string; code: string };

/** Parses an MQTT password of either form; undefined for anything else (a join token, say). */
export function parseMqttIdentityPassword(password: string): MqttIdentityCredential | undefined {
  const p = password.split(' ');
  try {
    if (p.length === 4 && p[0] === 'fedge-id1' && /^\d{1,15}$/.test(p[2]!)) return { kind: 'identity', name: decodeURIComponent(p[1]!), timeMs: Number(p[2]), signature: Buffer.from(p[3]!, 'base64url') };
    if (p.length === 3 && p[0] === 'fedge-enroll1' && ENROLL_CODE.test(p[2]!)) return { kind: 'enroll', name: decodeURIComponent(p[1]!), code: p[2]! };
  } catch {
    return undefined; // a malformed %-escape
  }
  return undefined;
}

export function verifyMqttIdentity(publicKey: KeyObject, clientId: string, c: { name: string; timeMs: number; signature: Buffer }): boolean {
  return verifyMessage(publicKey, () => mqttIdentityMessage(clientId, c.name, c.timeMs), c.signature);
}
