/** Starts the MQTT side of `fedge serve`: the embedded broker (default) or a connection to an external one. */
import { FedgeError, ValidationError, parseHostPort } from '@fedge/proto';
import type { Coordinator } from '../../coordinator.js';
import { moduleLogger } from '../../log.js';
import { redactUrl, startMqttBridge, type MqttBridgeHandle } from './agent-bridge.js';
import { startEmbeddedBroker, type EmbeddedBroker } from './broker.js';
import type { ServerTls } from '../tls.js';

const log = moduleLogger('mqtt');
export const DEFAULT_MQTT_LISTEN = '127.0.0.1:1883';

export interface MqttStartOptions {
  /** Embedded broker address; absent: DEFAULT_MQTT_LISTEN, and a taken default port only logs a warning. */
  listen?: string;
  /** External broker URL; replaces the embedded broker. */
  broker?: string;
  joinToken?: string;
  /** The embedded broker listens with TLS (mqtts://); ignored with an external broker. */
  tls?: ServerTls;
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
    const bridge = await startMqttBridge(coord, { url: u.toString(), ...(username ? { username } : {}), ...(password ? { password } : {}) });
    log.info({ broker: bridge.url }, `MQTT transport on external broker ${bridge.url}`);
    return { url: bridge.url, close: () => bridge.close() };
  }
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
