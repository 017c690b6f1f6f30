/** Shared set-up of the gRPC transport tests: a real coordinator and server with one joined agent, and call outcomes. */
import * as grpc from '@grpc/grpc-js';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { CHANNEL_OPTIONS, loadServices, type JoinReplyMsg } from '@fedge/proto';
import { Coordinator } from '../../coordinator.js';
import { startGrpcServer, type GrpcServerHandle } from './server.js';

export type Client = grpc.Client & Record<string, (...args: unknown[]) => unknown>;

export interface JoinedServer {
  coord: Coordinator;
  server: GrpcServerHandle;
  agents: Client;
  admin: Client;
  /** The agent `agentName` joined with join token 'join-tok'; the admin token is 'admin-tok'. */
  joined: JoinReplyMsg;
  close(): Promise<void>;
}

/** A coordinator on a fresh data dir (`dirPrefix`), its gRPC server on a loopback port, and one agent joined. */
export async function startJoinedServer(dirPrefix: string, agentName: string): Promise<JoinedServer> {
  const coord = new Coordinator({ dataDir: mkdtempSync(path.join(tmpdir(), dirPrefix)), joinToken: 'join-tok' });
  const server = await startGrpcServer(coord, { host: '127.0.0.1', port: 0 }, 'admin-tok');
  const { AgentService, AdminService } = loadServices();
  const agents = new AgentService(server.address, grpc.credentials.createInsecure(), CHANNEL_OPTIONS) as unknown as Client;
  const admin = new AdminService(server.address, grpc.credentials.createInsecure(), CHANNEL_OPTIONS) as unknown as Client;
  const close = async (): Promise<void> => {
    agents.close();
    admin.close();
    await server.close();
    await coord.close();
  };
  try {
    const joined = await new Promise<JoinReplyMsg>((resolve, reject) =>
      agents.Join!({ name: agentName, agentId: '', joinToken: 'join-tok', backend: 'cpu', agentVersion: 't', numExamples: 1, labels: {} },
        (err: grpc.ServiceError | null, r: JoinReplyMsg) => (err ? reject(err) : resolve(r))),
    );
    return { coord, server, agents, admin, joined, close };
  } catch (err) {
    await close();
    throw err;
  }
}

export interface Outcome { code: grpc.status; details: string; ms: number }

/** Calls a unary method (10 s deadline) and resolves with the status that ended it and the reply, if any. */
export function unaryOutcome<R = unknown>(client: Client, method: string, req: unknown, md = new grpc.Metadata()): Promise<Outcome & { reply?: R }> {
  const t0 = Date.now();
  return new Promise((resolve) => {
    client[method]!(req, md, { deadline: Date.now() + 10_000 }, (err: grpc.ServiceError | null, reply?: R) =>
      resolve({ code: err?.code ?? grpc.status.OK, details: err?.details ?? '', ms: Date.now() - t0, ...(reply ? { reply } : {}) }));
  });
}
