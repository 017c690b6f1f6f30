/** GET /healthz and GET /readyz on the coordinator's and the agent's HTTP listeners: Kubernetes liveness and readiness. */
import type { IncomingMessage, ServerResponse } from 'node:http';

/** Ready, or not with the reason a probe's caller (kubectl describe, a curl) should read. */
export type Readiness = { ready: true } | { ready: false; reason: string };

export const HEALTH_PATHS = ['/healthz', '/readyz'] as const;

/**
 * Answers GET (or HEAD) /healthz with 200 {"live":true} while the process serves HTTP at all, and /readyz with 200
 * {"ready":true} or 503 {"ready":false,"reason":...}; returns false, answering nothing, for any other path.
 * A readiness check that throws is "not ready" with its message: a probe must never get a 500 it cannot explain.
 */
export function answerHealth(req: IncomingMessage, res: ServerResponse, readiness: () => Readiness): boolean {
  const path = (req.url ?? '/').split('?')[0];
  if (path !== '/healthz' && path !== '/readyz') return false;
  const send = (status: number, body: unknown): void => {
    res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end(req.method === 'HEAD' ? undefined : `${JSON.stringify(body)}\n`);
  };
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    send(405, { error: `use GET for ${path}` });
    return true;
  }
  if (path === '/healthz') {
    send(200, { live: true });
    return true;
  }
  let r: Readiness;
  try {
    r = readiness();
  } catch (err) {
    r = { ready: false, reason: `readiness check failed: ${(err as Error).message}` };
  }
  send(r.ready ? 200 : 503, r);
  return true;
}
