/** Broker logins of enrolled devices kept in Mosquitto's dynamic security plugin over its $CONTROL topic (fedge serve --mqtt-dynsec). */
import { randomBytes } from 'node:crypto';
import { connect, type MqttClient } from 'mqtt';
import { z } from 'zod';
import { FedgeError, MQTT_AGENT_USERNAME, deviceNameOfUsername, mqttDeviceUsername } from '@fedge/proto';
import type { DeviceBrokerLogins } from '../../engine/identities.js';
import { moduleLogger } from '../../log.js';
import { redactUrl } from './agent-bridge.js';

const log = moduleLogger('mqtt-dynsec');

const CONTROL_TOPIC = '$CONTROL/dynamic-security/v1';
const RESPONSE_TOPIC = `${CONTROL_TOPIC}/response`;
/** A command not answered within this long: the broker is down, or the ACL drops our $CONTROL publishes (QoS 1 on MQTT 3.1.1 cannot say). */
const COMMAND_TIMEOUT_MS = 10_000;

/** What the plugin answers (mosquitto.org/documentation/dynamic-security): one response per command, in order. */
const responsesSchema = z.object({
  responses: z.array(z.object({ command: z.string(), error: z.string().optional(), data: z.unknown().optional(), correlationData: z.string().optional() })),
});
const listClientsSchema = z.object({ totalCount: z.number().int().nonnegative(), clients: z.array(z.string()) });
/** Also reconciled this often while connected: logins of codes that expired unused go without waiting for a reconnect. */
const RECONCILE_EVERY_MS = 15 * 60_000;
/** Usernames per listClients page: a fleet's worth in one response would approach the broker's packet limit. */
const LIST_PAGE = 1000;

type Command = Record<string, unknown> & { command: string };
type Response = z.infer<typeof responsesSchema>['responses'][number];

const notAnswered = (url: string): FedgeError =>
  new FedgeError(
    'E_CONFIG',
    `--mqtt-dynsec: the broker ${redactUrl(url)} did not answer a dynamic-security command within ${COMMAND_TIMEOUT_MS / 1000} s; is the dynamic security plugin loaded, is the coordinator's broker user a dynsec admin (mosquitto_ctrl dynsec init), and does the broker's acl_file grant it $CONTROL/dynamic-security/# (deploy/mosquitto/acl)?`,
  );

export interface DynsecAdmin extends DeviceBrokerLogins {
  close(): Promise<void>;
}

/** Which devices may hold a broker login, as the identity registry says. */
export interface DeviceRoster {
  /** Enrolled and unrevoked, or with an unused code. */
  mayLogIn(name: string): boolean;
  /** Enrolled and unrevoked: each should have a login. */
  enrolledNames(): string[];
}

/**
 * Connects to the broker as its dynsec admin (the coordinator's own broker user) and keeps one broker client per
 * enrolled device. On every (re)connect, and every 15 minutes, the broker's fedge-device:* clients are reconciled with
 * the roster: logins of devices that may not log in are deleted (a revoke made while the broker was away still takes
 * effect), and enrolled devices without a login are named in a warning (the password derives from a code fedge does
 * not keep, so only a new enrollment can restore one: a lost plugin file, or devices enrolled before --mqtt-dynsec).
 */
export async function startDynsecAdmin(url: string, auth: { username?: string; password?: string }, roster: DeviceRoster, joinToken?: string): Promise<DynsecAdmin> {
  const client: MqttClient = connect(url, {
    clientId: `fedge-dynsec-${randomBytes(6).toString('hex')}`,
    ...(auth.username !== undefined ? { username: auth.username } : {}),
    ...(auth.password !== undefined ? { password: auth.password } : {}),
    protocolVersion: 4,
    clean: true,
    keepalive: 30,
    reconnectPeriod: 1000,
    connectTimeout: COMMAND_TIMEOUT_MS,
  });
  // Every admin subscribed to the response topic gets every response: ours are told apart by their correlation data.
  const tag = randomBytes(6).toString('hex');
  let seq = 0;
  const waiting = new Map<string, (r: Response) => void>();
  client.on('message', (topic, payload) => {
    if (topic !== RESPONSE_TOPIC) return;
    let parsed: z.infer<typeof responsesSchema>;
    try {
      parsed = responsesSchema.parse(JSON.parse(payload.toString('utf8')));
    } catch (err) {
      log.warn({ err: (err as Error).message }, 'unreadable dynamic-security response ignored');
      return;
    }
    for (const r of parsed.responses) {
      const done = r.correlationData ? waiting.get(r.correlationData) : undefined;
      if (!done) continue;
      waiting.delete(r.correlationData!);
      done(r);
    }
  });

  /** Sends the commands as one message (the plugin runs them in order) and resolves with their responses. */
  const run = async (commands: Command[]): Promise<Response[]> => {
    // Not queued for later: a revoke must say now that the broker did not take it (the reconnect reconciles instead).
    if (!client.connected) throw new FedgeError('E_CONNECTION', `--mqtt-dynsec: not connected to the broker ${redactUrl(url)} (reconnecting)`);
    const tagged = commands.map((c) => ({ ...c, correlationData: `${tag}-${++seq}` }));
    const answers = tagged.map(
      (c) =>
        new Promise<Response>((resolve, reject) => {
          const t = setTimeout(() => {
            waiting.delete(c.correlationData);
            reject(notAnswered(url));
          }, COMMAND_TIMEOUT_MS);
          waiting.set(c.correlationData, (r) => {
            clearTimeout(t);
            resolve(r);
          });
        }),
    );
    // The body holds a device password: it is never logged, only sent.
    client.publish(CONTROL_TOPIC, JSON.stringify({ commands: tagged }), { qos: 1 });
    return Promise.all(answers);
  };
  const refused = (r: Response, what: string): FedgeError => new FedgeError('E_CONFIG', `--mqtt-dynsec: the broker refused ${what}: ${r.error} (command ${r.command})`);

  const deviceNames = async (): Promise<string[]> => {
    const names: string[] = [];
    for (let offset = 0; ; offset += LIST_PAGE) {
      const [r] = await run([{ command: 'listClients', verbose: false, count: LIST_PAGE, offset }]);
      if (r!.error) throw refused(r!, 'to list its clients');
      const page = listClientsSchema.parse(r!.data);
      for (const u of page.clients) {
        const n = deviceNameOfUsername(u);
        if (n !== undefined) names.push(n);
      }
      if (page.clients.length < LIST_PAGE || offset + LIST_PAGE >= page.totalCount) return names;
    }
  };
  const remove = async (name: string): Promise<void> => {
    const [r] = await run([{ command: 'deleteClient', username: mqttDeviceUsername(name) }]);
    if (r!.error && r!.error !== 'Client not found') throw refused(r!, `to delete the login of "${name}"`);
  };
  /**
   * Shared-token agents log in as fedge-agent with the join token, as with a password file: kept in step with the
   * coordinator's --join-token on every reconcile, so rotating the token is restarting fedge serve with the new one.
   * Without a join token fedge leaves that login alone.
   */
  const syncTokenLogin = async (): Promise<void> => {
    if (!joinToken) return;
    const [created] = await run([{ command: 'createClient', username: MQTT_AGENT_USERNAME, password: joinToken, textName: 'fedge shared-token agents' }]);
    if (!created!.error) return void log.info({ username: MQTT_AGENT_USERNAME }, 'dynamic security: shared-token login created');
    if (created!.error !== 'Client already exists') throw refused(created!, `to create the ${MQTT_AGENT_USERNAME} login`);
    const [set] = await run([{ command: 'setClientPassword', username: MQTT_AGENT_USERNAME, password: joinToken }]);
    if (set!.error) throw refused(set!, `to set the ${MQTT_AGENT_USERNAME} login's password`);
  };
  const reconcile = async (): Promise<void> => {
    await syncTokenLogin();
    const present = await deviceNames();
    const stale = present.filter((n) => !roster.mayLogIn(n));
    for (const n of stale) await remove(n);
    const have = new Set(present);
    const missing = roster.enrolledNames().filter((n) => !have.has(n));
    log.info({ removed: stale.length, missing: missing.length }, `dynamic security: device logins reconciled (${stale.length} stale removed)`);
    if (missing.length)
      log.warn({ missing: missing.slice(0, 20), count: missing.length }, `dynamic security: ${missing.length} enrolled device(s) have no broker login and cannot connect through this broker; re-enroll them (fedge agent revoke NAME; fedge agent enroll NAME)`);
  };

  // The first reconcile is awaited below: a broker without the plugin, or a user that is not its admin, stops
  // fedge serve at start with the fix, not at the first enrollment. Later reconnects only log a failure.
  let first = true;
  client.on('connect', () => {
    if (first) return;
    client
      .subscribeAsync(RESPONSE_TOPIC, { qos: 1 })
      .then(() => reconcile())
      .catch((err: Error) => log.error({ err: err.message }, 'dynamic security: reconciling device logins failed; revoked devices may still log in to the broker until the next reconcile'));
  });
  client.on('error', (err) => log.warn({ broker: redactUrl(url), err: err.message }, 'dynamic security: broker connection error'));
  await new Promise<void>((resolve, reject) => {
    const settle = (err?: FedgeError): void => {
      clearTimeout(t);
      client.removeListener('error', onError);
      if (!err) return resolve();
      client.end(true); // or it keeps retrying and holds the process open
      reject(err);
    };
    const onError = (err: Error): void => settle(new FedgeError('E_CONNECTION', `--mqtt-dynsec: broker ${redactUrl(url)}: ${err.message} (is the coordinator's user the dynamic security plugin's admin, with the password in --mqtt-broker?)`));
    const t = setTimeout(() => settle(new FedgeError('E_CONNECTION', `--mqtt-dynsec: broker ${redactUrl(url)} not reachable within ${COMMAND_TIMEOUT_MS / 1000} s`)), COMMAND_TIMEOUT_MS);
    client.once('error', onError);
    client.once('connect', () => settle());
  });
  try {
    await client.subscribeAsync(RESPONSE_TOPIC, { qos: 1 });
    await reconcile();
  } catch (err) {
    client.end(true);
    throw err;
  } finally {
    first = false;
  }

  const periodic = setInterval(() => {
    if (client.connected) reconcile().catch((err: Error) => log.error({ err: err.message }, 'dynamic security: periodic reconcile failed'));
  }, RECONCILE_EVERY_MS);
  periodic.unref();

  return {
    async issue(name, password) {
      const username = mqttDeviceUsername(name);
      // Delete first: a new code for a name replaces whatever login an earlier code (or key) had.
      const [, created] = await run([{ command: 'deleteClient', username }, { command: 'createClient', username, password, textName: `fedge device ${name}` }]);
      if (created!.error) throw refused(created!, `to create the login of "${name}"`);
      log.info({ name, username }, 'dynamic security: device login created');
    },
    async remove(name) {
      await remove(name);
      log.info({ name, username: mqttDeviceUsername(name) }, 'dynamic security: device login deleted (the broker drops its connection)');
    },
    close: () => {
      clearInterval(periodic);
      return client.endAsync();
    },
  };
}
