/** Ed25519 model signatures: the one canonical signed message, sign/verify helpers, key parsing and fingerprints. */
import { createHash, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';
import { FedgeError } from './errors.js';

/** A global model version as the coordinator vouches for it. */
export interface SignedModelRef { runId: string; version: number; sha256: string }

/**
 * Domain tag and version of the signed message: a signature over anything else fedge ever signs can never be replayed
 * as a model signature, and a future format gets a new tag instead of a silent ambiguity.
 */
export const MODEL_SIGNATURE_DOMAIN = 'fedge-model-v1';

/** An ed25519 signature is always 64 bytes; anything else is refused before verify() sees it. */
export const MODEL_SIGNATURE_BYTES = 64;

const SHA256_HEX = /^[0-9a-f]{64}$/;

/**
 * The bytes both ends sign and verify. Binds the run, the version and the model digest, so a valid signature for one
 * version cannot be moved to another version, run or model. Newline-separated: run ids cannot contain a newline
 * (checked), versions are integers and digests lowercase hex, so distinct refs never give the same bytes.
 */
export function modelSigningMessage(ref: SignedModelRef): Buffer {
  if (ref.runId.includes('\n')) throw new FedgeError('E_SIGNATURE', `run id ${JSON.stringify(ref.runId)} contains a newline`);
  if (!Number.isSafeInteger(ref.version) || ref.version < 0) throw new FedgeError('E_SIGNATURE', `model version ${ref.version} is not a non-negative integer`);
  if (!SHA256_HEX.test(ref.sha256)) throw new FedgeError('E_SIGNATURE', `model sha256 "${ref.sha256.slice(0, 80)}" is not 64 lowercase hex digits`);
  return Buffer.from(`${MODEL_SIGNATURE_DOMAIN}\n${ref.runId}\n${ref.version}\n${ref.sha256}`, 'utf8');
}

/** Signs a model ref with the coordinator's ed25519 private key (64-byte signature). */
export function signModel(privateKey: KeyObject, ref: SignedModelRef): Buffer {
  return sign(null, modelSigningMessage(ref), privateKey);
}

/** True only if `signature` is a valid ed25519 signature of exactly this ref by `publicKey`. Never throws on bad input. */
export function verifyModelSignature(publicKey: KeyObject, ref: SignedModelRef, signature: Uint8Array | undefined): boolean {
  if (!signature || signature.byteLength !== MODEL_SIGNATURE_BYTES) return false;
  try {
    return verify(null, modelSigningMessage(ref), publicKey, signature);
  } catch {
    return false;
  }
}

/** A fresh ed25519 key pair (node:crypto; keys interoperate with any RFC 8032 implementation). */
export function generateSigningKeyPair(): { privateKey: KeyObject; publicKey: KeyObject } {
  return generateKeyPairSync('ed25519');
}

/** SPKI PEM of a public key: what `fedge model key` prints and `fedge-agent --coordinator-key` reads. */
export function publicKeyPem(publicKey: KeyObject): string {
  return publicKey.export({ type: 'spki', format: 'pem' }).toString();
}

/** Parses an ed25519 public key (SPKI PEM); anything else fails with E_SIGNING_KEY naming `what`. */
export function parseSigningPublicKey(pem: string, what: string): KeyObject {
  let key: KeyObject;
  try {
    key = createPublicKey(pem);
  } catch (err) {
    throw new FedgeError('E_SIGNING_KEY', `${what} is not a PEM public key: ${(err as Error).message}`, { cause: err });
  }
  if (key.asymmetricKeyType !== 'ed25519') throw new FedgeError('E_SIGNING_KEY', `${what} is a ${key.asymmetricKeyType ?? 'unknown'} key; model signing keys are ed25519`);
  return key;
}

/** The 32 raw bytes of an ed25519 public key (what other ed25519 libraries call the public key). */
export function rawPublicKey(publicKey: KeyObject): Buffer {
  const { x } = publicKey.export({ format: 'jwk' });
  return Buffer.from(x!, 'base64url');
}

/** Short, stable identity of a signing key for logs and operators: sha256 of the raw key, first 16 hex digits. */
export function signingKeyFingerprint(publicKey: KeyObject): string {
  return createHash('sha256').update(rawPublicKey(publicKey)).digest('hex').slice(0, 16);
}

/**
 * Task signatures over MQTT: envelopes are JSON, where a Buffer would become {"type":"Buffer","data":[...]} and a
 * Uint8Array an index map, so the signature travels as base64 and is turned back into bytes on arrival.
 */
export function signatureToJson(signature: Uint8Array | undefined): string | undefined {
  return signature && signature.byteLength > 0 ? Buffer.from(signature.buffer, signature.byteOffset, signature.byteLength).toString('base64') : undefined;
}

/** The inverse of signatureToJson; a missing or non-string value is no signature (verification then fails). */
export function signatureFromJson(value: unknown): Buffer | undefined {
  return typeof value === 'string' && value.length > 0 ? Buffer.from(value, 'base64') : undefined;
}
