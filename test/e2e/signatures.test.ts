/** End to end: agents check the coordinator's ed25519 model signatures (--coordinator-key, or trust on first use). */
import { createPublicKey, generateKeyPairSync, verify } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { fedge, freePort, killAll, lastJson, startAgent, startCoordinator } from './harness.js';

interface RunJson {
  id: string;
  status: string;
  metrics: { round: number; status: string; completed: number; seconds: number }[];
  roundsDetail: { round: number; participants: { name: string; outcome: string; reason?: string }[] }[];
}

afterAll(() => killAll());

describe('signed models', () => {
  it('agents with the right key train, an agent with another key refuses every model and is dropped at once', async () => {
    const coord = await startCoordinator();
    const dataDir = (JSON.parse(await coord.waitFor(/opened durable store/)) as { dataDir: string }).dataDir;
    const fingerprint = /model signing key ([0-9a-f]{16})/.exec(await coord.waitFor(/model signing key/))![1]!;

    // The operator's path: fedge model key prints the public key to copy to devices.
    const keyOut = await fedge(['model', 'key', '--data-dir', dataDir]);
    expect(keyOut.code, keyOut.stderr).toBe(0);
    expect(keyOut.stdout).toMatch(/^-----BEGIN PUBLIC KEY-----/);
    const tmp = mkdtempSync(path.join(tmpdir(), 'fedge-sig-'));
    const right = path.join(tmp, 'right.pub'), wrong = path.join(tmp, 'wrong.pub');
    writeFileSync(right, keyOut.stdout);
    writeFileSync(wrong, generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'pem' }));

    const common = (i: number): string[] => ['--partition', 'iid', '--num-partitions', '3', '--partition-id', String(i), '--seed', '5'];
    const good = startAgent(coord.address, ['--name', 'sig-good', '--coordinator-key', right, ...common(0)]);
    const tofu = startAgent(coord.address, ['--name', 'sig-tofu', ...common(1)]);
    const bad = startAgent(coord.address, ['--name', 'sig-bad', ...common(2)], { FEDGE_COORDINATOR_KEY: wrong });
    await Promise.all([good, tofu, bad].map((a) => a.waitFor(/joined coordinator/)));
    expect(await tofu.waitFor(/pinned the coordinator's model signing key/)).toContain(fingerprint);

    // All three invited (fraction 1), two results are enough: the refusing agent must not hold the rounds up.
    const res = await fedge(['run', 'start', '--coordinator', coord.address, '--model', 'mnist-mlp', '--rounds', '2', '--min-agents', '2',
      '--fraction', '1', '--epochs', '1', '--deadline', '120', '--watch', '--format', 'json']);
    expect(res.code, res.stderr).toBe(0);
    const run = lastJson<RunJson>(res.stdout);
    expect(run.status).toBe('completed');
    for (const m of run.metrics) {
      expect(m.status).toBe('completed');
      expect(m.completed).toBe(2);
      expect(m.seconds).toBeLessThan(60); // closed when the bad agent left, not on the 120 s deadline
    }
    const r1 = run.roundsDetail[0]!.participants;
    expect(r1.find((p) => p.name === 'sig-bad')?.outcome).toBe('dropped');
    for (const d of run.roundsDetail) expect(d.participants.find((p) => p.name === 'sig-bad')?.outcome ?? 'not invited').not.toBe('completed');
    expect(bad.output()).toMatch(new RegExp(`refusing model of run ${run.id} version 0 .*signature`));
    expect(bad.output()).not.toMatch(/"msg":"trained"/);
    expect(good.output()).toMatch(/"msg":"trained"/);
    expect(tofu.output()).toMatch(/"msg":"trained"/);

    // The registry shows each version's signature and key; it verifies with the published key.
    const show = await fedge(['model', 'show', '1', '--run', run.id, '--coordinator', coord.address, '--format', 'json']);
    expect(show.code, show.stderr).toBe(0);
    const v = lastJson<{ sha256: string; signature: string; keyFingerprint: string }>(show.stdout);
    expect(v.keyFingerprint).toBe(fingerprint);
    expect(v.signature).toMatch(/^[0-9a-f]{128}$/);
    const msg = Buffer.from(`fedge-model-v1\n${run.id}\n1\n${v.sha256}`);
    expect(verify(null, msg, createPublicKey(keyOut.stdout), Buffer.from(v.signature, 'hex'))).toBe(true);
  }, 60_000);

  it('trust on first use: an agent refuses a coordinator that comes back with another signing key', async () => {
    const port = await freePort();
    const first = await startCoordinator(['--listen', `127.0.0.1:${port}`]);
    const agent = startAgent(first.address, ['--name', 'pinned']);
    const pinned = /signing key ([0-9a-f]{16})/.exec(await agent.waitFor(/pinned the coordinator's model signing key/))![1]!;
    first.child.kill('SIGKILL');
    await agent.waitFor(/retrying/);
    // Same address, fresh data dir: a new key, as an impostor on the network path would have.
    const impostor = await startCoordinator(['--listen', `127.0.0.1:${port}`]);
    expect(await agent.waitFor(/refusing the session/, 30_000)).toContain(`changed from ${pinned}`);
    const list = await fedge(['agent', 'list', '--coordinator', impostor.address, '--format', 'json']);
    const agents = JSON.parse(list.stdout) as { name: string; status: string }[];
    expect(agents.find((a) => a.name === 'pinned')?.status ?? 'offline').toBe('offline');
  }, 60_000);
});
