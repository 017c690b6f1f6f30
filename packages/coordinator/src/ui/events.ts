/**
 * Server-sent events for the dashboard: one run's state as it changes (coalesced, sent when its JSON changed), and
 * the runs list with the agents on a shared poll, so pages update without a reload.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Coordinator } from '../coordinator.js';
import { moduleLogger } from '../log.js';
import { agentsJson, runJson, runsJson } from './api.js';

const log = moduleLogger('ui');

/** A run's updates come per upload; a browser redraws a few times a second at most. */
const RUN_COALESCE_MS = 250;
/** How often the runs list and the agents are re-read for the overview stream. */
const OVERVIEW_POLL_MS = 2_000;
/** A comment line now and then keeps proxies (Traefik's idle timeout) from closing a quiet stream. */
const KEEPALIVE_MS = 15_000;

export function openStream(res: ServerResponse, headers: Record<string, string>): (event: string, data: string) => void {
  res.writeHead(200, { ...headers, 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', connection: 'keep-alive' });
  res.write('retry: 2000\n\n');
  return (event, data) => void res.write(`event: ${event}\ndata: ${data}\n\n`);
}

function keepAlive(res: ServerResponse): NodeJS.Timeout {
  return setInterval(() => res.write(': keepalive\n\n'), KEEPALIVE_MS);
}

/**
 * GET /api/runs/RUN/events: `run` events carrying what GET /api/runs/RUN returns, then `end` when the run is over.
 * An unknown run throws before anything is written (the caller answers 404).
 */
export async function streamRun(coord: Coordinator, id: string, req: IncomingMessage, res: ServerResponse, headers: Record<string, string>): Promise<void> {
  let last = JSON.stringify(await runJson(coord, id));
  const send = openStream(res, headers);
  send('run', last);
  let off: (() => void) | undefined;
  let timer: NodeJS.Timeout | undefined;
  let sending: Promise<void> = Promise.resolve();
  let closed = false;
  const beat = keepAlive(res);
  const close = (): void => {
    closed = true;
    off?.();
    clearTimeout(timer);
    clearInterval(beat);
  };
  req.on('close', close);
  const finish = (): void => {
    send('end', '{}');
    close();
    res.end();
  };
  // getRun, not the watcher's view: an event must equal GET /api/runs/RUN (signatures included).
  const push = (ended: boolean): void => {
    sending = sending.then(async () => {
      if (closed) return;
      try {
        const body = JSON.stringify(await runJson(coord, id));
        if (body !== last) send('run', body);
        last = body;
        if (ended) finish();
      } catch (err) {
        log.warn({ err, runId: id }, 'dashboard run stream failed');
        close();
        res.end();
      }
    });
  };
  try {
    off = coord.watchRun(id, (_view, ended) => {
      if (ended) {
        clearTimeout(timer);
        push(true);
      } else if (!timer)
        timer = setTimeout(() => {
          timer = undefined;
          push(false);
        }, RUN_COALESCE_MS);
    });
  } catch {
    // Not active (it ended, or it is not running on this coordinator): the record sent above is final.
    finish();
  }
}

/** GET /api/events: `runs` (as GET /api/runs) and `agents` (as GET /api/agents) whenever they change. */
export class OverviewStream {
  private readonly clients = new Set<(event: string, data: string) => void>();
  private readonly latest = new Map<string, string>();
  private timer: NodeJS.Timeout | undefined;
  private polling = false;

  constructor(private readonly coord: Coordinator) {}

  add(req: IncomingMessage, res: ServerResponse, headers: Record<string, string>): void {
    const send = openStream(res, headers);
    this.clients.add(send);
    for (const [event, data] of this.latest) send(event, data);
    const beat = keepAlive(res);
    req.on('close', () => {
      clearInterval(beat);
      this.clients.delete(send);
      if (this.clients.size === 0) this.stop();
    });
    if (!this.timer) {
      this.timer = setInterval(() => void this.poll(), OVERVIEW_POLL_MS);
      void this.poll();
    }
  }

  private async poll(): Promise<void> {
    if (this.polling) return;
    this.polling = true;
    try {
      const next: [string, string][] = [['runs', JSON.stringify(await runsJson(this.coord))], ['agents', JSON.stringify(agentsJson(this.coord))]];
      for (const [event, data] of next) {
        if (this.latest.get(event) === data) continue;
        this.latest.set(event, data);
        for (const send of this.clients) send(event, data);
      }
    } catch (err) {
      log.warn({ err }, 'dashboard overview poll failed');
    } finally {
      this.polling = false;
    }
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    this.latest.clear();
  }
}
