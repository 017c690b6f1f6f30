/** End to end over TLS: fedge serve --tls-cert/--tls-key, agents over grpcs:// and mqtts://, the admin CLI over grpcs://. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fedge, killAll, lastJson, startAgent, startCoordinator, startProcess, FEDGE } from './harness.js';

interface RunJson {
  status: string;
  metrics: { status: string; completed: number }[];
  roundsDetail: { participants: { name: string; outcome: string }[] }[];
}

let dir: string;
const f = (name: string): string => path.join(dir, name);
const openssl = (...args: string[]): void => void execFileSync('openssl', args, { stdio: 'pipe' });

/** A throwaway CA, server and client certificates it signed (server: 127.0.0.1/localhost), a second CA that signed nothing. */
function makeCertificates(): void {
  dir = mkdtempSync(path.join(tmpdir(), 'fedge-tls-'));
  for (const ca of ['ca', 'other-ca'])
    openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', f(`${ca}.key`), '-out', f(`${ca}.pem`), '-days', '1', '-subj', `/CN=fedge test ${ca}`);
  openssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', f('server.key'), '-out', f('server.csr'), '-subj', '/CN=127.0.0.1');
  writeFileSync(f('san.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n');
  openssl('x509', '-req', '-in', f('server.csr'), '-CA', f('ca.pem'), '-CAkey', f('ca.key'), '-CAcreateserial', '-out', f('server.pem'), '-days', '1', '-extfile', f('san.ext'));
  openssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', f('client.key'), '-out', f('client.csr'), '-subj', '/CN=fedge agent');
  writeFileSync(f('client.ext'), 'extendedKeyUsage=clientAuth\n');
  openssl('x509', '-req', '-in', f('client.csr'), '-CA', f('ca.pem'), '-CAkey', f('ca.key'), '-CAcreateserial', '-out', f('client.pem'), '-days', '1', '-extfile', f('client.ext'));
}

beforeAll(makeCertificates);
afterAll(() => {
  killAll();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const TLS = (): string[] => ['--tls-cert', f('server.pem'), '--tls-key', f('server.key')];

describe('TLS on the coordinator listeners', () => {
  it('2 grpcs:// agents and 1 mqtts:// agent complete 2 rounds; the admin CLI works over grpcs://; plaintext and wrong-CA agents are refused', async () => {
    const coord = await startCoordinator([...TLS(), '--mqtt-listen', '127.0.0.1:0']);
    const mqttsUrl = /MQTT broker on (mqtts:\/\/[\d.]+:\d+)/.exec(coord.output())?.[1];
    expect(mqttsUrl).toBeDefined();
    // Key material never reaches the log.
    expect(coord.output()).not.toMatch(/PRIVATE KEY|BEGIN CERTIFICATE/);
    const grpcs = `grpcs://${coord.address}`;
    const ca = ['--tls-ca', f('ca.pem')];
    const agents = [0, 1, 2].map((i) =>
      startAgent(i < 2 ? grpcs : mqttsUrl!, ['--name', `tls-${i}`, '--num-partitions', '3', '--partition-id', String(i), '--seed', '1', ...ca]),
    );
    // Refused: a plaintext agent against the TLS port, and one trusting another CA.
    const plain = startAgent(`grpc://${coord.address}`, ['--name', 'plain']);
    const wrongCa = startAgent(grpcs, ['--name', 'wrong-ca', '--tls-ca', f('other-ca.pem')]);
    const wrongCaMqtt = startAgent(mqttsUrl!, ['--name', 'wrong-ca-mqtt', '--tls-ca', f('other-ca.pem')]);
    await Promise.all(agents.map((a) => a.waitFor(/joined coordinator/)));

    const res = await fedge(['run', 'start', '--coordinator', grpcs, ...ca, '--model', 'mnist-mlp', '--rounds', '2', '--min-agents', '3',
      '--epochs', '1', '--lr', '0.1', '--watch', '--format', 'json']);
    expect(res.code, res.stderr).toBe(0);
    const run = lastJson<RunJson & { id: string }>(res.stdout);
    expect(run.status).toBe('completed');
    expect(run.metrics.map((m) => [m.status, m.completed])).toEqual([['completed', 3], ['completed', 3]]);
    for (const r of run.roundsDetail)
      expect(r.participants.map((p) => p.name).sort()).toEqual(['tls-0', 'tls-1', 'tls-2']);

    // run show over grpcs://, the CA from the environment this time.
    const show = await fedge(['run', 'show', run.id, '--coordinator', grpcs, '--format', 'json'], { FEDGE_TLS_CA: f('ca.pem') });
    expect(show.code, show.stderr).toBe(0);
    expect(lastJson<RunJson>(show.stdout).status).toBe('completed');
    const csv = await fedge(['run', 'export', run.id, '--coordinator', grpcs, ...ca]);
    expect(csv.code, csv.stderr).toBe(0);
    expect(csv.stdout.trim().split('\n')).toHaveLength(3); // header + 2 rounds
    // Without the CA the system roots do not know ours: a clear TLS error, not "cannot reach".
    const untrusted = await fedge(['agent', 'list', '--coordinator', grpcs]);
    expect(untrusted.code).not.toBe(0);
    expect(untrusted.stderr).toMatch(/E_TLS.*--tls-ca/);

    await plain.waitFor(/use grpcs:\/\/.*coordinator unreachable/, 20_000);
    await wrongCa.waitFor(/TLS to the coordinator failed.*certificate/i, 20_000);
    await wrongCaMqtt.waitFor(/certificate.*--tls-ca/i, 20_000);
    for (const p of [plain, wrongCa, wrongCaMqtt]) expect(p.output()).not.toMatch(/joined coordinator/);
    for (const p of [plain, wrongCa, wrongCaMqtt]) p.child.kill('SIGKILL');
    for (const a of agents) a.child.kill('SIGTERM');
    coord.child.kill('SIGTERM');
    expect(await coord.exited).toBe(0);
  }, 60_000);

  it('mutual TLS: --tls-client-ca admits agents and admin commands presenting a certificate it signed, and only them', async () => {
    const coord = await startCoordinator([...TLS(), '--tls-client-ca', f('ca.pem'), '--mqtt-listen', '127.0.0.1:0']);
    const mqttsUrl = /MQTT broker on (mqtts:\/\/[\d.]+:\d+)/.exec(coord.output())![1]!;
    const grpcs = `grpcs://${coord.address}`;
    const client = ['--tls-ca', f('ca.pem'), '--tls-cert', f('client.pem'), '--tls-key', f('client.key')];
    const ok = [startAgent(grpcs, ['--name', 'm-grpc', ...client]), startAgent(mqttsUrl, ['--name', 'm-mqtt', ...client])];
    const noCert = [startAgent(grpcs, ['--name', 'n-grpc', '--tls-ca', f('ca.pem')]), startAgent(mqttsUrl, ['--name', 'n-mqtt', '--tls-ca', f('ca.pem')])];
    await Promise.all(ok.map((a) => a.waitFor(/joined coordinator/)));
    await Promise.all(noCert.map((a) => a.waitFor(/coordinator unreachable/, 20_000)));
    const list = await fedge(['agent', 'list', '--coordinator', grpcs, ...client, '--format', 'json']);
    expect(list.code, list.stderr).toBe(0);
    expect(list.stdout).toContain('m-grpc');
    expect(list.stdout).toContain('m-mqtt');
    for (const n of ['n-grpc', 'n-mqtt']) expect(list.stdout).not.toContain(n);
    const refused = await fedge(['agent', 'list', '--coordinator', grpcs, '--tls-ca', f('ca.pem')]);
    expect(refused.code).not.toBe(0);
    // run export and model export --run reach an mTLS coordinator too (issue 18: they had no --tls-cert/--tls-key).
    const run = await fedge(['run', 'start', '--coordinator', grpcs, ...client, '--model', 'mnist-mlp', '--rounds', '1', '--min-agents', '9', '--format', 'json']);
    expect(run.code, run.stderr).toBe(0);
    const runId = (JSON.parse(run.stdout) as { id: string }).id;
    const csv = await fedge(['run', 'export', runId, '--coordinator', grpcs, ...client]);
    expect(csv.code, csv.stderr).toBe(0);
    expect(csv.stdout).toMatch(/^round,/);
    const onnx = path.join(mkdtempSync(path.join(tmpdir(), 'fedge-mtls-')), 'm.onnx');
    const exp = await fedge(['model', 'export', '--run', runId, '--version', '0', '--coordinator', grpcs, ...client, '-o', onnx, '--format', 'json']);
    expect(exp.code, exp.stderr).toBe(0);
    expect((JSON.parse(exp.stdout) as { bytes: number }).bytes).toBeGreaterThan(1000);
    for (const a of [...ok, ...noCert]) a.child.kill('SIGKILL');
    coord.child.kill('SIGTERM');
    expect(await coord.exited).toBe(0);
  }, 40_000);

  it('a missing or mismatched file stops fedge serve with an error naming the flag', async () => {
    const missing = startProcess(FEDGE, ['serve', '--listen', '127.0.0.1:0', '--in-memory', '--no-mqtt', '--tls-cert', f('nope.pem'), '--tls-key', f('server.key')]);
    expect(await missing.exited).not.toBe(0);
    expect(missing.output()).toMatch(/E_TLS.*--tls-cert .*nope\.pem: cannot read the file \(ENOENT\)/);
    const mismatched = startProcess(FEDGE, ['serve', '--listen', '127.0.0.1:0', '--in-memory', '--no-mqtt', '--tls-cert', f('server.pem'), '--tls-key', f('ca.key')]);
    expect(await mismatched.exited).not.toBe(0);
    expect(mismatched.output()).toMatch(/--tls-key .*ca\.key does not belong to the certificate in --tls-cert/);
    expect(mismatched.output()).not.toMatch(/PRIVATE KEY/);
  }, 20_000);
});
