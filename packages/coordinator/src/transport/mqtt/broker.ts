/** The embedded MQTT broker (aedes) of `fedge serve`: agents admitted by join token, each confined to its own topics. */
import { createServer, type Server, type Socket } from 'node:net';
import { MQTT_MAX_PACKET_BYTES, limitPackets } from './packet-limit.js';
import { createServer as createTlsServer } from 'node:tls';
import { Duplex } from 'node:stream';
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { Aedes, type AuthenticateError } from 'aedes';
import { MQTT_COORDINATOR_USERNAME, agentMayPublish, agentMaySubscribe, isAgentClientId } from '@fedge/proto';
import { moduleLogger } from '../../log.js';
import type { ServerTls } from '../tls.js';

const log = moduleLogger('mqtt-broker');

export interface EmbeddedBrokerOptions {
  host: string;
  port: number;
  /** When set, agents must present it as their MQTT password (or a credential `admit` accepts). */
  joinToken?: string;
  /** Enrolled devices' MQTT passwords (identity.ts mqttIdentityPassword / mqttEnrollPassword), checked when the token does not match. */
  admit?: (clientId: string, password: string) => boolean;
  /** Listen with TLS (mqtts://); with `clientCa`, clients must present a certificate it signed. */
  tls?: ServerTls;
}

export interface EmbeddedBroker {
  /** HOST:PORT actually bound (port 0 picks a free one). */
  address: string;
  /** mqtt:// URL the coordinator's own client connects to (loopback when bound to a wildcard address). */
  localUrl: string;
  /** Credentials only this process knows: the coordinator's client is the only one allowed every topic. */
  coordinatorCredentials: { username: string; password: string };
  /**
   * A connection into the broker inside this process, for the coordinator's own client: one TCP hop, one MQTT
   * encode and one parse less per chunk than going through the listening socket.
   */
  connectInProcess(): Duplex;
  /** The remote address an agent client connected from (the key of the join rate limit); undefined once it left. */
  remoteAddress(clientId: string): string | undefined;
  /** Called when an agent client disconnects, however it went (its will covers the same for external brokers). */
  onClientGone(fn: (clientId: string) => void): void;
  close(): Promise<void>;
}

const authError = (message: string, returnCode: number): AuthenticateError => Object.assign(new Error(message), { returnCode }) as AuthenticateError;

function sameSecret(given: Buffer | undefined, expected: string): boolean {
  const e = Buffer.from(expected, 'utf8');
  return !!given && given.length === e.length && timingSafeEqual(given, e);
}

export async function startEmbeddedBroker(opts: EmbeddedBrokerOptions): Promise<EmbeddedBroker> {
  const secret = randomBytes(24).toString('hex');
  const coordinators = new Set<string>();
  const goneListeners: ((clientId: string) => void)[] = [];
  const addresses = new Map<string, string>();
  const broker = await Aedes.createBroker({
    // aedes' default (100) makes mqemitter queue messages once 100 are in flight, and it drains that queue by
    // recursion: each queued message finishing synchronously (e.g. a $SYS disconnect notice nobody subscribes to)
    // starts the next on the same stack. A fleet of thousands disconnecting while deliveries waited on a busy
    // subscriber overflowed the stack (RangeError in qlobber, the coordinator died). 0 never queues; the messages
    // are held either way (the queue had no bound), so memory is unchanged. Latest mqemitter (7.1.0) still recurses;
    // its fix (mcollina/mqemitter#204) is unmerged.
    concurrency: 0,
    authenticate: (client, username, password, done) => {
      if (username === MQTT_COORDINATOR_USERNAME) {
        if (client.id.startsWith('fedge-coordinator-') && sameSecret(password, secret)) {
          coordinators.add(client.id);
          return done(null, true);
        }
        log.warn({ clientId: client.id }, 'MQTT client refused: bad coordinator credentials');
        return done(authError('not authorized', 5), false);
      }
      if (!isAgentClientId(client.id)) {
        log.warn({ clientId: client.id.slice(0, 80) }, 'MQTT client refused: client id is not an agent id (fa-...)');
        return done(authError('identifier rejected', 2), false);
      }
      // The token is compared, never logged.
      const remote = (client.conn as { remoteAddress?: string } | undefined)?.remoteAddress;
      if (remote) addresses.set(client.id, remote);
      if (opts.joinToken !== undefined && !sameSecret(password, opts.joinToken)) {
        if (password && opts.admit?.(client.id, password.toString('utf8'))) return done(null, true);
        log.warn({ clientId: client.id }, 'MQTT client refused: missing or wrong join token');
        return done(authError('bad username or password', 4), false);
      }
      done(null, true);
    },
    authorizePublish: (client, packet, done) => {
      if (!client || coordinators.has(client.id)) return done(null);
      if (!packet.retain && agentMayPublish(client.id, packet.topic)) return done(null);
      log.warn({ clientId: client.id, topic: packet.topic.slice(0, 200) }, 'MQTT publish refused: not this agent\'s request topic');
      done(new Error('publish not authorized'));
    },
    authorizeSubscribe: (client, sub, done) => {
      if (coordinators.has(client.id) || agentMaySubscribe(client.id, sub.topic)) return done(null, sub);
      log.warn({ clientId: client.id, topic: sub.topic.slice(0, 200) }, 'MQTT subscribe refused: not this agent\'s topic');
      done(null, null); // a negative SUBACK (0x80), the connection stays up
    },
  });
  broker.on('clientDisconnect', (client) => {
    addresses.delete(client.id);
    if (coordinators.delete(client.id)) return;
    for (const fn of goneListeners) fn(client.id);
  });
  const tls = opts.tls;
  const accept = (socket: Socket): void => {
    broker.handle(limitPackets(socket, MQTT_MAX_PACKET_BYTES, (reason) => log.warn({ remote: socket.remoteAddress, reason }, 'MQTT connection closed: packet too large')));
  };
  const server: Server = tls
    ? createTlsServer({ cert: tls.cert, key: tls.key, ...(tls.clientCa ? { ca: tls.clientCa, requestCert: true, rejectUnauthorized: true } : {}) }, accept)
    : createServer(accept);
  // A failed handshake (a plaintext client, a client refusing our certificate) is that client's problem; one line
  // at debug level, the listener carries on.
  if (tls) server.on('tlsClientError', (err) => log.debug({ err: err.message }, 'MQTT TLS handshake failed'));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => resolve());
  });
  const port = (server.address() as { port: number }).port;
  const host = opts.host.includes(':') && !opts.host.startsWith('[') ? `[${opts.host}]` : opts.host;
  const local = opts.host === '0.0.0.0' ? '127.0.0.1' : opts.host === '::' || opts.host === '[::]' ? '[::1]' : host;
  const address = `${host}:${port}`;
  log.info({ address, requiresJoinToken: opts.joinToken !== undefined, tls: !!tls, mutualTls: !!tls?.clientCa }, 'embedded MQTT broker listening');
  return {
    address,
    localUrl: `mqtt://${local}:${port}`,
    coordinatorCredentials: { username: MQTT_COORDINATOR_USERNAME, password: secret },
    onClientGone: (fn) => void goneListeners.push(fn),
    remoteAddress: (clientId) => addresses.get(clientId),
    connectInProcess: () => {
      const [ours, theirs] = duplexPair();
      broker.handle(theirs);
      return ours;
    },
    close: () =>
      new Promise<void>((resolve) => {
        broker.close(() => server.close(() => resolve()));
        setTimeout(resolve, 2000).unref();
      }),
  };
}

/**
 * Two connected in-memory duplex streams (Node 20 has no stream.duplexPair). No backpressure between them: every
 * transfer through the broker is already bounded by its credit window (mqtt-frame.ts).
 */
function duplexPair(): [Duplex, Duplex] {
  const make = (peer: () => Duplex): Duplex =>
    new Duplex({
      write(chunk: Buffer, _enc, cb) {
        peer().push(chunk);
        cb();
      },
      final(cb) {
        peer().push(null);
        cb();
      },
      read() {},
      destroy(err, cb) {
        const p = peer();
        if (!p.destroyed) p.destroy();
        cb(err);
      },
    });
  const a: Duplex = make(() => b);
  const b: Duplex = make(() => a);
  return [a, b];
}
