import { describe, expect, it } from 'vitest';
import { generateSigningKeyPair, payloadSha256, publicKeyPem, signJoin, signUpdate, signingKeyFingerprint, type SignedUpdateRef } from '@fedge/proto';
import type { KeyObject } from 'node:crypto';
import { MemoryStore } from '../store/memory-store.js';
import { AgentRegistry } from './agent-registry.js';
import { IdentityRegistry, type JoinCredentials } from './identities.js';
import { IdentityGate } from './identity-gate.js';
import { DEFAULT_JOIN_LIMITS, RateLimiter } from './join-limits.js';

const device = (): { privateKey: KeyObject; publicKey: KeyObject; pem: string; fp: string } => {
  const k = generateSigningKeyPair();
  return { ...k, pem: publicKeyPem(k.publicKey), fp: signingKeyFingerprint(k.publicKey) };
};

/** A signed join of `name` with `key`, answering a fresh challenge (or `nonce`). */
function signed(ids: IdentityRegistry, name: string, key: ReturnType<typeof device>, extra: Partial<JoinCredentials> & { nonce?: string; timeMs?: number } = {}): JoinCredentials {
  const nonce = extra.nonce ?? ids.challenge(name).nonce;
  const timeMs = extra.timeMs ?? Date.now();
  const signature = signJoin(key.privateKey, { name, agentId: extra.agentId ?? '', nonce, timeMs, keyFingerprint: key.fp });
  return { name, agentId: '', enrollCode: '', publicKey: key.pem, challengeNonce: nonce, challengeTimeUnixMs: timeMs, signature, ...extra };
}

describe('IdentityRegistry', () => {
  it('enrolls with a one-time code and proof of the key, then authenticates by challenge only', async () => {
    const store = new MemoryStore();
    const ids = new IdentityRegistry(store);
    const k = device();
    const { code } = await ids.enroll('cam-07');
    expect(code).toMatch(/^fe1-[A-Za-z0-9_-]{32}$/);
    expect(JSON.stringify(await store.listEnrollments())).not.toContain(code); // only its hash is stored
    const rec = await ids.authenticate(signed(ids, 'cam-07', k, { enrollCode: code }));
    expect(rec.fingerprint).toBe(k.fp);
    expect((await ids.authenticate(signed(ids, 'cam-07', k))).name).toBe('cam-07');
    // The code is spent: another key cannot enroll with it.
    const thief = device();
    await expect(ids.authenticate(signed(ids, 'cam-07', thief, { enrollCode: code }))).rejects.toThrow(/enrolled with key/);
    // Identities survive a restart (a new registry on the same store).
    const again = new IdentityRegistry(store);
    expect(await again.restore()).toBe(1);
    expect((await again.authenticate(signed(again, 'cam-07', k))).fingerprint).toBe(k.fp);
  });

  it('refuses a replayed nonce, a forged signature, a nonce of another name, a skewed clock, an unknown name', async () => {
    const ids = new IdentityRegistry(new MemoryStore());
    const k = device();
    await ids.authenticate(signed(ids, 'a', k, { enrollCode: (await ids.enroll('a')).code }));
    const req = signed(ids, 'a', k);
    await ids.authenticate(req);
    await expect(ids.authenticate(req)).rejects.toMatchObject({ code: 'E_AUTH', message: expect.stringMatching(/already used/) });
    const forger = device();
    const forged = signed(ids, 'a', forger);
    await expect(ids.authenticate({ ...forged, publicKey: k.pem })).rejects.toThrow(/does not verify/);
    await expect(ids.authenticate(signed(ids, 'a', k, { nonce: ids.challenge('b').nonce }))).rejects.toThrow(/issued for "b"/);
    await expect(ids.authenticate(signed(ids, 'a', k, { timeMs: Date.now() - 10 * 60_000 }))).rejects.toThrow(/clock/);
    await expect(ids.authenticate(signed(ids, 'nobody', k))).rejects.toThrow(/not enrolled/);
    // A wrong code, even with a valid signature, enrolls nothing.
    await ids.enroll('c');
    await expect(ids.authenticate(signed(ids, 'c', device(), { enrollCode: `fe1-${'A'.repeat(32)}` }))).rejects.toThrow(/unknown or already used/);
  });

  it('refuses an expired code', async () => {
    const ids = new IdentityRegistry(new MemoryStore());
    const { code } = await ids.enroll('x', 1);
    await new Promise((r) => setTimeout(r, 5));
    await expect(ids.authenticate(signed(ids, 'x', device(), { enrollCode: code }))).rejects.toThrow(/expired/);
  });

  it('verifies update signatures: forged, altered or revoked ones fail', async () => {
    const ids = new IdentityRegistry(new MemoryStore());
    const k = device();
    await ids.authenticate(signed(ids, 'a', k, { enrollCode: (await ids.enroll('a')).code }));
    const u: SignedUpdateRef = { agentId: 'agent-1', taskId: 't', runId: 'run-1', round: 1, modelVersion: 0, kind: 'train', numExamples: 10, encoding: 'float32-delta', error: '', payloadSha256: payloadSha256(new Uint8Array(8)) };
    const sig = signUpdate(k.privateKey, u);
    expect(ids.verifyUpdate('a', u, sig)).toBe(true);
    expect(ids.verifyUpdate('a', { ...u, numExamples: 10_000 }, sig)).toBe(false);
    expect(ids.verifyUpdate('a', u, signUpdate(device().privateKey, u))).toBe(false);
    expect(ids.verifyUpdate('a', u, undefined)).toBe(false);
    await ids.revoke('a');
    expect(ids.verifyUpdate('a', u, sig)).toBe(false);
    await expect(ids.authenticate(signed(ids, 'a', k))).rejects.toMatchObject({ code: 'E_REVOKED' });
    await expect(ids.enroll('a')).resolves.toMatchObject({ name: 'a' }); // a revoked name can be enrolled again
  });
});

describe('IdentityGate', () => {
  const joinReq = (name: string, agentId = '') => ({ name, agentId, joinToken: 'tok', backend: 'cpu', agentVersion: 't', numExamples: 1, labels: {}, enrollCode: '', publicKey: '', challengeNonce: '', challengeTimeUnixMs: 0, signature: undefined });

  it('refuses the shared token under an enrolled name or id, and revocation cuts the session at once', async () => {
    const store = new MemoryStore();
    const reg = new AgentRegistry(store, 'tok');
    const gate = new IdentityGate(new IdentityRegistry(store), reg);
    const k = device();
    const { code } = await gate.identities.enroll('cam');
    const { agentId, sessionToken } = await gate.join({ ...joinReq('cam'), ...signed(gate.identities, 'cam', k, { enrollCode: code }) }, 'src');
    expect(reg.list()[0]!.identity).toBe(k.fp);
    await expect(gate.join(joinReq('cam'), 'src')).rejects.toThrow(/belongs to an enrolled device/);
    await expect(gate.join(joinReq('other', agentId), 'src')).rejects.toThrow(/belongs to an enrolled device/);
    const closed: string[] = [];
    reg.attach(agentId, { send: () => undefined, close: (r) => closed.push(r) });
    expect(reg.isOnline(agentId)).toBe(true);
    const r = await gate.revoke('cam');
    expect(r).toMatchObject({ status: 'revoked', sessionsClosed: 1 });
    expect(closed).toEqual(['identity revoked']);
    expect(reg.isOnline(agentId)).toBe(false);
    expect(() => reg.verify(agentId, sessionToken)).toThrow(/session_token/);
    await expect(gate.join({ ...joinReq('cam'), ...signed(gate.identities, 'cam', k) }, 'src')).rejects.toMatchObject({ code: 'E_REVOKED' });
  });

  it('caps shared-token registrations (reconnects still get in) and rate-limits joins per source', async () => {
    const store = new MemoryStore();
    const reg = new AgentRegistry(store, 'tok');
    const gate = new IdentityGate(new IdentityRegistry(store), reg, { ...DEFAULT_JOIN_LIMITS, maxTokenAgents: 2, sourceBurst: 4, sourceRate: 0.001 });
    const a = await gate.join(joinReq('a'), 's1');
    await gate.join(joinReq('b'), 's1');
    await expect(gate.join(joinReq('c'), 's1')).rejects.toMatchObject({ code: 'E_REGISTRY_FULL' });
    // A known agent reconnecting (with the agent_secret of its first join, which a rejoin by id needs).
    const again = { ...joinReq('a', a.agentId), agentSecret: a.agentSecret };
    await gate.join(again, 's1');
    await expect(gate.join(again, 's1')).rejects.toMatchObject({ code: 'E_RATE_LIMITED' });
    await gate.join(again, 's2'); // another source has its own bucket
  });
});

describe('IdentityGate per-identity limit', () => {
  it('counts only proven joins: forged joins under a device\'s name do not use up its allowance', async () => {
    const store = new MemoryStore();
    const reg = new AgentRegistry(store, 'tok');
    const gate = new IdentityGate(new IdentityRegistry(store), reg, { ...DEFAULT_JOIN_LIMITS, identityBurst: 2, identityRate: 0.001 });
    const k = device();
    const base = { joinToken: '', backend: 'cpu', agentVersion: 't', numExamples: 1, labels: {} };
    const first = await gate.join({ ...base, ...signed(gate.identities, 'cam', k, { enrollCode: (await gate.identities.enroll('cam')).code }) }, 's');
    for (let i = 0; i < 5; i++) await expect(gate.join({ ...base, ...signed(gate.identities, 'cam', device()) }, `attacker-${i}`)).rejects.toThrow(/enrolled with key/);
    await gate.join({ ...base, ...signed(gate.identities, 'cam', k, { agentId: first.agentId }) }, 's');
    await expect(gate.join({ ...base, ...signed(gate.identities, 'cam', k, { agentId: first.agentId }) }, 's')).rejects.toMatchObject({ code: 'E_RATE_LIMITED', message: expect.stringMatching(/^identity:/) });
  });
});

describe('RateLimiter', () => {
  it('allows a burst, then the rate', () => {
    let t = 0;
    const rl = new RateLimiter(2, 3, 'source', () => t);
    for (let i = 0; i < 3; i++) rl.take('k');
    expect(() => rl.take('k')).toThrow(/retry in 500 ms/);
    t += 500;
    rl.take('k');
    expect(() => rl.take('k')).toThrow(/E_RATE_LIMITED|joins at once/);
  });
});
