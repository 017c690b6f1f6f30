/** Starts the MQTT side of `fedge serve`: the embedded broker (default) or a connection to an external one. */
import { z } from 'zod';
import { FedgeError, ValidationError, parseHostPort, parseOrThrow } from '@fedge/proto';
import type { Coordinator } from '../../coordinator.js';
import { moduleLogger } from '../../log.js';
import { redactUrl, startMqttBridge, type MqttBridgeHandle } from './agent-bridge.js';
import { startEmbeddedBroker, type EmbeddedBroker } from './broker.js';
import { startDynsecAdmin } from './dynsec.js';
import type { ServerTls } from '../tls.js';

const log = moduleLogger('mqtt');
export const DEFAULT_MQTT_LISTEN = '127.0.0.1:1883';

/**
 * `--mqtt-dynsec` (or FEDGE_MQTT_DYNSEC=true|false|1|0): only with an external broker, whose dynamic security plugin
 * then holds one login per enrolled device. A bad env value or a missing --mqtt-broker names the flag and the fix.
 */
const dynsecOptionSchema = z
  .object({
    // Keys are the flags, so an error reads "--mqtt-dynsec: ...".
    '--mqtt-dynsec': z.union([z.boolean(), z.enum(['true', 'false', '1', '0', '']).transform((v) => v === 'true' || v === '1')], { error: 'FEDGE_MQTT_DYNSEC must be true, false, 1 or 0' }).optional(),
    '--mqtt-broker': z.string().optional(),
    '--no-mqtt': z.boolean(),
  })
  .refine((o) => !o['--mqtt-dynsec'] || (o['--mqtt-broker'] !== undefined && !o['--no-mqtt']), {
    path: ['--mqtt-dynsec'],
    message: 'needs --mqtt-broker mqtt://USER:PASS@HOST:PORT, a Mosquitto with the dynamic security plugin (deploy/mosquitto/mosquitto-dynsec.conf); the embedded broker checks enrolled devices\' keys itself',
  });

export function parseDynsecOption(opts: { mqttDynsec?: boolean | undefined; mqttBroker?: string | undefined; mqtt?: boolean | undefined }): boolean {
  return !!parseOrThrow(dynsecOptionSchema, { '--mqtt-dynsec': opts.mqttDynsec ?? process.env.FEDGE_MQTT_DYNSEC, '--mqtt-broker': opts.mqttBroker, '--no-mqtt': opts.mqtt === false })['--mqtt-dynsec'];
}

export interface MqttStartOptions {
  /** Embedded broker address; absent: DEFAULT_MQTT_LISTEN, and a taken default port only logs a warning. */
  listen?: string;
  /** External broker URL; replaces the embedded broker. */
  broker?: string;
  joinToken?: string;
  /** The embedded broker listens with TLS (mqtts://); ignored with an external broker. */
  tls?: ServerTls;
  /** With `broker`: keep a broker login per enrolled device in Mosquitto's dynamic security plugin (dynsec.ts). */
  dynsec?: boolean;
}

export interface MqttTransport {
  /** The URL agents use (embedded broker) or the external broker's, without credentials. */
  url: string;
  close(): Promise<void>;
}

export async function startMqtt(coord: Coordinator, opts: MqttStartOptions): Promise<MqttTransport | undefined> {
  if (opts.broker !== undefined) {
    if (opts.listen !== undefined) throw new ValidationError('--mqtt-listen and --mqtt-broker exclude each other: embed a broker or use an external one');
    let u: URL;
    try {
      u = new URL(opts.broker);
    } catch {
      throw new ValidationError(`--mqtt-broker: "${redactUrl(opts.broker)}" is not a URL (e.g. mqtt://broker.local:1883)`);
    }
    if (u.protocol !== 'mqtt:' && u.protocol !== 'mqtts:') throw new ValidationError(`--mqtt-broker: scheme must be mqtt:// or mqtts://, got ${u.protocol}//`);
    const username = decodeURIComponent(u.username) || process.env.FEDGE_MQTT_USERNAME;
    const password = decodeURIComponent(u.password) || process.env.FEDGE_MQTT_PASSWORD;
    u.username = '';
    u.password = '';
    const auth = { ...(username ? { username } : {}), ...(password ? { password } : {}) };
    const ids = coord.gate.identities;
    // Before the bridge: a misconfigured broker stops the start here, and the first reconcile (revokes made while the
    // coordinator was away from the broker) is done before any agent can join through it.
    const dynsec = opts.dynsec ? await startDynsecAdmin(u.toString(), auth, { mayLogIn: (name) => ids.mayLogIn(name), enrolledNames: () => ids.enrolledNames() }, opts.joinToken) : undefined;
    if (dynsec) ids.useBrokerLogins(dynsec);
    let bridge: MqttBridgeHandle;
    try {
      bridge = await startMqttBridge(coord, { url: u.toString(), ...auth });
    } catch (err) {
      await dynsec?.close();
      throw err;
    }
    log.info({ broker: bridge.url, dynsec: !!dynsec }, `MQTT transport on external broker ${bridge.url}`);
    return {
      url: bridge.url,
      close: async () => {
        await bridge.close();
        await dynsec?.close();
      },
    };
  }
  if (opts.dynsec) throw new ValidationError('--mqtt-dynsec: needs --mqtt-broker (a Mosquitto with the dynamic security plugin); the embedded broker checks enrolled devices\' keys itself');
  const hp = parseHostPort(opts.listen ?? DEFAULT_MQTT_LISTEN, '--mqtt-listen', 1883);
  let broker: EmbeddedBroker;
  try {
    broker = await startEmbeddedBroker({ host: hp.host, port: hp.port, ...(opts.joinToken ? { joinToken: opts.joinToken } : {}), ...(opts.tls ? { tls: opts.tls } : {}),
      admit: (clientId, password) => coord.gate.identities.admitMqtt(clientId, password),
    });
  } catch (err) {
    if (opts.listen === undefined && (err as { code?: string }).code === 'EADDRINUSE') {
      log.warn(`MQTT off: the default ${DEFAULT_MQTT_LISTEN} is in use (another broker?); pass --mqtt-listen HOST:PORT, --mqtt-broker URL or --no-mqtt`);
      return undefined;
    }
    throw new FedgeError('E_CONFIG', `--mqtt-listen ${opts.listen ?? DEFAULT_MQTT_LISTEN}: ${(err as Error).message}`);
  }
  let bridge: MqttBridgeHandle;
  try {
    bridge = await startMqttBridge(coord, { url: broker.localUrl, ...broker.coordinatorCredentials, stream: () => broker.connectInProcess(), sourceOf: (clientId) => broker.remoteAddress(clientId) });
  } catch (err) {
    await broker.close();
    throw err;
  }
  broker.onClientGone((clientId) => bridge.clientGone(clientId, 'connection closed'));
  const url = `${opts.tls ? 'mqtts' : 'mqtt'}://${broker.address}`;
  log.info({ address: broker.address }, `MQTT broker on ${url}`);
  return {
    url,
    close: async () => {
      await bridge.close();
      await broker.close();
    },
  };
}
