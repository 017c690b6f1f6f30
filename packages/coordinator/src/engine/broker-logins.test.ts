import { describe, expect, it } from 'vitest';
import { FedgeError, mqttDevicePassword } from '@fedge/proto';
import { MemoryStore } from '../store/memory-store.js';
import { AgentRegistry } from './agent-registry.js';
import { IdentityRegistry, type DeviceBrokerLogins } from './identities.js';
import { IdentityGate } from './identity-gate.js';
import { parseDynsecOption } from '../transport/mqtt/start.js';

/** Records what the coordinator asks of the broker; `fail` makes the next call throw as an unreachable broker would. */
function fakeBroker(): DeviceBrokerLogins & { calls: string[]; fail: boolean } {
  const b = {
    calls: [] as string[],
    fail: false,
    async issue(name: string, password: string) {
      if (b.fail) throw new FedgeError('E_CONNECTION', 'broker away');
      b.calls.push(`issue ${name} ${password}`);
    },
    async remove(name: string) {
      if (b.fail) throw new FedgeError('E_CONNECTION', 'broker away');
      b.calls.push(`remove ${name}`);
    },
  };
  return b;
}

describe('broker logins of enrolled devices (--mqtt-dynsec)', () => {
  it('enroll issues the login with the password derived from the code; revoke deletes it after cutting the session', async () => {
    const store = new MemoryStore();
    const gate = new IdentityGate(new IdentityRegistry(store), new AgentRegistry(store, 'tok'));
    const broker = fakeBroker();
    gate.identities.useBrokerLogins(broker);
    const { code } = await gate.identities.enroll('cam');
    expect(broker.calls).toEqual([`issue cam ${mqttDevicePassword('cam', code)}`]);
    expect(mqttDevicePassword('cam', code)).toMatch(/^fm1-[A-Za-z0-9_-]{43}$/);
    expect(mqttDevicePassword('cam', code)).not.toBe(mqttDevicePassword('cam2', code)); // bound to the name
    expect(gate.identities.mayLogIn('cam')).toBe(true); // a pending code may log in, to enroll
    expect(gate.identities.mayLogIn('stranger')).toBe(false);
    expect(await gate.revoke('cam')).toMatchObject({ status: 'revoked', sessionsClosed: 0, brokerLoginRemoved: true });
    expect(broker.calls.at(-1)).toBe('remove cam');
    expect(gate.identities.mayLogIn('cam')).toBe(false);
  });

  it('a broker that cannot take the login fails the enrollment (no usable code is left); a failed delete says what to do', async () => {
    const store = new MemoryStore();
    const gate = new IdentityGate(new IdentityRegistry(store), new AgentRegistry(store, 'tok'));
    const broker = fakeBroker();
    gate.identities.useBrokerLogins(broker);
    broker.fail = true;
    await expect(gate.identities.enroll('cam')).rejects.toThrow(/broker away/);
    expect(gate.identities.pending()).toEqual([]);
    expect(await store.listEnrollments()).toEqual([]);
    broker.fail = false;
    await gate.identities.enroll('cam');
    broker.fail = true;
    await expect(gate.revoke('cam')).rejects.toThrow(/"cam" is revoked in fedge \(0 session\(s\) closed\), but its broker login could not be deleted: broker away; run fedge agent revoke cam again/);
    broker.fail = false;
    // Again: fedge has nothing left of a pending-only name (not found), but the broker login is deleted all the same.
    await expect(gate.revoke('cam')).rejects.toThrow(/no enrolled identity "cam"/);
    expect(broker.calls.at(-1)).toBe('remove cam');
  });

  it('without --mqtt-dynsec nothing is asked of a broker', async () => {
    const store = new MemoryStore();
    const gate = new IdentityGate(new IdentityRegistry(store), new AgentRegistry(store, 'tok'));
    await gate.identities.enroll('cam');
    expect(await gate.revoke('cam')).not.toHaveProperty('brokerLoginRemoved');
  });
});

describe('parseDynsecOption', () => {
  it('needs --mqtt-broker, reads FEDGE_MQTT_DYNSEC, names the flag in its errors', () => {
    expect(parseDynsecOption({ mqttDynsec: true, mqttBroker: 'mqtt://h:1883' })).toBe(true);
    expect(parseDynsecOption({ mqttBroker: 'mqtt://h:1883' })).toBe(false);
    expect(() => parseDynsecOption({ mqttDynsec: true })).toThrow(/^--mqtt-dynsec: needs --mqtt-broker/);
    expect(() => parseDynsecOption({ mqttDynsec: true, mqttBroker: 'mqtt://h:1883', mqtt: false })).toThrow(/needs --mqtt-broker/);
    const old = process.env.FEDGE_MQTT_DYNSEC;
    try {
      process.env.FEDGE_MQTT_DYNSEC = '1';
      expect(parseDynsecOption({ mqttBroker: 'mqtt://h:1883' })).toBe(true);
      process.env.FEDGE_MQTT_DYNSEC = 'yes';
      expect(() => parseDynsecOption({ mqttBroker: 'mqtt://h:1883' })).toThrow(/^--mqtt-dynsec: FEDGE_MQTT_DYNSEC must be true, false, 1 or 0$/);
    } finally {
      if (old === undefined) delete process.env.FEDGE_MQTT_DYNSEC;
      else process.env.FEDGE_MQTT_DYNSEC = old;
    }
  });
});
