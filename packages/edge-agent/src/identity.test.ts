import { chmodSync, existsSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseMqttIdentityPassword, parseSigningPublicKey, payloadSha256, signedUpdateRef, verifyMqttIdentity, verifyUpdate, type ResultHeaderMsg } from '@fedge/proto';
import { mqttDevicePassword } from '@fedge/proto';
import { AGENT_KEY_FILE, AgentIdentity, ENROLLED_FILE, MQTT_LOGIN_FILE } from './identity.js';

const dir = (): string => path.join(mkdtempSync(path.join(tmpdir(), 'fedge-agent-id-')), 'state');

describe('AgentIdentity', () => {
  it('creates its key 0600 in a 0700 state dir only when asked, and loads the same key after a restart', () => {
    const d = dir();
    expect(AgentIdentity.load(d, false)).toBeUndefined();
    expect(existsSync(d)).toBe(false);
    const a = AgentIdentity.load(d, true)!;
    expect(statSync(path.join(d, AGENT_KEY_FILE)).mode & 0o777).toBe(0o600);
    expect(statSync(d).mode & 0o777).toBe(0o700);
    expect(a.enrolledName).toBeUndefined();
    a.markEnrolled('cam-1');
    expect(JSON.parse(readFileSync(path.join(d, ENROLLED_FILE), 'utf8'))).toMatchObject({ name: 'cam-1', fingerprint: a.fingerprint });
    const b = AgentIdentity.load(d, false)!;
    expect(b.fingerprint).toBe(a.fingerprint);
    expect(b.enrolledName).toBe('cam-1');
    expect(JSON.stringify(b)).not.toMatch(/PRIVATE/); // toJSON: the public half only
  });

  it('tightens a key file others can read, and refuses one that is not an ed25519 PEM key', () => {
    const d = dir();
    AgentIdentity.load(d, true);
    chmodSync(path.join(d, AGENT_KEY_FILE), 0o644);
    AgentIdentity.load(d, false);
    expect(statSync(path.join(d, AGENT_KEY_FILE)).mode & 0o777).toBe(0o600);
    writeFileSync(path.join(d, AGENT_KEY_FILE), 'garbage', { mode: 0o600 });
    expect(() => AgentIdentity.load(d, false)).toThrow(/not a readable PEM private key/);
  });

  it('signs results the coordinator can verify, and MQTT passwords bound to the client id', () => {
    const id = AgentIdentity.load(dir(), true)!;
    const pub = parseSigningPublicKey(id.publicKeyPem, 'test');
    const h: ResultHeaderMsg = { agentId: 'agent-1', sessionToken: 's', taskId: 't', runId: 'run-1', round: 2, modelVersion: 1, kind: 'train', numExamples: 9, tensors: [{ name: 'w', dtype: 'float32', shape: [2] }], totalBytes: 8, encoding: 'float32-delta', metrics: { train_loss: 1 } };
    const payload = new Uint8Array(8).fill(3);
    const signed = id.signResult(h, payload);
    expect(verifyUpdate(pub, signedUpdateRef(h, payloadSha256(payload)), signed.signature as Uint8Array)).toBe(true);
    expect(verifyUpdate(pub, signedUpdateRef(h, payloadSha256(new Uint8Array(8))), signed.signature as Uint8Array)).toBe(false);
    expect(id.mqttPassword('fa-abcdefgh', 'cam-1', 'fe1-' + 'a'.repeat(32))).toBe(`fedge-enroll1 cam-1 fe1-${'a'.repeat(32)}`); // not enrolled yet: the code
    id.markEnrolled('cam-1');
    const c = parseMqttIdentityPassword(id.mqttPassword('fa-abcdefgh', 'cam-1', 'fe1-' + 'a'.repeat(32)))!;
    expect(c.kind).toBe('identity');
    if (c.kind !== 'identity') return;
    expect(verifyMqttIdentity(pub, 'fa-abcdefgh', c)).toBe(true);
    expect(verifyMqttIdentity(pub, 'fa-otherclient', c)).toBe(false);
  });

  it('derives its dynsec broker login from the code, keeps it 0600 for starts without a code, and asks for a code when it has none', () => {
    const d = dir();
    const code = `fe1-${'a'.repeat(32)}`;
    const a = AgentIdentity.load(d, true)!;
    expect(a.brokerLogin('cam-1', code, false)).toBeUndefined(); // not asked, nothing kept: the embedded broker's signature login
    expect(a.brokerLogin('cam-1', code, true)).toEqual({ username: 'fedge-device:cam-1', password: mqttDevicePassword('cam-1', code) });
    expect(statSync(path.join(d, MQTT_LOGIN_FILE)).mode & 0o777).toBe(0o600);
    const later = AgentIdentity.load(d, false)!;
    expect(later.brokerLogin('cam-1', undefined, false)).toEqual({ username: 'fedge-device:cam-1', password: mqttDevicePassword('cam-1', code) });
    expect(later.brokerLogin('cam-2', undefined, false)).toBeUndefined(); // kept for another name
    expect(() => later.brokerLogin('cam-2', undefined, true)).toThrow(/--mqtt-dynsec: no broker login for "cam-2" .*no --enroll-code/);
  });
});
