/**
 * `fedge serve --ui HOST:PORT`: the web dashboard. Serves the page's static files, the read API (the CLI's JSON),
 * server-sent events and the admin-token-guarded model actions over HTTP, or HTTPS with the serve TLS flags.
 */
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { FedgeError, ValidationError, listenOn } from '@fedge/proto';
import type { Coordinator } from '../coordinator.js';
import { moduleLogger } from '../log.js';
import type { ServerTls } from '../transport/tls.js';
import { agentStreamQuery, agentsJson, authorizeWrite, modelsJson, parsePromoteBody, participantsJson, promote, rollback, runJson, runsJson } from './api.js';
import { hasAppBundle, loadAssets, type Asset } from './assets.js';
import { OverviewStream, streamRun } from './events.js';
import { isLoopbackHost } from './options.js';

const log = moduleLogger('ui');

/**
 * On every response. The page loads only its own files: no inline script or style (uPlot sizes its elements through
 * the CSSOM, which CSP allows), no framing (clickjacking of the promote buttons), no MIME sniffing.
 */
export const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
};

/** HTTP status of a FedgeError code; the body always carries the code and the message (which names the fix). */
const STATUS: Record<string, number> = { E_AUTH: 401, E_VALIDATION: 400, E_NOT_FOUND: 404, E_REJECTED: 409, E_STORAGE: 507 };

/** Bodies of write actions are a few numbers. */
const MAX_BODY = 16 * 1024;

export interface UiServer {
  /** http(s)://HOST:PORT actually listened on. */
  url: string;
  close(): Promise<void>;
}

export interface UiServerOptions {
  /** FEDGE_ADMIN_TOKEN: required by write actions (without one they are refused). */
  adminToken?: string | undefined;
  tls?: ServerTls | undefined;
  /** Tests: another web folder (static/, dist/). */
  webDir?: string;
}

function send(res: ServerResponse, status: number, body: string | Buffer, type: string, extra: Record<string, string> = {}): void {
  res.writeHead(status, { ...SECURITY_HEADERS, 'content-type': type, 'cache-control': 'no-store', ...extra }).end(body);
}

function sendJson(res: ServerResponse, status: number, v: unknown): void {
  send(res, status, JSON.stringify(v), 'application/json; charset=utf-8');
}

function sendError(res: ServerResponse, err: unknown): void {
  const code = err instanceof FedgeError ? err.code : 'E_INTERNAL';
  const status = STATUS[code] ?? 500;
  if (status >= 500) log.error({ err }, 'dashboard request failed');
  if (res.headersSent) return void res.end();
  sendJson(res, status, { error: { code, message: (err as Error).message } });
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  if (!/^application\/json\b/i.test(req.headers['content-type'] ?? '')) throw new ValidationError('content-type: send the body as application/json');
  let size = 0;
  const chunks: Buffer[] = [];
  for await (const c of req as AsyncIterable<Buffer>) {
    size += c.length;
    if (size > MAX_BODY) throw new ValidationError(`body: larger than ${MAX_BODY} bytes`);
    chunks.push(c);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}');
  } catch (err) {
    throw new ValidationError(`body: not valid JSON (${(err as Error).message})`);
  }
}

type Route = (m: RegExpExecArray, req: IncomingMessage, res: ServerResponse, url: URL) => Promise<void> | void;

export async function startUiServer(coord: Coordinator, listen: { host: string; port: number }, opts: UiServerOptions = {}): Promise<UiServer> {
  const assets: Map<string, Asset> = loadAssets(opts.webDir);
  if (!hasAppBundle(assets)) log.warn('dashboard page not built (packages/coordinator/web/dist missing): run npx tsc -b; the API still works');
  const overview = new OverviewStream(coord);
  const streams = new Set<ServerResponse>();
  const track = (res: ServerResponse): void => {
    streams.add(res);
    res.on('close', () => streams.delete(res));
  };
  const id = (m: RegExpExecArray): string => decodeURIComponent(m[1]!);
  const write = (fn: (m: RegExpExecArray, req: IncomingMessage) => Promise<unknown>): Route => async (m, req, res) => {
    // The token first: an unauthenticated caller learns nothing about runs or versions from the answer.
    authorizeWrite(req.headers.authorization, opts.adminToken);
    sendJson(res, 200, await fn(m, req));
  };
  const routes: Record<'GET' | 'POST', [RegExp, Route][]> = {
    GET: [
      [/^\/api\/runs$/, async (_m, _q, res) => sendJson(res, 200, await runsJson(coord))],
      [/^\/api\/runs\/([^/]+)$/, async (m, _q, res) => sendJson(res, 200, await runJson(coord, id(m)))],
      [/^\/api\/runs\/([^/]+)\/participants$/, async (m, _q, res, url) => sendJson(res, 200, await participantsJson(coord, id(m), url.searchParams))],
      [/^\/api\/runs\/([^/]+)\/events$/, async (m, req, res) => {
        track(res);
        await streamRun(coord, id(m), req, res, SECURITY_HEADERS);
      }],
      [/^\/api\/agents$/, (_m, _q, res, url) => sendJson(res, 200, agentsJson(coord, url.searchParams))],
      [/^\/api\/models$/, async (_m, _q, res, url) => sendJson(res, 200, await modelsJson(coord, url.searchParams.get('run') ?? undefined))],
      [/^\/api\/events$/, (_m, req, res, url) => {
        overview.add(req, res, SECURITY_HEADERS, agentStreamQuery(url.searchParams));
        track(res);
      }],
    ],
    POST: [
      [/^\/api\/runs\/([^/]+)\/promote$/, write(async (m, req) => promote(coord, id(m), parsePromoteBody(await readJson(req))))],
      [/^\/api\/runs\/([^/]+)\/rollback$/, write(async (m) => rollback(coord, id(m)))],
    ],
  };

  // DNS rebinding: a site whose name a browser resolved to 127.0.0.1 would be same-origin with a loopback dashboard
  // and could read its API. Bound to loopback, it answers only requests addressed to a loopback name.
  const loopbackOnly = isLoopbackHost(listen.host);
  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const hostName = (req.headers.host ?? '').replace(/:\d+$/, '');
    if (loopbackOnly && !isLoopbackHost(hostName))
      return sendJson(res, 421, { error: { code: 'E_VALIDATION', message: `host: "${hostName}" is not an address of this dashboard, which listens on loopback; open it as http://127.0.0.1:PORT/ (or bind --ui to the address you use)` } });
    const url = new URL(req.url ?? '/', 'http://dashboard');
    const method = req.method === 'HEAD' ? 'GET' : req.method;
    if (method === 'GET' && !url.pathname.startsWith('/api/')) {
      const a = assets.get(url.pathname);
      if (a) return send(res, 200, a.body, a.type, { 'cache-control': 'no-cache' });
      return send(res, 404, `not found: ${url.pathname}; the dashboard is at /\n`, 'text/plain; charset=utf-8');
    }
    for (const [re, route] of routes[method as 'GET' | 'POST'] ?? []) {
      const m = re.exec(url.pathname);
      if (m) return route(m, req, res, url);
    }
    const known = [...routes.GET, ...routes.POST].some(([re]) => re.test(url.pathname));
    sendJson(res, known ? 405 : 404, { error: { code: 'E_NOT_FOUND', message: known ? `${req.method} ${url.pathname}: method not allowed` : `no API at ${url.pathname}` } });
  };

  const onRequest = (req: IncomingMessage, res: ServerResponse): void => void handle(req, res).catch((err: unknown) => sendError(res, err));
  const tls = opts.tls;
  // Mutual TLS applies here as on gRPC: with --tls-client-ca the browser must present a certificate from that CA.
  const server: Server = tls
    ? createHttpsServer({ cert: tls.cert, key: tls.key, ...(tls.clientCa ? { ca: tls.clientCa, requestCert: true, rejectUnauthorized: true } : {}) }, onRequest)
    : createHttpServer(onRequest);
  const address = await listenOn(server, listen.host, listen.port);
  return {
    url: `${tls ? 'https' : 'http'}://${address}`,
    close: () =>
      new Promise<void>((resolve) => {
        overview.stop();
        // Event streams never end by themselves: end them so close() returns.
        for (const res of streams) res.end();
        server.close(() => resolve());
        server.closeIdleConnections();
      }),
  };
}
