/** Parses coordinator addresses (grpc://HOST:PORT or HOST:PORT) and listen addresses. */
import type { AddressInfo, Server } from 'node:net';
import { ValidationError } from './errors.js';

export interface HostPort { host: string; port: number }

export function parseHostPort(value: string, field: string, defaultPort?: number): HostPort {
  const v = value.replace(/^grpc:\/\//, '').replace(/\/$/, '');
  const m = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+)(?::(\d{1,5}))?$/.exec(v);
  const port = m?.[2] !== undefined ? Number(m[2]) : defaultPort;
  if (!m || port === undefined || port > 65535)
    throw new ValidationError(`${field}: "${value}" is not HOST:PORT (e.g. grpc://127.0.0.1:7070)`);
  return { host: m[1]!, port };
}

/**
 * A coordinator URL for gRPC clients: grpc://HOST:PORT or bare HOST:PORT is plaintext, grpcs://HOST:PORT is TLS.
 * `tls` is true only for grpcs:// (callers may also turn TLS on with a CA file).
 */
export function parseGrpcUrl(value: string, field: string, defaultPort?: number): HostPort & { tls: boolean } {
  const tls = /^grpcs:\/\//i.test(value);
  return { ...parseHostPort(tls ? value.replace(/^grpcs:\/\//i, '') : value, field, defaultPort), tls };
}

/** The grpc-js target string for a host and port. */
export function grpcTarget(hp: HostPort): string {
  return `${hp.host}:${hp.port}`;
}

/**
 * Starts `server` (http, https or net) on host:port, brackets of an IPv6 host stripped, and resolves with the bound
 * address as HOST:PORT (IPv6 bracketed, the real port when 0 was asked); a bind error rejects instead of throwing later.
 */
export function listenOn(server: Server, host: string, port: number): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host.replace(/^\[|\]$/g, ''), () => {
      server.off('error', reject);
      const a = server.address() as AddressInfo;
      resolve(`${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`);
    });
  });
}
