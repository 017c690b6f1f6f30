/** Batched writes of changed agent records: at most one store transaction per AGENT_FLUSH_MS, not one per change. */
import type { AgentRecord, Store } from '../store/store.js';
import { moduleLogger } from '../log.js';

/** Agent records are written at most this often (they are state to resume from, not a ledger). */
const AGENT_FLUSH_MS = 250;

const log = moduleLogger('agents');

export class AgentWrites {
  /** Agents whose record changed since the last write; written together within AGENT_FLUSH_MS. */
  private dirty = new Set<string>();
  private flushing: NodeJS.Timeout | undefined;
  private lastFlush = 0;

  /** `recordOf`: the live record of an agent id (read at write time, so the latest state is what is written). */
  constructor(private readonly store: Store, private readonly recordOf: (agentId: string) => AgentRecord | undefined) {}

  /** Marks the record for the next batched write. */
  mark(agentId: string): void {
    this.dirty.add(agentId);
    // The first write after a quiet spell goes at once (next turn); a burst (over MQTT every join and result is its
    // own turn) waits for the window and goes in one transaction.
    if (this.flushing) return;
    this.flushing = setTimeout(() => void this.flush(), Math.max(0, this.lastFlush + AGENT_FLUSH_MS - Date.now())).unref();
  }

  /** Writes every record changed since the last write, in one store transaction. */
  async flush(): Promise<void> {
    if (this.flushing) clearTimeout(this.flushing);
    this.flushing = undefined;
    this.lastFlush = Date.now();
    const records = [...this.dirty].flatMap((id) => {
      const r = this.recordOf(id);
      return r ? [r] : [];
    });
    this.dirty.clear();
    await this.store.saveAgents(records).catch((err: unknown) => log.error({ err, agents: records.length }, 'saving agents failed'));
  }
}
