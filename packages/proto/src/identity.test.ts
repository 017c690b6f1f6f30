import { describe, expect, it } from 'vitest';
import { generateSigningKeyPair, signingKeyFingerprint } from './signing.js';
import { joinSigningMessage, payloadSha256, signJoin, signUpdate, signatureBytes, signedUpdateRef, verifyJoin, verifyUpdate, type JoinProof, type SignedUpdateRef } from './identity.js';

const { privateKey, publicKey } = generateSigningKeyPair();
const other = generateSigningKeyPair();
const proof: JoinProof = { name: 'cam-07', agentId: '', nonce: 'n0nce', timeMs: 1_700_000_000_000, keyFingerprint: signingKeyFingerprint(publicKey) };
const update: SignedUpdateRef = {
  agentId: 'agent-1', taskId: 't-1', runId: 'run-1', round: 3, modelVersion: 2, kind: 'train', numExamples: 600, encoding: 'float32-delta', error: '',
  payloadSha256: payloadSha256(new Uint8Array([1, 2, 3])),
};

describe('join proofs', () => {
  it('verify with the signing key only, and only for the exact fields signed', () => {
    const sig = signJoin(privateKey, proof);
    expect(verifyJoin(publicKey, proof, sig)).toBe(true);
    expect(verifyJoin(other.publicKey, proof, sig)).toBe(false);
    for (const changed of [{ name: 'cam-08' }, { agentId: 'agent-x' }, { nonce: 'other' }, { timeMs: proof.timeMs + 1 }, { keyFingerprint: '0'.repeat(16) }])
      expect(verifyJoin(publicKey, { ...proof, ...changed }, sig), JSON.stringify(changed)).toBe(false);
  });

  it('refuse bad signatures without throwing, and fields that could be ambiguous', () => {
    expect(verifyJoin(publicKey, proof, undefined)).toBe(false);
    expect(verifyJoin(publicKey, proof, new Uint8Array(64))).toBe(false);
    expect(verifyJoin(publicKey, proof, new Uint8Array(63))).toBe(false);
    expect(() => joinSigningMessage({ ...proof, name: 'a\nb' })).toThrow(/newline/);
    expect(verifyJoin(publicKey, { ...proof, name: 'a\nb' }, signJoin(privateKey, proof))).toBe(false);
  });
});

describe('update signatures', () => {
  it('bind every field and the payload digest', () => {
    const sig = signUpdate(privateKey, update);
    expect(verifyUpdate(publicKey, update, sig)).toBe(true);
    expect(verifyUpdate(other.publicKey, update, sig)).toBe(false);
    for (const changed of [{ round: 4 }, { modelVersion: 1 }, { runId: 'run-2' }, { taskId: 't-2' }, { numExamples: 6000 }, { encoding: 'int8-delta' }, { kind: 'evaluate' }, { error: 'x' }, { agentId: 'agent-2' }, { payloadSha256: payloadSha256(new Uint8Array([1, 2, 4])) }])
      expect(verifyUpdate(publicKey, { ...update, ...changed }, sig), JSON.stringify(changed)).toBe(false);
  });

  it('cover the header\'s tensors, metrics and control-variate flag through signedUpdateRef', () => {
    const h = { ...update, tensors: [{ name: 'w', dtype: 'float32', shape: [3, 2] }], metrics: { train_loss: 0.5, train_accuracy: 0.9 }, controlVariateDelta: false };
    const digest = update.payloadSha256;
    const sig = signUpdate(privateKey, signedUpdateRef(h, digest));
    expect(verifyUpdate(publicKey, signedUpdateRef({ ...h, metrics: { train_accuracy: 0.9, train_loss: 0.5 } }, digest), sig)).toBe(true); // key order is not content
    for (const changed of [{ metrics: { train_loss: 0.1, train_accuracy: 0.9 } }, { tensors: [{ name: 'w', dtype: 'float32', shape: [2, 3] }] }, { controlVariateDelta: true }])
      expect(verifyUpdate(publicKey, signedUpdateRef({ ...h, ...changed }, digest), sig), JSON.stringify(changed)).toBe(false);
  });

  it('a join proof is never a valid update signature (domain separation)', () => {
    expect(joinSigningMessage(proof).toString()).toMatch(/^fedge-join-v1\n/);
    expect(verifyUpdate(publicKey, update, signJoin(privateKey, proof))).toBe(false);
  });
});

describe('signatureBytes', () => {
  it('takes bytes (gRPC) or base64 (MQTT), and nothing else', () => {
    const sig = signUpdate(privateKey, update);
    expect(signatureBytes(sig)?.equals(sig)).toBe(true);
    expect(signatureBytes(sig.toString('base64'))?.equals(sig)).toBe(true);
    expect(signatureBytes(Buffer.alloc(0))).toBeUndefined();
    expect(signatureBytes('')).toBeUndefined();
    expect(signatureBytes({ type: 'Buffer', data: [1] })).toBeUndefined();
    expect(signatureBytes('x'.repeat(1000))).toBeUndefined();
  });
});
