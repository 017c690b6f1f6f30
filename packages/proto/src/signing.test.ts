import { describe, expect, it } from 'vitest';
import {
  generateSigningKeyPair,
  modelSigningMessage,
  parseSigningPublicKey,
  publicKeyPem,
  rawPublicKey,
  signModel,
  signatureFromJson,
  signatureToJson,
  signingKeyFingerprint,
  verifyModelSignature,
} from './signing.js';
import { createHash, generateKeyPairSync } from 'node:crypto';

const ref = { runId: 'run-1', version: 3, sha256: 'ab'.repeat(32) };

describe('model signatures', () => {
  const { privateKey, publicKey } = generateSigningKeyPair();

  it('round-trips: a signature of a ref verifies with the matching public key', () => {
    const sig = signModel(privateKey, ref);
    expect(sig.byteLength).toBe(64);
    expect(verifyModelSignature(publicKey, ref, sig)).toBe(true);
  });

  it('fails when the run, the version or the digest changes', () => {
    const sig = signModel(privateKey, ref);
    expect(verifyModelSignature(publicKey, { ...ref, runId: 'run-2' }, sig)).toBe(false);
    expect(verifyModelSignature(publicKey, { ...ref, version: 4 }, sig)).toBe(false);
    expect(verifyModelSignature(publicKey, { ...ref, sha256: 'cd'.repeat(32) }, sig)).toBe(false);
  });

  it('fails with another key, a tampered, truncated or missing signature', () => {
    const sig = signModel(privateKey, ref);
    expect(verifyModelSignature(generateSigningKeyPair().publicKey, ref, sig)).toBe(false);
    const bad = Buffer.from(sig);
    bad[10]! ^= 1;
    expect(verifyModelSignature(publicKey, ref, bad)).toBe(false);
    expect(verifyModelSignature(publicKey, ref, sig.subarray(0, 63))).toBe(false);
    expect(verifyModelSignature(publicKey, ref, undefined)).toBe(false);
    expect(verifyModelSignature(publicKey, ref, new Uint8Array(0))).toBe(false);
  });

  it('signs one canonical message that rejects ambiguous refs', () => {
    expect(modelSigningMessage(ref).toString()).toBe(`fedge-model-v1\nrun-1\n3\n${'ab'.repeat(32)}`);
    expect(() => modelSigningMessage({ ...ref, runId: 'a\nb' })).toThrow(/newline/);
    expect(() => modelSigningMessage({ ...ref, sha256: 'AB'.repeat(32) })).toThrow(/hex/);
    expect(() => modelSigningMessage({ ...ref, version: 1.5 })).toThrow(/integer/);
    // verify() never throws on such input: it is simply not a valid signature
    expect(verifyModelSignature(publicKey, { ...ref, runId: 'a\nb' }, signModel(privateKey, ref))).toBe(false);
  });

  it('keys round-trip through PEM; fingerprints are sha256 of the raw 32-byte key', () => {
    const parsed = parseSigningPublicKey(publicKeyPem(publicKey), 'test key');
    expect(verifyModelSignature(parsed, ref, signModel(privateKey, ref))).toBe(true);
    expect(rawPublicKey(publicKey).byteLength).toBe(32);
    expect(signingKeyFingerprint(parsed)).toBe(createHash('sha256').update(rawPublicKey(publicKey)).digest('hex').slice(0, 16));
    expect(signingKeyFingerprint(parsed)).not.toBe(signingKeyFingerprint(generateSigningKeyPair().publicKey));
  });

  it('refuses keys that are not ed25519 public keys, with E_SIGNING_KEY', () => {
    expect(() => parseSigningPublicKey('not a key', 'k')).toThrow(expect.objectContaining({ code: 'E_SIGNING_KEY' }));
    const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ type: 'spki', format: 'pem' }).toString();
    expect(() => parseSigningPublicKey(rsa, 'k')).toThrow(/rsa key/);
  });

  it('signatures survive the JSON envelopes of the MQTT transport', () => {
    const sig = signModel(privateKey, ref);
    const wire = JSON.parse(JSON.stringify({ modelSignature: signatureToJson(sig) })) as { modelSignature: unknown };
    const back = signatureFromJson(wire.modelSignature);
    expect(verifyModelSignature(publicKey, ref, back)).toBe(true);
    expect(signatureToJson(new Uint8Array(0))).toBeUndefined();
    expect(signatureFromJson(undefined)).toBeUndefined();
  });
});

