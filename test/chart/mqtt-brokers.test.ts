/** The K3s chart's MQTT brokers (deploy/k3s/fedge): the coordinator's embedded one, the shipped Mosquitto, and Mosquitto with per-device logins. */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ROOT, type Obj } from './helm.js';
import { NAMESPACE, RELEASE, container, find, h, names, one, render, rendered, template } from './chart-render.js';

afterAll(() => h.close());

describe('helm chart deploy/k3s/fedge: MQTT brokers', () => {
  it('exposes the embedded MQTT broker and points agents at it only with coordinator.mqtt.enabled + agent.transport=mqtt', () => {
    const objs = rendered('mqtt');
    const coordArgs: string[] = container(one(objs, 'StatefulSet', names.coordinator), 'coordinator').args;
    expect(coordArgs.slice(coordArgs.indexOf('--mqtt-listen'), coordArgs.indexOf('--mqtt-listen') + 2)).toEqual(['--mqtt-listen', '0.0.0.0:1883']);
    expect(coordArgs).not.toContain('--no-mqtt');
    expect(one(objs, 'Service', names.coordinator).spec.ports.map((p: Obj) => [p.name, p.port])).toEqual([['grpc', 7070], ['mqtt', 1883], ['metrics', 9464]]);
    const agentArgs: string[] = container(one(objs, 'DaemonSet', names.agent), 'agent').args;
    expect(agentArgs[agentArgs.indexOf('--coordinator') + 1]).toBe(`mqtt://${names.coordinator}.${NAMESPACE}.svc:1883`);
    const agentRule = one(objs, 'NetworkPolicy', names.coordinator).spec.ingress[0];
    expect(agentRule.ports.map((p: Obj) => p.port)).toEqual(['grpc', 'mqtt']);
    // without the broker the agents cannot use MQTT
    const r = template({ set: ['agent.transport=mqtt'] });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/agent.transport is mqtt: set coordinator.mqtt.enabled=true/);
  });

  it('runs the shipped Mosquitto config only with mosquitto.enabled: coordinator and agents use it, passwords from Secrets, ACL unchanged', () => {
    const objs = rendered('mosquitto');
    const mq = `${RELEASE}-mosquitto`;
    const sts = container(one(objs, 'StatefulSet', names.coordinator), 'coordinator');
    expect(sts.args).not.toContain('--no-mqtt');
    expect(sts.args).not.toContain('--mqtt-listen');
    const env = Object.fromEntries((sts.env as Obj[]).map((e) => [e.name, e]));
    expect(env.FEDGE_MQTT_BROKER.value).toBe(`mqtt://fedge-coordinator:$(FEDGE_MQTT_BROKER_PASSWORD)@${mq}.${NAMESPACE}.svc:1883`);
    expect(env.FEDGE_MQTT_BROKER_PASSWORD.valueFrom.secretKeyRef).toEqual({ name: mq, key: 'coordinator-password' });
    expect(Buffer.from(one(objs, 'Secret', mq).data['coordinator-password'], 'base64').toString()).toMatch(/^[A-Za-z0-9]{32}$/);
    const agentArgs: string[] = container(one(objs, 'DaemonSet', names.agent), 'agent').args;
    expect(agentArgs[agentArgs.indexOf('--coordinator') + 1]).toBe(`mqtt://${mq}.${NAMESPACE}.svc:1883`);
    // The ConfigMap is deploy/mosquitto's: the ACL byte for byte, the config with only listener, paths and logging changed.
    const cm = one(objs, 'ConfigMap', mq).data;
    expect(cm.acl.trim()).toBe(readFileSync(path.join(ROOT, 'deploy/mosquitto/acl'), 'utf8').trim());
    const shipped = readFileSync(path.join(ROOT, 'deploy/mosquitto/mosquitto.conf'), 'utf8').trim().split('\n');
    const conf = (cm['mosquitto.conf'] as string).trim().split('\n');
    const changed = shipped.map((l, i) => [l, conf[i]]).filter(([a, b]) => a !== b);
    expect(changed).toEqual([
      ['password_file /etc/mosquitto/fedge/passwd', 'password_file /mosquitto/auth/passwd'],
      ['acl_file /etc/mosquitto/fedge/acl', 'acl_file /mosquitto/config/acl'],
      ['listener 1883 127.0.0.1', 'listener 1883 0.0.0.0'],
      ['log_dest syslog', 'log_dest stdout'],
    ]);
    expect(conf.slice(shipped.length).join('\n').trim()).toMatch(/^# TLS listener.*\nlistener 8883 0\.0\.0\.0\ncertfile \/mosquitto\/tls\/tls\.crt\nkeyfile \/mosquitto\/tls\/tls\.key/);
    expect(cm['mosquitto.conf']).toMatch(/^allow_anonymous false$/m);
    // No password in any argument: the init container writes the file from env (Secrets) and hashes it.
    const dep = one(objs, 'Deployment', mq);
    const init = dep.spec.template.spec.initContainers[0];
    expect(init.env.map((e: Obj) => [e.name, e.valueFrom.secretKeyRef.name])).toEqual([['COORDINATOR_PASSWORD', mq], ['FEDGE_JOIN_TOKEN', names.secret]]);
    expect(init.command).toEqual(['sh', '/mosquitto/config/passwd.sh']);
    expect(cm['passwd.sh']).toMatch(/"\$COORDINATOR_PASSWORD" "\$FEDGE_JOIN_TOKEN" > \/mosquitto\/auth\/passwd\nmosquitto_passwd -U \/mosquitto\/auth\/passwd/);
    expect(one(objs, 'Service', mq).spec.ports.map((p: Obj) => [p.name, p.port])).toEqual([['mqtt', 1883], ['mqtts', 8883]]);
    const np = one(objs, 'NetworkPolicy', mq).spec.ingress;
    expect(np[0].from.map((f: Obj) => f.podSelector.matchLabels['app.kubernetes.io/component'])).toEqual(['coordinator', 'agent']);
    // Off by default; and one broker at a time.
    expect(find(rendered('defaults'), 'Deployment')).toEqual([]);
    const both = template({ set: ['mosquitto.enabled=true', 'coordinator.mqtt.enabled=true'] });
    expect(both.status).not.toBe(0);
    expect(both.stderr).toMatch(/choose one broker/);
  });

  it('runs Mosquitto with per-device logins with mosquitto.dynsec: the shipped dynsec config, the plugin file on a kept claim, the coordinator its admin', () => {
    const objs = rendered('mosquittoDynsec');
    const mq = `${RELEASE}-mosquitto`;
    const env = Object.fromEntries((container(one(objs, 'StatefulSet', names.coordinator), 'coordinator').env as Obj[]).map((e) => [e.name, e]));
    expect(env.FEDGE_MQTT_DYNSEC.value).toBe('true');
    expect(env.FEDGE_MQTT_BROKER.value).toBe(`mqtt://fedge-coordinator:$(FEDGE_MQTT_BROKER_PASSWORD)@${mq}.${NAMESPACE}.svc:1883`);
    expect(find(rendered('mosquitto'), 'StatefulSet')[0]!.spec.template.spec.containers[0].env.map((e: Obj) => e.name)).not.toContain('FEDGE_MQTT_DYNSEC');
    // deploy/mosquitto/mosquitto-dynsec.conf with only listener, plugin path, plugin file, ACL path and logging changed.
    const cm = one(objs, 'ConfigMap', mq).data;
    expect(cm.acl.trim()).toBe(readFileSync(path.join(ROOT, 'deploy/mosquitto/acl'), 'utf8').trim());
    const shipped = readFileSync(path.join(ROOT, 'deploy/mosquitto/mosquitto-dynsec.conf'), 'utf8').trim().split('\n');
    const conf = (cm['mosquitto.conf'] as string).trim().split('\n');
    expect(conf).toHaveLength(shipped.length);
    expect(shipped.map((l, i) => [l, conf[i]]).filter(([a, b]) => a !== b)).toEqual([
      ['plugin /usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so', 'plugin /usr/lib/mosquitto_dynamic_security.so'],
      ['plugin_opt_config_file /var/lib/mosquitto/dynamic-security.json', 'plugin_opt_config_file /mosquitto/data/dynamic-security.json'],
      ['acl_file /etc/mosquitto/fedge/acl', 'acl_file /mosquitto/config/acl'],
      ['listener 1883 127.0.0.1', 'listener 1883 0.0.0.0'],
      ['log_dest syslog', 'log_dest stdout'],
    ]);
    expect(cm['passwd.sh']).toBeUndefined();
    // The admin's password reaches mosquitto_ctrl on stdin, from the Secret; only when the volume has no file yet.
    expect(cm['dynsec-init.sh']).toMatch(/if \[ ! -s "\$f" \]; then\n\s+printf '%s\\n%s\\n' "\$COORDINATOR_PASSWORD" "\$COORDINATOR_PASSWORD" \| mosquitto_ctrl dynsec init "\$f" fedge-coordinator/);
    const pod = one(objs, 'Deployment', mq).spec.template.spec;
    const init = pod.initContainers[0];
    expect(init.name).toBe('dynsec-init');
    expect(init.command).toEqual(['sh', '/mosquitto/config/dynsec-init.sh']);
    expect(init.env.map((e: Obj) => [e.name, e.valueFrom.secretKeyRef.name])).toEqual([['COORDINATOR_PASSWORD', mq]]);
    for (const c of [init, pod.containers[0]]) expect(c.volumeMounts.find((m: Obj) => m.name === 'data')).toMatchObject({ mountPath: '/mosquitto/data' });
    expect(pod.containers[0].volumeMounts.find((m: Obj) => m.name === 'data').readOnly).toBeUndefined(); // the plugin rewrites its file
    expect(pod.volumes.find((v: Obj) => v.name === 'data').persistentVolumeClaim.claimName).toBe(mq);
    const pvc = one(objs, 'PersistentVolumeClaim', mq);
    expect(pvc.metadata.annotations['helm.sh/resource-policy']).toBe('keep'); // the only copy of the devices' logins
    expect(pvc.spec).toMatchObject({ accessModes: ['ReadWriteOnce'], storageClassName: 'local-path', resources: { requests: { storage: '64Mi' } } });
    // A claim of one's own: no chart claim, the Deployment mounts it.
    const own = render({ set: ['mosquitto.enabled=true', 'agent.transport=mqtt', 'mosquitto.dynsec.enabled=true', 'mosquitto.dynsec.persistence.existingClaim=mq-logins'] });
    expect(find(own, 'PersistentVolumeClaim')).toEqual([]);
    expect(one(own, 'Deployment', mq).spec.template.spec.volumes.find((v: Obj) => v.name === 'data').persistentVolumeClaim.claimName).toBe('mq-logins');
    // Enrolled agents (agent.identity) log in with their own login; token agents as before.
    const agentEnv = (o: Obj[]): string[] => (container(one(o, 'DaemonSet', names.agent), 'agent').env as Obj[]).map((e) => e.name);
    expect(agentEnv(objs)).not.toContain('FEDGE_MQTT_DYNSEC');
    const enrolled = render({ set: ['mosquitto.enabled=true', 'agent.transport=mqtt', 'mosquitto.dynsec.enabled=true', 'agent.identity.enabled=true', 'agent.identity.enrollmentSecret=fedge-enroll'] });
    expect((container(one(enrolled, 'DaemonSet', names.agent), 'agent').env as Obj[]).find((e) => e.name === 'FEDGE_MQTT_DYNSEC')?.value).toBe('true');
    const bad = template({ set: ['mosquitto.enabled=true', 'mosquitto.dynsec.enabled=true', 'mosquitto.dynsec.pluginPath=dynsec'] });
    expect(bad.status).not.toBe(0);
    expect(bad.stderr).toMatch(/pluginPath/);
  });
});
