/** Starts the gRPC server that serves both the agent-facing and the admin-facing service. */
import * as grpc from '@grpc/grpc-js';
import type { Http2Server, ServerHttp2Session } from 'node:http2';
import { FLOW_CONTROL_WINDOW, MAX_FRAME, SERVER_OPTIONS, loadServices } from '@fedge/proto';
import type { Coordinator } from '../../coordinator.js';
import { agentServiceHandlers } from './agent-service.js';
import { adminServiceHandlers } from './admin-service.js';
import { identityAdminHandlers } from './identity-admin.js';
import { moduleLogger } from '../../log.js';
import type { ServerTls } from '../tls.js';

const log = moduleLogger('grpc');

export interface GrpcServerHandle {
  port: number;
  address: string;
  close(): Promise<void>;
}

export async function startGrpcServer(coord: Coordinator, listen: { host: string; port: number }, adminToken?: string, tls?: ServerTls): Promise<GrpcServerHandle> {
  const services = loadServices();
  const server = new grpc.Server(SERVER_OPTIONS);
  server.addService(services.AgentService.service, agentServiceHandlers(coord));
  server.addService(services.AdminService.service, { ...adminServiceHandlers(coord, adminToken), ...identityAdminHandlers(coord, adminToken) });
  const target = `${listen.host}:${listen.port}`;
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(target, serverCredentials(tls), (err, p) => (err ? reject(err) : resolve(p))),
  );
  raiseReceiveWindow(server);
  log.info({ address: `${listen.host}:${port}`, tls: !!tls, mutualTls: !!tls?.clientCa }, 'gRPC listening');
  return {
    port,
    address: `${listen.host}:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.tryShutdown(() => resolve());
        setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, 2000).unref();
      }),
  };
}

/** Plaintext without `tls`; with `tls.clientCa`, clients without a certificate signed by it are refused (mTLS). */
function serverCredentials(tls: ServerTls | undefined): grpc.ServerCredentials {
  if (!tls) return grpc.ServerCredentials.createInsecure();
  return grpc.ServerCredentials.createSsl(tls.clientCa ?? null, [{ private_key: tls.key, cert_chain: tls.cert }], !!tls.clientCa);
}

/**
 * grpc-js has no server option for the HTTP/2 receive window, and its 64 KiB default limits uploads to
 * ~250 MiB/s. Each new session gets a larger connection and stream window; if grpc-js internals change,
 * uploads still work at the default speed.
 */
function raiseReceiveWindow(server: grpc.Server): void {
  const servers = (server as unknown as { http2Servers?: Map<Http2Server, unknown> }).http2Servers;
  if (!(servers instanceof Map)) {
    log.debug('grpc-js internals changed; keeping the default HTTP/2 window');
    return;
  }
  for (const h2 of servers.keys()) {
    h2.on('session', (session: ServerHttp2Session) => {
      try {
        session.setLocalWindowSize(FLOW_CONTROL_WINDOW);
        session.settings({ initialWindowSize: FLOW_CONTROL_WINDOW, maxFrameSize: MAX_FRAME });
      } catch (err) {
        log.debug({ err }, 'could not raise the HTTP/2 window');
      }
    });
  }
}
