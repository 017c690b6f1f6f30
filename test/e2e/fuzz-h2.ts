/**
 * Raw HTTP/2 side of the fuzz test: requests grpc-js clients would never send (bad gRPC framing, compression flags,
 * declared lengths, headers, resets) and raw bytes that are not HTTP/2 at all, against the coordinator's gRPC port.
 */
import http2, { type ClientHttp2Session } from 'node:http2';
import { connect as netConnect } from 'node:net';
import { loadServices } from '@fedge/proto';
import { Gen } from './fuzz-gen.js';

export interface H2Outcome {
  label: string;
  /** 'grpc:N' (a gRPC status), 'http:N' (an HTTP status without one), 'reset', 'closed', or 'client-deadline'. */
  result: string;
  ms: number;
}

const PATHS = [
  '/fedge.v1.AgentService/Join', '/fedge.v1.AgentService/Tasks', '/fedge.v1.AgentService/FetchModel', '/fedge.v1.AgentService/SubmitResult',
  '/fedge.v1.AgentService/Challenge', '/fedge.v1.AdminService/StartRun', '/fedge.v1.AdminService/WatchRun', '/fedge.v1.AdminService/FetchRunModel',
];

/** A gRPC length-prefixed message: flag byte, uint32 BE length, then `body` (the declared length may lie). */
function frame(body: Buffer, compressed = 0, declared = body.length): Buffer {
  const h = Buffer.alloc(5);
  h[0] = compressed;
  h.writeUInt32BE(declared >>> 0, 1);
  return Buffer.concat([h, body]);
}

interface H2Case { label: string; headers: http2.OutgoingHttpHeaders; body: Buffer; end: boolean; resetAfterMs?: number }

function h2Case(g: Gen): H2Case {
  const path = g.pick(PATHS);
  const base: http2.OutgoingHttpHeaders = { ':method': 'POST', ':path': path, 'content-type': 'application/grpc', te: 'trailers' };
  const msg = g.protoGarbage();
  switch (g.int(14)) {
    case 0: return { label: 'content-type text/plain', headers: { ...base, 'content-type': 'text/plain' }, body: frame(msg), end: true };
    case 1: return { label: 'unknown method', headers: { ...base, ':path': g.pick(['/fedge.v1.AgentService/Nope', '/', '/x/y/z', `/${g.hex(300)}`]) }, body: frame(msg), end: true };
    case 2: return { label: 'compressed flag, no encoding', headers: base, body: frame(msg, 1), end: true };
    case 3: return { label: 'gzip garbage', headers: { ...base, 'grpc-encoding': 'gzip' }, body: frame(msg, 1), end: true };
    case 4: return { label: 'unknown encoding', headers: { ...base, 'grpc-encoding': `fz-${g.hex(4)}` }, body: frame(msg, 1), end: true };
    case 5: return { label: 'declared 4 GiB', headers: base, body: frame(msg, 0, 0xffffffff), end: true };
    case 6: return { label: 'declared more, then end', headers: base, body: frame(msg, 0, msg.length + 1 + g.int(1000)), end: true };
    case 7: return { label: 'declared more, open, grpc-timeout 1S', headers: { ...base, 'grpc-timeout': '1S' }, body: frame(msg, 0, msg.length + 100), end: false };
    case 8: return { label: 'two messages', headers: base, body: Buffer.concat([frame(msg), frame(g.protoGarbage())]), end: true };
    case 9: return { label: 'empty body', headers: base, body: Buffer.alloc(0), end: true };
    case 10: return { label: 'GET', headers: { ...base, ':method': 'GET' }, body: Buffer.alloc(0), end: true };
    case 11: return { label: 'bad grpc-timeout', headers: { ...base, 'grpc-timeout': g.pick(['abc', '99999999999H', '-1S', '1']) }, body: frame(msg), end: true };
    case 12: return { label: 'reset mid-request', headers: base, body: frame(g.bytes(g.len(65536)), 0, 1 << 20), end: false, resetAfterMs: g.int(50) };
    default: return { label: 'large header', headers: { ...base, [`x-fz-${g.hex(4)}`]: g.hex(g.pick([9000, 60000])) }, body: frame(msg), end: true };
  }
}

/** Sessions to the gRPC port, replaced when the server closes one (GOAWAY after a protocol error is allowed). */
export class H2Pool {
  private sessions: (ClientHttp2Session | undefined)[];
  private i = 0;
  constructor(private readonly address: string, size = 3) {
    this.sessions = new Array(size).fill(undefined);
  }
  session(): ClientHttp2Session {
    const k = this.i++ % this.sessions.length;
    let s = this.sessions[k];
    if (!s || s.closed || s.destroyed) {
      s = http2.connect(`http://${this.address}`);
      s.on('error', () => undefined);
      this.sessions[k] = s;
    }
    return s;
  }
  close(): void {
    for (const s of this.sessions) s?.destroy();
  }
}

const submitReply = loadServices().AgentService.service.SubmitResult!;

/**
 * Sends one case; resolves at the first gRPC status (headers or trailers), HTTP error status, reset or close. A
 * status OK counts as 'accepted' unless it is a Challenge (nonces are for anyone) or a SubmitResult reply that refuses.
 */
export function runH2Case(pool: H2Pool, g: Gen, deadlineMs: number): Promise<H2Outcome> {
  const c = h2Case(g);
  const t0 = performance.now();
  const path = String(c.headers[':path']);
  return new Promise((resolve) => {
    let settled = false;
    const data: Buffer[] = [];
    const finish = (r: string): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (!req.closed) req.close(http2.constants.NGHTTP2_CANCEL);
      resolve({ label: c.label, result: r, ms: performance.now() - t0 });
    };
    const status = (code: string): void => {
      if (code !== '0' || path.endsWith('/Challenge')) return finish(`grpc:${code}`);
      const body = Buffer.concat(data);
      const accepted = path.endsWith('/SubmitResult') && body.length >= 5 && (submitReply.responseDeserialize(body.subarray(5)) as { accepted: boolean }).accepted === false ? 'refused' : 'ACCEPTED';
      finish(`grpc:0 ${accepted} ${path}`);
    };
    let req: http2.ClientHttp2Stream;
    try {
      req = pool.session().request(c.headers, { endStream: false });
    } catch {
      settled = true;
      return resolve({ label: c.label, result: 'closed', ms: 0 });
    }
    const timer = setTimeout(() => finish('client-deadline'), deadlineMs);
    req.on('response', (h) => {
      if (h['grpc-status'] !== undefined) status(String(h['grpc-status']));
      else if (h[':status'] !== 200) finish(`http:${String(h[':status'])}`);
    });
    req.on('trailers', (h) => {
      if (h['grpc-status'] !== undefined) status(String(h['grpc-status']));
    });
    req.on('data', (d: Buffer) => void data.push(d));
    req.on('error', () => undefined);
    req.on('close', () => finish(req.rstCode ? 'reset' : 'closed'));
    req.write(c.body);
    if (c.end) req.end();
    if (c.resetAfterMs !== undefined) setTimeout(() => finish('reset'), c.resetAfterMs);
  });
}

/**
 * Bytes that are not HTTP/2 on a fresh socket. 'bad-preface' (64+ bytes that are not the client preface) must be
 * closed; 'preface+garbage' may legitimately wait for the rest of a frame its garbage header declared.
 */
export async function rawTcpGarbage(address: string, g: Gen, waitMs: number): Promise<string> {
  const [host, port] = [address.slice(0, address.lastIndexOf(':')), Number(address.slice(address.lastIndexOf(':') + 1))];
  const preface = g.chance(0.5);
  const payload = preface ? Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), g.bytes(1 + g.len(512))]) : g.bytes(64 + g.len(8192));
  const r = await new Promise<string>((resolve) => {
    const sock = netConnect(port, host, () => sock.write(payload));
    const t = setTimeout(() => {
      sock.destroy();
      resolve('left-open');
    }, waitMs);
    sock.on('error', () => undefined);
    sock.resume(); // read to the server's FIN, or 'close' never comes
    sock.on('close', () => {
      clearTimeout(t);
      resolve('closed');
    });
  });
  return `${preface ? 'preface+garbage' : 'bad-preface'}:${r}`;
}
