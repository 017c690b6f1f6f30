/** End to end: per-device identity (enroll, challenge join, signed updates, revoke, persistence) and join limits, over gRPC. */
import { mkdtempSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { generateSigningKeyPair, payloadSha256, publicKeyPem, signJoin, signUpdate, signedUpdateRef, signingKeyFingerprint, UPDATE_ENCODING, type JoinRequestMsg, type ResultHeaderMsg, type SubmitReplyMsg } from '@fedge/proto';
import { GrpcConnection } from '@fedge/edge-agent';
import { fedge, freePort, killAll, lastJson, startAgent, startCoordinator } from './harness.js';

afterAll(() => killAll());

const TOKEN = 'shared-s3cret';
const grpcCode = (p: Promise<unknown>): Promise<number | undefined> => p.then(() => undefined, (e: { grpcCode?: number }) => e.grpcCode);
const UNAUTHENTICATED = 16, PERMISSION_DENIED = 7, RESOURCE_EXHAUSTED = 8;

interface Identity { name: string; status: string; fingerprint?: string; lastSeen?: string; revokedAt?: string }

/** A device in this test process: its own key, a signed join, and a key it may sign updates with. */
async function device(address: string, name: string, code: string) {
  const key = generateSigningKeyPair();
  const conn = new GrpcConnection(address);
  const fingerprint = signingKeyFingerprint(key.publicKey);
  const signedJoin = async (agentId = ''): Promise<JoinRequestMsg> => {
    const { nonce } = await conn.challenge(name);
    const timeMs = Date.now();
    return {
      name, agentId, joinToken: '', backend: 'test', agentVersion: 'test', numExamples: 100, labels: {}, enrollCode: code, publicKey: publicKeyPem(key.publicKey),
      challengeNonce: nonce, challengeTimeUnixMs: timeMs, signature: signJoin(key.privateKey, { name, agentId, nonce, timeMs, keyFingerprint: fingerprint }),
    };
  };
  return { key, conn, signedJoin };
}

describe('per-device identity', () => {
  it('enroll -> key join -> signed updates train; forged and replayed signatures refused; revoke cuts off; identities survive a restart', async () => {
    const port = await freePort();
    const coord = await startCoordinator(['--listen', `127.0.0.1:${port}`, '--join-token', TOKEN]);
    const dataDir = (JSON.parse(await coord.waitFor(/opened durable store/)) as { dataDir: string }).dataDir;
    const admin = ['--coordinator', coord.address];
    const enroll = async (name: string): Promise<string> => {
      const r = await fedge(['agent', 'enroll', name, '--ttl', '10m', '--format', 'json', ...admin]);
      expect(r.code, r.stderr).toBe(0);
      return lastJson<{ code: string }>(r.stdout).code;
    };
    const [codeA, codeB, codeF] = [await enroll('cam-a'), await enroll('cam-b'), await enroll('cam-f')];
    expect(codeA).toMatch(/^fe1-/);

    // Two real agents enroll with their codes and no join token.
    const stateA = mkdtempSync(path.join(tmpdir(), 'fedge-id-a-')), stateB = mkdtempSync(path.join(tmpdir(), 'fedge-id-b-'));
    const common = (i: number): string[] => ['--partition', 'iid', '--num-partitions', '2', '--partition-id', String(i), '--seed', '5'];
    const a = startAgent(coord.address, ['--name', 'cam-a', '--state-dir', stateA, ...common(0)], { FEDGE_ENROLL_CODE: codeA });
    const b = startAgent(coord.address, ['--name', 'cam-b', '--state-dir', stateB, '--enroll-code', codeB, ...common(1)]);
    await Promise.all([a, b].map((p) => p.waitFor(/joined coordinator/)));
    expect(statSync(path.join(stateA, 'agent.key')).mode & 0o777).toBe(0o600);
    expect(a.output()).not.toContain(codeA); // the code is a secret
    expect(coord.output()).not.toContain(codeA);

    // The shared token cannot impersonate an enrolled device.
    const tokenConn = new GrpcConnection(coord.address);
    const asA = { name: 'cam-a', agentId: '', joinToken: TOKEN, backend: 'x', agentVersion: 'x', numExamples: 1, labels: {} };
    expect(await grpcCode(tokenConn.join(asA))).toBe(UNAUTHENTICATED);

    // A device of this test: enrolls, then its signed join is replayed (refused), then it joins for real.
    const f = await device(coord.address, 'cam-f', codeF);
    const req = await f.signedJoin();
    const joined = await f.conn.join(req);
    expect(await grpcCode(f.conn.join(req))).toBe(UNAUTHENTICATED); // the same nonce and signature again
    const forgedJoin = await f.signedJoin(joined.agentId);
    expect(await grpcCode(f.conn.join({ ...forgedJoin, signature: signJoin(generateSigningKeyPair().privateKey, { name: 'cam-f', agentId: joined.agentId, nonce: forgedJoin.challengeNonce!, timeMs: forgedJoin.challengeTimeUnixMs!, keyFingerprint: signingKeyFingerprint(f.key.publicKey) }) }))).toBe(UNAUTHENTICATED);
    const s = await f.conn.join(await f.signedJoin(joined.agentId)); // a fresh challenge: fine (the same agent id again)
    expect(s.agentId).toBe(joined.agentId);

    // It answers train tasks with updates signed by another key (a broker in the middle, or a stolen session token):
    // refused before folding. Evaluations it signs properly, so the run does not wait for them.
    const forger = generateSigningKeyPair();
    const replies: SubmitReplyMsg[] = [];
    const stream = f.conn.tasks(s.agentId, s.sessionToken);
    void (async () => {
      for await (const task of stream) {
        if (task.kind !== 'train' && task.kind !== 'evaluate') continue;
        const mh = task.kind === 'train' ? (await f.conn.fetchModel({ agentId: s.agentId, sessionToken: s.sessionToken, runId: task.runId, modelVersion: task.modelVersion })).header : undefined;
        const payload = new Uint8Array(mh?.totalBytes ?? 0);
        const h: ResultHeaderMsg = {
          agentId: s.agentId, sessionToken: s.sessionToken, taskId: task.taskId, runId: task.runId, round: task.round, modelVersion: task.modelVersion, kind: task.kind,
          numExamples: task.kind === 'train' ? 100 : 0, tensors: mh?.tensors ?? [], totalBytes: payload.byteLength, encoding: task.kind === 'train' ? UPDATE_ENCODING : '', metrics: task.kind === 'train' ? { train_loss: 1 } : {},
        };
        const ref = signedUpdateRef(h, payloadSha256(payload));
        const signer = task.kind === 'train' ? forger.privateKey : f.key.privateKey;
        replies.push(await f.conn.submit({ ...h, signature: signUpdate(signer, ref) }, payload));
      }
    })().catch(() => undefined);

    const res = await fedge(['run', 'start', ...admin, '--model', 'mnist-mlp', '--rounds', '2', '--min-agents', '3', '--fraction', '1', '--epochs', '1', '--deadline', '90', '--watch', '--format', 'json']);
    expect(res.code, res.stderr).toBe(0);
    const run = lastJson<{ status: string; metrics: { completed: number; seconds: number }[]; roundsDetail: { participants: { name: string; outcome: string; reason?: string; message?: string }[] }[] }>(res.stdout);
    expect(run.status).toBe('completed');
    for (const m of run.metrics) {
      expect(m.completed).toBe(2);
      expect(m.seconds).toBeLessThan(60); // the forged update ended cam-f's part at once, not on the deadline
    }
    for (const d of run.roundsDetail) {
      expect(d.participants.find((p) => p.name === 'cam-f')?.outcome).not.toBe('completed');
      for (const n of ['cam-a', 'cam-b']) expect(d.participants.find((p) => p.name === n)?.outcome).toBe('completed');
    }
    expect(replies.filter((r) => r.reason === 'bad_signature').length).toBeGreaterThanOrEqual(2);
    expect(replies.some((r) => r.accepted && r.reason === 'bad_signature')).toBe(false);

    // fedge agent list shows the identities; revoke closes cam-a's open session and refuses its next join.
    const listAgents = async (address = coord.address): Promise<{ name: string; status: string; identity?: string }[]> => JSON.parse((await fedge(['agent', 'list', '--format', 'json', '--coordinator', address])).stdout);
    const listIdentities = async (address = coord.address): Promise<Identity[]> => JSON.parse((await fedge(['agent', 'list', '--identities', '--format', 'json', '--coordinator', address])).stdout);
    const idA = (await listIdentities()).find((i) => i.name === 'cam-a')!;
    expect(idA).toMatchObject({ status: 'enrolled', fingerprint: expect.stringMatching(/^[0-9a-f]{16}$/), lastSeen: expect.any(String) });
    expect((await listAgents()).find((x) => x.name === 'cam-a')?.identity).toBe(idA.fingerprint);
    const table = await fedge(['agent', 'list', ...admin]);
    expect(table.stdout).toMatch(/Enrolled identities:[\s\S]*cam-a\s+enrolled\s+[0-9a-f]{16}/);
    const rev = await fedge(['agent', 'revoke', 'cam-a', '--format', 'json', ...admin]);
    expect(rev.code, rev.stderr).toBe(0);
    expect(lastJson<{ status: string; sessionsClosed: number }>(rev.stdout)).toMatchObject({ status: 'revoked', sessionsClosed: 1 });
    await a.waitFor(/task stream ended|session lost/, 10_000);
    // A revoked key's join ends with PERMISSION_DENIED (the test's device, revoked the same way).
    expect((await fedge(['agent', 'revoke', 'cam-f', ...admin])).stdout).toMatch(/revoked cam-f \(key [0-9a-f]{16}\); 1 open session\(s\) closed/);
    expect(await grpcCode(f.conn.join(await f.signedJoin(joined.agentId)))).toBe(PERMISSION_DENIED);
    expect(await a.waitFor(/revoked/, 20_000)).toMatch(/was revoked/);
    expect((await listAgents()).find((x) => x.name === 'cam-a')?.status).toBe('offline');
    expect((await listIdentities()).find((i) => i.name === 'cam-a')?.status).toBe('revoked');

    // A restart on the same data directory: cam-b comes back with its key alone, cam-a stays refused.
    coord.child.kill('SIGTERM');
    await coord.exited;
    const again = await startCoordinator(['--listen', `127.0.0.1:${port}`, '--join-token', TOKEN, '--data-dir', dataDir]);
    const revokedBefore = a.output().match(/was revoked/g)?.length ?? 0;
    await expect.poll(() => b.output().match(/"msg":"joined coordinator"/g)?.length ?? 0, { timeout: 30_000 }).toBeGreaterThanOrEqual(2);
    expect(b.output()).not.toMatch(/enrolling this device[\s\S]*enrolling this device/); // no code needed the second time
    expect((await listIdentities(again.address)).map((i) => `${i.name}:${i.status}`).sort()).toEqual(['cam-a:revoked', 'cam-b:enrolled', 'cam-f:revoked']);
    expect(await grpcCode(new GrpcConnection(again.address).join(asA))).toBe(UNAUTHENTICATED);
    // cam-a's own key is refused (revoked) after the restart too.
    await expect.poll(() => a.output().match(/was revoked/g)?.length ?? 0, { timeout: 30_000 }).toBeGreaterThan(revokedBefore);
    expect(a.output()).not.toMatch(/"msg":"joined coordinator"[\s\S]*"msg":"joined coordinator"/);
  }, 180_000);

  it('caps the shared token\'s registrations and rate-limits joins per source', async () => {
    const coord = await startCoordinator(['--max-token-agents', '2', '--join-burst', '5', '--join-rate', '0.01']);
    const conn = new GrpcConnection(coord.address);
    const j = (name: string, agentId = '', agentSecret = ''): Promise<{ agentId: string; agentSecret?: string }> => conn.join({ name, agentId, agentSecret, joinToken: '', backend: 'x', agentVersion: 'x', numExamples: 1, labels: {} });
    const first = await j('t1');
    const again = (): Promise<unknown> => j('t1', first.agentId, first.agentSecret);
    await j('t2');
    const full = await j('t3').catch((e: { grpcCode?: number; message: string }) => e);
    expect(full).toMatchObject({ grpcCode: RESOURCE_EXHAUSTED, message: expect.stringMatching(/registered 2 agents, its cap/) });
    await again(); // a known agent reconnecting is not a new registration
    await again();
    const limited = await again().catch((e: { grpcCode?: number; message: string }) => e);
    expect(limited).toMatchObject({ grpcCode: RESOURCE_EXHAUSTED, message: expect.stringMatching(/retry in \d+ ms/) });
    // Challenges draw on the same bucket: no way around the limit through them.
    expect(await grpcCode(conn.challenge('t9'))).toBe(RESOURCE_EXHAUSTED);
  }, 60_000);
});

describe('per-device identity over MQTT', () => {
  it('enrolled agents need no join token for the broker, train with signed updates, and a revoked one is cut off', async () => {
    const coord = await startCoordinator(['--mqtt-listen', '127.0.0.1:0', '--join-token', TOKEN]);
    const url = coord.mqttUrl!;
    const admin = ['--coordinator', coord.address];
    const code = async (name: string): Promise<string> => lastJson<{ code: string }>((await fedge(['agent', 'enroll', name, '--format', 'json', ...admin])).stdout).code;
    const common = (i: number): string[] => ['--partition', 'iid', '--num-partitions', '2', '--partition-id', String(i), '--seed', '7'];
    const m1 = startAgent(url, ['--name', 'mq-1', '--state-dir', mkdtempSync(path.join(tmpdir(), 'fedge-id-m1-')), '--enroll-code', await code('mq-1'), ...common(0)]);
    const m2 = startAgent(url, ['--name', 'mq-2', '--state-dir', mkdtempSync(path.join(tmpdir(), 'fedge-id-m2-')), '--enroll-code', await code('mq-2'), ...common(1)]);
    await Promise.all([m1, m2].map((p) => p.waitFor(/joined coordinator/, 30_000)));
    const res = await fedge(['run', 'start', ...admin, '--model', 'mnist-mlp', '--rounds', '2', '--min-agents', '2', '--epochs', '1', '--deadline', '90', '--watch', '--format', 'json']);
    expect(res.code, res.stderr).toBe(0);
    const run = lastJson<{ status: string; metrics: { completed: number }[] }>(res.stdout);
    expect(run.status).toBe('completed');
    expect(run.metrics.map((m) => m.completed)).toEqual([2, 2]);
    expect(coord.output()).not.toMatch(/bad_signature/);

    // A stranger with a made-up identity password is not admitted by the broker.
    const { MqttConnection } = await import('@fedge/edge-agent');
    const stranger = new MqttConnection(url, { password: () => `fedge-id1 mq-1 ${Date.now()} ${Buffer.alloc(64).toString('base64url')}` });
    await expect(stranger.join({ name: 'mq-1', agentId: '', joinToken: '', backend: 'x', agentVersion: 'x', numExamples: 1, labels: {} })).rejects.toThrow(/not authorized|bad username|refused|closed/i);
    stranger.close();

    const rev = lastJson<{ sessionsClosed: number }>((await fedge(['agent', 'revoke', 'mq-1', '--format', 'json', ...admin])).stdout);
    expect(rev.sessionsClosed).toBe(1);
    await m1.waitFor(/task stream ended|session lost/, 15_000);
    // Its reconnects are refused by the broker, which logs why; the other agent is unaffected.
    await coord.waitFor(/MQTT client refused: identity \\"mq-1\\" was revoked/, 30_000);
    expect(await m1.waitFor(/refused/, 30_000)).toMatch(/is it enrolled and not revoked/); // the agent is told what to check
    const list = JSON.parse((await fedge(['agent', 'list', '--format', 'json', ...admin])).stdout) as { name: string; status: string }[];
    expect(list.find((a) => a.name === 'mq-1')?.status).toBe('offline');
    expect(list.find((a) => a.name === 'mq-2')?.status).toBe('online');
  }, 120_000);

  it('refuses MQTT joins over the token cap or the rate limit with an error reply naming the reason', async () => {
    const coord = await startCoordinator(['--mqtt-listen', '127.0.0.1:0', '--max-token-agents', '1', '--join-burst', '3', '--join-rate', '0.01']);
    const { MqttConnection } = await import('@fedge/edge-agent');
    const conns: InstanceType<typeof MqttConnection>[] = [];
    const join = (name: string, agentId = '', agentSecret = ''): Promise<{ agentId: string; agentSecret?: string }> => {
      const c = new MqttConnection(coord.mqttUrl!);
      conns.push(c);
      return c.join({ name, agentId, agentSecret, joinToken: '', backend: 'x', agentVersion: 'x', numExamples: 1, labels: {} });
    };
    try {
      const first = await join('mq-cap-1');
      await expect(join('mq-cap-2')).rejects.toMatchObject({ code: 'E_REGISTRY_FULL', message: expect.stringMatching(/registered 1 agents, its cap/) });
      await join('mq-cap-1', first.agentId, first.agentSecret); // the known agent, reconnecting: third token of the burst
      await expect(join('mq-cap-1', first.agentId, first.agentSecret)).rejects.toMatchObject({ code: 'E_RATE_LIMITED', message: expect.stringMatching(/retry in \d+ ms/) });
    } finally {
      for (const c of conns) c.close();
    }
  }, 60_000);
});
