/**
 * `fedge-agent --simulate N`: N virtual agents in one process, each a real Agent with its own connection, name,
 * partition and session, so one machine can stand in for a fleet of thousands when measuring a coordinator.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { Agent } from './agent.js';
import type { TaskExecutor } from './executor.js';
import type { LocalData } from './data.js';
import type { CoordinatorConnection } from './transport/connection.js';
import { moduleLogger } from './log.js';

const log = moduleLogger('fleet');

export interface FleetOptions {
  /** How many virtual agents. */
  count: number;
  /** Agent i is named `${namePrefix}-${i}` (zero-padded to the width of count - 1, so names sort in index order). */
  namePrefix: string;
  /** A new connection of agent i (its own socket: see the transports' per-agent options). */
  connect: (index: number) => CoordinatorConnection;
  /** Agent i's local data (its partition of a table the fleet loaded once). */
  data: (index: number) => Promise<LocalData>;
  /** Agent i's executor: an EchoExecutor, or a TaskExecutor training through the fleet's one shared worker. */
  executor: (index: number, data: LocalData) => TaskExecutor;
  backend: string;
  joinToken?: string;
  /** Agents started per second (a fleet of 10,000 joining in the same millisecond is a thundering herd, not a fleet). */
  startRate: number;
  /** Seeds each agent's simulated faults (seed * 1000 + index + 1, as a lone agent's seed * 1000 + partition + 1). */
  seed: number;
}

export interface FleetStatus {
  started: number;
  /** Agents whose last join succeeded and whose session has not ended since. */
  connected: number;
  joins: number;
  joinFailures: number;
}

export class SimulatedFleet {
  private readonly agents: Agent[] = [];
  private readonly runs: Promise<void>[] = [];
  private stopped = false;
  readonly status: FleetStatus = { started: 0, connected: 0, joins: 0, joinFailures: 0 };

  constructor(private readonly o: FleetOptions) {}

  /** Agent i's name: zero-padded so `fedge agent list` sorts them in index order. */
  static nameOf(prefix: string, index: number, count: number): string {
    return `${prefix}-${String(index).padStart(String(Math.max(0, count - 1)).length, '0')}`;
  }

  /** Starts the agents at `startRate` per second; resolves once all are started (not joined: see `status`). */
  async start(): Promise<void> {
    const batch = Math.max(1, Math.round(this.o.startRate / 10));
    for (let i = 0; i < this.o.count && !this.stopped; i++) {
      const data = await this.o.data(i);
      const agent = new Agent(() => this.counted(this.o.connect(i)), data, {
        name: SimulatedFleet.nameOf(this.o.namePrefix, i, this.o.count),
        backend: this.o.backend,
        executor: this.o.executor(i, data),
        ...(this.o.joinToken ? { joinToken: this.o.joinToken } : {}),
        simulate: { seed: this.o.seed * 1000 + i + 1 },
      });
      this.agents.push(agent);
      this.runs.push(agent.runForever().catch((err: Error) => log.error({ agent: i, err: err.message }, 'virtual agent stopped')));
      this.status.started++;
      if ((i + 1) % batch === 0) await sleep(100);
    }
  }

  /** Resolves once `n` agents are connected (or rejects when `signal` aborts). */
  async waitConnected(n: number, signal?: AbortSignal): Promise<void> {
    while (this.status.connected < n) {
      signal?.throwIfAborted();
      await sleep(100);
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const a of this.agents) a.stop();
    await Promise.allSettled(this.runs);
  }

  /** Counts joins and live sessions through the connection (patched in place, so methods other transports add stay). */
  private counted(conn: CoordinatorConnection): CoordinatorConnection {
    const st = this.status;
    const join = conn.join.bind(conn);
    const close = conn.close.bind(conn);
    let live = false;
    conn.join = async (req) => {
      try {
        const reply = await join(req);
        st.joins++;
        if (!live) st.connected++;
        live = true;
        return reply;
      } catch (err) {
        st.joinFailures++;
        throw err;
      }
    };
    conn.close = () => {
      if (live) st.connected--;
      live = false;
      close();
    };
    return conn;
  }
}
