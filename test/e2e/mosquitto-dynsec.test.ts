/**
 * Enrolled devices on a real Mosquitto with per-device logins (deploy/mosquitto/mosquitto-dynsec.conf and acl, the
 * dynamic security plugin initialised with mosquitto_ctrl as the README says; fedge serve --mqtt-dynsec), no join
 * token on the device: `fedge agent enroll` makes the device's broker login, the agent logs in with it and completes a round;
 * with that login it cannot publish on another agent's topic; `fedge agent revoke` deletes the login, so the broker
 * drops the device and refuses it from then on; a revoke made while the broker is down is carried out when the
 * coordinator reconnects.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { mqttDevicePassword, mqttDeviceUsername } from '@fedge/proto';
import { FEDGE, fedge, killAll, lastJson, startAgent, startCoordinator, startProcess } from './harness.js';
import { brokerClient, killMosquittos, startMosquitto } from './mosquitto.js';

afterAll(() => {
  killAll();
  killMosquittos();
});

const ADMIN = { username: 'fedge-coordinator', password: 'coordinator-dynsec-secret' };
const TOKEN = 'dynsec-join-token';

describe('enrolled devices on Mosquitto with per-device logins (--mqtt-dynsec)', () => {
  it('enroll makes the login, the device trains through the broker with it, it cannot use another agent\'s topic, revoke deletes it', { timeout: 60_000 }, async () => {
    const b = await startMosquitto({ dynsec: { admin: ADMIN } });
    // A coordinator that cannot log in as the plugin's admin stops at start, naming the fix.
    // (Started beside the real coordinator, checked once that one is up: the two start-ups overlap.)
    const wrong = startProcess(FEDGE, ['serve', '--listen', '127.0.0.1:0', '--in-memory', '--mqtt-broker', `mqtt://${ADMIN.username}:wrong@127.0.0.1:${b.port}`, '--mqtt-dynsec']);
    const coord = await startCoordinator(['--mqtt-broker', `mqtt://${ADMIN.username}:${ADMIN.password}@127.0.0.1:${b.port}`, '--mqtt-dynsec', '--join-token', TOKEN]);
    await coord.waitFor(/device logins reconciled/);
    expect(await wrong.exited).toBe(1);
    expect(wrong.output()).toMatch(/--mqtt-dynsec: broker mqtt:\/\/127\.0\.0\.1:\d+\/?: Connection refused: Not authorized.*dynamic security plugin's admin/);
    expect(wrong.output()).not.toContain('wrong@');
    // Shared-token agents' login is the coordinator's to keep too: fedge-agent with the join token.
    await (await brokerClient(b.port, 'fa-tokenTTTTTTTTTT', 'fedge-agent', TOKEN)).endAsync();
    await expect(brokerClient(b.port, 'fa-tokenbadBBBBBBB', 'fedge-agent', 'not-the-token')).rejects.toThrow(/Bad User Name or Password|Not authorized/i);
    const admin = ['--coordinator', coord.address];
    const enroll = async (name: string): Promise<string> => {
      const r = await fedge(['agent', 'enroll', name, '--ttl', '10m', '--format', 'json', ...admin]);
      expect(r.code, r.stderr).toBe(0);
      return lastJson<{ code: string }>(r.stdout).code;
    };
    const code = await enroll('dyn-1');

    // A device with the code and no join token: it derives its broker login from the code and enrolls its key.
    const stateDir = mkdtempSync(path.join(tmpdir(), 'fedge-dynsec-'));
    const data = ['--num-partitions', '60', '--partition-id', '0', '--seed', '3'];
    const first = startAgent(b.url, ['--name', 'dyn-1', '--state-dir', stateDir, '--enroll-code', code, '--mqtt-dynsec', ...data]);
    await first.waitFor(/joined coordinator/, 20_000);
    // Restarted with neither code nor flag: the login kept in its state dir, and its enrolled key, get it back in.
    first.child.kill('SIGTERM');
    await first.exited;
    const agent = startAgent(b.url, ['--name', 'dyn-1', '--state-dir', stateDir, ...data]);
    await agent.waitFor(/joined coordinator/, 20_000);
    const res = await fedge(['run', 'start', ...admin, '--model', 'mnist-mlp', '--rounds', '1', '--min-agents', '1', '--epochs', '1', '--deadline', '60', '--watch', '--format', 'json']);
    expect(res.code, res.stderr).toBe(0);
    const run = lastJson<{ status: string; metrics: { completed: number }[] }>(res.stdout);
    expect(run.status).toBe('completed');
    expect(run.metrics.map((m) => m.completed)).toEqual([1]);

    // Its login is its alone: a wrong password, or another device's name, is refused by the broker.
    const login = { username: mqttDeviceUsername('dyn-1'), password: mqttDevicePassword('dyn-1', code) };
    await expect(brokerClient(b.port, 'fa-wrongpwWWWWWWW', login.username, `${login.password}x`)).rejects.toThrow(/Bad User Name or Password|Not authorized/i);
    await expect(brokerClient(b.port, 'fa-otherdevOOOOOO', mqttDeviceUsername('dyn-2'), login.password)).rejects.toThrow(/Bad User Name or Password|Not authorized/i);

    // With its own login, the device may publish only on its own client id's topics (the acl's %c patterns).
    const coordSees: string[] = [];
    const spy = await brokerClient(b.port, 'fedge-coordinator-spy', ADMIN.username, ADMIN.password);
    spy.on('message', (topic, payload) => coordSees.push(`${topic} ${payload.toString()}`));
    await spy.subscribeAsync('fedge/v1/c/+/req', { qos: 1 });
    const dev = await brokerClient(b.port, 'fa-dyndevDDDDDDDD', login.username, login.password);
    await dev.publishAsync('fedge/v1/c/fa-dyndevDDDDDDDD/req', 'own', { qos: 1 });
    await expect(dev.publishAsync('fedge/v1/c/fa-victimVVVVVVVVV/req', 'forged', { qos: 1 })).rejects.toThrow(/Not authorized/i);
    await expect(dev.publishAsync('fedge/v1/c/fa-victimVVVVVVVVV/res', 'forged', { qos: 1 })).rejects.toThrow(/Not authorized/i);
    // Nor may it drive the plugin: the control topic is the coordinator's alone.
    await expect(dev.publishAsync('$CONTROL/dynamic-security/v1', JSON.stringify({ commands: [{ command: 'listClients' }] }), { qos: 1 })).rejects.toThrow(/Not authorized/i);
    await new Promise((r) => setTimeout(r, 200));
    expect(coordSees).toEqual(['fedge/v1/c/fa-dyndevDDDDDDDD/req own']);
    await Promise.all([dev.endAsync(), spy.endAsync()]);

    // Revoke: fedge cuts the session, the broker deletes the login and drops the device's connection.
    const rev = await fedge(['agent', 'revoke', 'dyn-1', '--format', 'json', ...admin]);
    expect(rev.code, rev.stderr).toBe(0);
    expect(lastJson<{ sessionsClosed: number; brokerLoginRemoved?: boolean }>(rev.stdout)).toMatchObject({ sessionsClosed: 1, brokerLoginRemoved: true });
    expect(await agent.waitFor(/refused/, 15_000)).toMatch(/is it enrolled and not revoked/);
    await expect(brokerClient(b.port, 'fa-afterrevokeAAA', login.username, login.password)).rejects.toThrow(/Bad User Name or Password|Not authorized/i);

    // A revoke while the broker is down: fedge revokes and says the login is left; the reconnect deletes it.
    const code2 = await enroll('dyn-2');
    const login2 = { username: mqttDeviceUsername('dyn-2'), password: mqttDevicePassword('dyn-2', code2) };
    await (await brokerClient(b.port, 'fa-dyn2checkCCCCC', login2.username, login2.password)).endAsync(); // a pending code's login works
    await b.stop();
    const away = await fedge(['agent', 'revoke', 'dyn-2', ...admin]);
    expect(away.code).not.toBe(0);
    expect(away.stderr).toMatch(/"dyn-2" is revoked in fedge .*but its broker login could not be deleted: .*not connected to the broker/);
    await b.start();
    await coord.waitFor(/device logins reconciled \(1 stale removed\)/, 15_000);
    await expect(brokerClient(b.port, 'fa-dyn2afterAAAAA', login2.username, login2.password)).rejects.toThrow(/Bad User Name or Password|Not authorized/i);

    for (const secret of [code, code2, login.password, login2.password, TOKEN]) {
      expect(coord.output()).not.toContain(secret);
      expect(first.output() + agent.output()).not.toContain(secret);
    }
  });
});
