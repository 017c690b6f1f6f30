import { describe, expect, it } from 'vitest';
import { generateSigningKeyPair, publicKeyPem, signModel, type TaskMsg } from '@fedge/proto';
import { ModelTrust } from './model-trust.js';

const coord = generateSigningKeyPair();
const other = generateSigningKeyPair();
const task = (signer = coord.privateKey, over: Partial<TaskMsg> = {}): TaskMsg => {
  const t: TaskMsg = { taskId: 't', runId: 'run-1', round: 1, modelVersion: 3, kind: 'train', modelSha256: 'aa'.repeat(32), modelBytes: 1, config: { epochs: 1, batchSize: 1, learningRate: 0.1, seed: 1 }, deadlineUnixMs: 0, ...over };
  return { ...t, modelSignature: signModel(signer, { runId: t.runId, version: t.modelVersion, sha256: t.modelSha256 }) };
};

describe('ModelTrust', () => {
  it('trust on first use: pins the first join key, accepts its models, refuses a later different key', () => {
    const t = new ModelTrust();
    t.check(task(other.privateKey)); // no key yet: sha256 only
    t.onJoin(publicKeyPem(coord.publicKey));
    expect(() => t.check(task())).not.toThrow();
    expect(() => t.check(task(other.privateKey))).toThrow(/run run-1 version 3.*signature/);
    t.onJoin(publicKeyPem(coord.publicKey)); // same key on reconnect
    expect(() => t.onJoin(publicKeyPem(other.publicKey))).toThrow(expect.objectContaining({ code: 'E_SIGNATURE', message: expect.stringContaining('changed') }));
    expect(() => t.onJoin('')).toThrow(/no model signing key/);
  });

  it('a signature moved to another version or digest, or a missing one, is refused', () => {
    const t = new ModelTrust(coord.publicKey);
    const good = task();
    expect(() => t.check({ ...good, modelVersion: 4 })).toThrow(/version 4/);
    expect(() => t.check({ ...good, modelSha256: 'bb'.repeat(32) })).toThrow(/signature/);
    const { modelSignature: _drop, ...unsigned } = good;
    expect(() => t.check(unsigned)).toThrow(/not signed/);
  });

  it('--coordinator-key wins over the join reply', () => {
    const t = new ModelTrust(other.publicKey);
    t.onJoin(publicKeyPem(coord.publicKey)); // logged, not pinned
    expect(() => t.check(task())).toThrow(/signature does not verify/);
    expect(() => t.check(task(other.privateKey))).not.toThrow();
  });
});
