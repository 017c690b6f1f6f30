/**
 * The agent's readiness for GET /readyz: joined to the coordinator (or reconnecting for less than a grace period),
 * and with --serve a model version loaded. Observed by wrapping the connection factory, so the agent needs no hooks.
 */
import type { Readiness } from '@fedge/proto';
import { overrideConnection, tapTaskStream, type CoordinatorConnection } from './transport/connection.js';

/** How long an agent that lost its coordinator stays ready while it reconnects (its backoff tops out at 15 s). */
export const DEFAULT_RECONNECT_GRACE_MS = 60_000;

export class AgentHealth {
  private joined = false;
  private connected = false;
  private lostAt: number | undefined;
  private lastError: string | undefined;

  constructor(private readonly opts: { graceMs?: number; servedVersion?: () => string | undefined; now?: () => number } = {}) {}

  readiness(): Readiness {
    const now = this.opts.now?.() ?? Date.now();
    const grace = this.opts.graceMs ?? DEFAULT_RECONNECT_GRACE_MS;
    const why = this.lastError ? ` (last error: ${this.lastError})` : '';
    if (!this.joined) return { ready: false, reason: `not joined to the coordinator yet${why}` };
    if (!this.connected && this.lostAt !== undefined && now - this.lostAt > grace)
      return { ready: false, reason: `disconnected from the coordinator for ${Math.round((now - this.lostAt) / 1000)} s, over the ${grace / 1000} s reconnect grace${why}` };
    if (this.opts.servedVersion && this.opts.servedVersion() === undefined) return { ready: false, reason: 'serving: no model version loaded yet' };
    return { ready: true };
  }

  private lost(err?: unknown): void {
    if (err !== undefined) this.lastError = (err as Error).message ?? String(err);
    if (!this.connected) return;
    this.connected = false;
    this.lostAt = this.opts.now?.() ?? Date.now();
  }

  /** `connect`, with every connection it makes observed: a join opens the session, a task stream's end closes it. */
  observe(connect: () => CoordinatorConnection): () => CoordinatorConnection {
    return () => {
      const conn = connect();
      return overrideConnection(conn, {
        join: async (req) => {
          try {
            const reply = await conn.join(req);
            [this.joined, this.connected, this.lostAt, this.lastError] = [true, true, undefined, undefined];
            return reply;
          } catch (err) {
            this.lost(err);
            throw err;
          }
        },
        tasks: (agentId, sessionToken) => tapTaskStream(conn.tasks(agentId, sessionToken), { error: (err) => this.lost(err), end: () => this.lost() }),
        close: () => {
          this.lost();
          conn.close();
        },
      });
    };
  }
}
