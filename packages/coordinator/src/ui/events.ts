/**
 * Server-sent events for the dashboard: one run's state as it changes (coalesced, sent when its JSON changed), and
 * the runs list with the agents' summary and one page of them on a shared poll, so pages update without a reload.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Coordinator } from '../coordinator.js';
import { moduleLogger } from '../log.js';
import type { AgentQuery } from '../engine/agent-query.js';
import { agentSummary, agentsEvent, runJson, runsJson } from './api.js';

const log = moduleLogger('ui');

/** A run's updates come per upload; a browser redraws a few times a second at most. */
const RUN_COALESCE_MS = 250;
/** How often the runs list and the agents' summary and pages are re-read for the overview stream. */
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

interface OverviewClient {
  send: (event: string, data: string) => void;
  /** Its agents query as JSON: streams with the same query share one page. */
  key: string;
  query: AgentQuery;
}

/**
 * GET /api/events[?limit=&after=&state=&name=...]: `runs` (as GET /api/runs) and `agents` (the fleet's summary and the
 * stream's one page of agents, as GET /api/agents with the same query) whenever they change. The page, not the fleet:
 * at 10,000 agents the whole list was 2.8 MB of JSON built every poll and sent on every change.
 */
export class OverviewStream {
  private readonly clients = new Set<OverviewClient>();
  private runs: string | undefined;
  /** The latest `agents` event of each query some client streams. */
  private readonly pages = new Map<string, string>();
  private timer: NodeJS.Timeout | undefined;
  private polling = false;

  constructor(private readonly coord: Coordinator) {}

  /** Throws (before anything is written: the caller answers 400) when the query's cursor names no agent. */
  add(req: IncomingMessage, res: ServerResponse, headers: Record<string, string>, query: AgentQuery): void {
    const key = JSON.stringify(query);
    // A new page (next, previous, a filter) is shown at once, not at the next poll.
    const page = this.pages.get(key) ?? JSON.stringify(agentsEvent(this.coord, query, agentSummary(this.coord)));
    const send = openStream(res, headers);
    const client: OverviewClient = { send, key, query };
    this.clients.add(client);
    this.pages.set(key, page);
    if (this.runs !== undefined) send('runs', this.runs);
    send('agents', page);
    const beat = keepAlive(res);
    req.on('close', () => {
      clearInterval(beat);
      this.clients.delete(client);
      if (![...this.clients].some((c) => c.key === key)) this.pages.delete(key);
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
      const runs = JSON.stringify(await runsJson(this.coord));
      if (runs !== this.runs) {
        this.runs = runs;
        for (const c of this.clients) c.send('runs', runs);
      }
      const summary = agentSummary(this.coord);
      const queries = new Map([...this.clients].map((c) => [c.key, c.query]));
      for (const [key, query] of queries) {
        let data: string;
        try {
          data = JSON.stringify(agentsEvent(this.coord, query, summary));
        } catch (err) {
          // Its cursor agent is gone (a restarted coordinator answers the reconnect with 400 instead): keep the last page.
          log.warn({ err, query }, 'dashboard agents page failed');
          continue;
        }
        if (this.pages.get(key) === data) continue;
        this.pages.set(key, data);
        for (const c of this.clients) if (c.key === key) c.send('agents', data);
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
    this.runs = undefined;
    this.pages.clear();
  }
}
