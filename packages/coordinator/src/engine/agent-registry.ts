/** Tracks agents and their task channels without knowing the transport: a transport hands in an AgentChannel. */
import { EventEmitter } from 'node:events';
import { randomBytes, randomUUID } from 'node:crypto';
import { SERVES_LABEL, type DataProfile, type DriftSection, type JoinRequestMsg, type TaskMsg } from '@fedge/proto';
import type { AgentRecord, Store } from '../store/store.js';
import { moduleLogger } from '../log.js';
import { AgentWrites } from './agent-writes.js';
import { AuthError, NameTakenError, parseProfile, safeEqual, sha256Hex } from './join-credentials.js';

/** What a transport provides to push tasks to one connected agent. */
export interface AgentChannel {
  send(task: TaskMsg): void;
  close(reason: string): void;
  /** Which transport carries it: recorded on the agent (fedge agent list, the dashboard). */
  readonly transport?: 'grpc' | 'mqtt';
}

interface AgentState {
  record: AgentRecord;
  token: Buffer;
  channel?: AgentChannel;
  busyWith?: string;
  /** When a join issued a session that has not attached a task channel yet (ms since epoch). */
  joiningSince?: number;
  /** What the agent said of its data at its last join (schema, statistics, fingerprint); not persisted: agents re-send it. */
  profile?: DataProfile;
}

/** A session that joined but has not attached its task stream within this long no longer holds its name. */
const JOIN_HOLD_MS = 15_000;

const log = moduleLogger('agents');

export class AgentRegistry extends EventEmitter<{
  online: [agentId: string];
  offline: [agentId: string, reason: string];
  changed: [];
}> {
  private agents = new Map<string, AgentState>();
  /** Agent ids by name: a join looks its name up here instead of scanning every agent (10,000 joins would be 10^8 steps). */
  private byName = new Map<string, Set<string>>();
  /** Changed records go to the store in batches (agent-writes.ts): they are state to resume from, not a ledger. */
  private readonly writes: AgentWrites;

  constructor(store: Store, private readonly joinToken?: string) {
    super();
    this.writes = new AgentWrites(store, (id) => this.agents.get(id)?.record);
  }

  /**
   * Loads the agents a previous coordinator process knew, all offline: a reconnecting agent that presents its old id
   * keeps it, with its join time and task counts, instead of showing up as a stranger.
   */
  restore(records: readonly AgentRecord[]): number {
    for (const r of records) {
      if (this.agents.has(r.id)) continue;
      // A drift report is about a live session; one from before a restart would read as current.
      const { currentTask: _task, drift: _drift, ...rest } = r;
      // A fresh random token nobody holds: the agent must join again before anything it sends is accepted.
      this.agents.set(r.id, { record: { ...rest, status: 'offline' }, token: randomBytes(24) });
      this.index(r.id, r.name);
    }
    return records.length;
  }

  /**
   * `identity`: the fingerprint of the enrolled key the join was signed with (identities.ts checked it); without it the
   * shared join token is required.
   */
  join(req: JoinRequestMsg, identity?: string): { agentId: string; sessionToken: string; agentSecret: string } {
    if (identity === undefined && this.joinToken !== undefined && !safeEqual(Buffer.from(req.joinToken), Buffer.from(this.joinToken)))
      throw new AuthError('join_token: missing or wrong; start the agent with the coordinator\'s --join-token');
    const profile = parseProfile(req.dataProfileJson);
    const now = new Date().toISOString();
    // A reconnecting agent keeps its id (and history); the old session token stops working.
    let existing = req.agentId ? this.agents.get(req.agentId) : undefined;
    // An enrolled agent's id is taken over only by a join signed with that same key, never with the shared token.
    // (identities.ts has checked that `identity` is the name's current key, so a re-enrolled device keeps its record.)
    if (existing?.record.identity !== undefined && (identity === undefined || existing.record.name !== req.name))
      throw new AuthError(`agent_id: "${req.agentId}" belongs to an enrolled device; it joins with its own key`);
    // Whoever rejoins under an id proves it is the agent that first joined under it; otherwise a holder of the shared
    // token could take over a live agent's session (and its next download would be refused).
    if (existing && existing.record.identity === undefined && existing.record.secretSha256 !== undefined && !safeEqual(Buffer.from(sha256Hex(req.agentSecret ?? '')), Buffer.from(existing.record.secretSha256)))
      throw new AuthError(`agent_secret: missing or wrong for agent_id "${req.agentId}"; only the agent that first joined under an id may rejoin with it (a restarted agent joins without an id)`);
    const kept = existing && existing.record.secretSha256 !== undefined ? req.agentSecret : undefined;
    // Names identify agents across coordinator restarts (a resumed round re-invites by name, spooled updates are
    // filed and folded by name), so two live agents must not share one.
    const clash = [...(this.byName.get(req.name) ?? [])].map((i) => this.agents.get(i)!).find((a) => a !== existing);
    if (clash && (clash.channel || (clash.joiningSince !== undefined && Date.now() - clash.joiningSince < JOIN_HOLD_MS)))
      throw new NameTakenError(`name: "${req.name}" is taken by agent ${clash.record.id}, which is online; give every agent its own --name (the default is the host name)`);
    // An agent process that restarted (so it has no id) under the name of an offline agent is that agent again.
    existing ??= clash;
    if (existing?.record.identity !== undefined && identity === undefined)
      throw new AuthError(`name: "${req.name}" belongs to an enrolled device; it joins with its own key`);
    const id = existing ? existing.record.id : `agent-${randomUUID().slice(0, 8)}`;
    const token = randomBytes(24);
    // Kept on a proven rejoin; new for a new agent, a name takeover (the old holder is offline) or a legacy record.
    const agentSecret = kept || randomBytes(24).toString('hex');
    const record: AgentRecord = {
      id,
      name: req.name,
      status: existing?.channel ? 'online' : 'offline',
      backend: req.backend || 'unknown',
      agentVersion: req.agentVersion || 'unknown',
      numExamples: req.numExamples,
      labels: req.labels ?? {},
      joinedAt: existing?.record.joinedAt ?? now,
      lastSeen: now,
      tasksCompleted: existing?.record.tasksCompleted ?? 0,
      tasksFailed: existing?.record.tasksFailed ?? 0,
      ...(profile ? { data: { format: profile.format, n: profile.n, columns: profile.columns.length, fingerprint: profile.fingerprint } } : {}),
      ...(identity !== undefined ? { identity } : {}),
      secretSha256: sha256Hex(agentSecret),
    };
    if (existing && existing.record.name !== req.name) this.byName.get(existing.record.name)?.delete(id);
    this.agents.set(id, { record, token, ...(existing?.channel ? { channel: existing.channel } : { joiningSince: Date.now() }), ...(profile ? { profile } : {}) });
    this.index(id, req.name);
    log.info({ agentId: id, name: req.name, backend: record.backend, numExamples: req.numExamples, rejoin: !!existing }, 'agent joined');
    this.writes.mark(id);
    return { agentId: id, sessionToken: token.toString('hex'), agentSecret };
  }

  /**
   * Cuts off every agent of a revoked identity at once: its session token stops working (tasks, downloads and
   * uploads are refused) and its task stream is closed. Returns how many sessions were closed.
   */
  cutOff(name: string, reason: string): number {
    let n = 0;
    for (const a of this.agents.values()) {
      if (a.record.name !== name || a.record.identity === undefined) continue;
      a.token = randomBytes(24);
      delete a.joiningSince;
      const ch = a.channel;
      if (ch) {
        n++;
        this.detach(a.record.id, ch, reason);
        ch.close(reason);
      }
    }
    return n;
  }

  /** The identity fingerprint an agent joined with, if it is an enrolled device. */
  identityOf(agentId: string): string | undefined {
    return this.agents.get(agentId)?.record.identity;
  }

  /** Verifies an agent's session token; throws AuthError naming the problem. */
  verify(agentId: string, sessionToken: string): AgentRecord {
    const a = this.agents.get(agentId);
    if (!a) throw new AuthError(`agent_id: unknown agent "${agentId}"; join first`);
    if (!safeEqual(Buffer.from(sessionToken, 'hex'), a.token)) throw new AuthError('session_token: invalid for this agent; join again');
    a.record.lastSeen = new Date().toISOString();
    return a.record;
  }

  /** Binds the agent's task channel; a previous channel of the same agent is closed. */
  attach(agentId: string, channel: AgentChannel): void {
    const a = this.agents.get(agentId);
    if (!a) throw new AuthError(`agent_id: unknown agent "${agentId}"`);
    const old = a.channel;
    a.channel = channel;
    delete a.joiningSince;
    a.record.status = 'online';
    if (channel.transport) a.record.transport = channel.transport;
    delete a.busyWith;
    delete a.record.currentTask;
    if (old && old !== channel) {
      old.close('replaced by a new connection');
      this.emit('offline', agentId, 'reconnected');
    }
    log.info({ agentId, name: a.record.name }, 'agent online');
    this.writes.mark(agentId);
    this.emit('online', agentId);
    this.emit('changed');
  }

  /** Called by the transport when a channel ends; ignored if the channel was already replaced. */
  detach(agentId: string, channel: AgentChannel, reason: string): void {
    const a = this.agents.get(agentId);
    if (!a || a.channel !== channel) return;
    delete a.channel;
    delete a.busyWith;
    delete a.record.currentTask;
    a.record.status = 'offline';
    log.warn({ agentId, name: a.record.name, reason }, 'agent offline');
    this.writes.mark(agentId);
    this.emit('offline', agentId, reason);
    this.emit('changed');
  }

  /** Records the global version an agent reports it now serves (a report's `served` section, after it loaded the model). */
  noteServing(agentId: string, runId: string, version: number): void {
    const a = this.agents.get(agentId);
    if (!a || (a.record.servedRun === runId && a.record.servedVersion === version)) return;
    a.record.servedRun = runId;
    a.record.servedVersion = version;
    log.info({ agentId, name: a.record.name, runId, version }, 'agent serves a new global model version');
    this.writes.mark(agentId);
    this.emit('changed');
  }

  /** An aggregator site's report of the agents and examples behind it (`fedge agent list` at the root shows them). */
  noteSite(agentId: string, site: { agents: number; examples: number }): void {
    const a = this.agents.get(agentId);
    const agents = String(site.agents);
    if (!a || (a.record.numExamples === site.examples && a.record.labels['fedge.site-agents'] === agents)) return;
    a.record.numExamples = site.examples;
    a.record.labels = { ...a.record.labels, 'fedge.site-agents': agents };
    this.writes.mark(agentId);
    this.emit('changed');
  }

  /** Records the drift an agent reports (its report's `drift` section); kept in memory, shown by fedge agent drift. */
  noteDrift(agentId: string, drift: DriftSection): void {
    const a = this.agents.get(agentId);
    if (a) a.record.drift = { ...drift, at: new Date().toISOString() };
  }

  /** The data profile the agent reported at its last join, if any. */
  profile(agentId: string): DataProfile | undefined {
    return this.agents.get(agentId)?.profile;
  }

  /** Online agents with no task in progress (and passing `eligible`, e.g. a run's schema), in a stable order (by name, then id). */
  available(eligible?: (a: AgentRecord) => boolean): AgentRecord[] {
    return [...this.agents.values()]
      .filter((a) => a.channel && !a.busyWith && (!eligible || eligible(a.record)))
      .map((a) => a.record)
      .sort((x, y) => x.name.localeCompare(y.name) || x.id.localeCompare(y.id));
  }

  isOnline(agentId: string): boolean {
    return !!this.agents.get(agentId)?.channel;
  }

  /** Sends a task and marks the agent busy until `release`. Returns false if the agent is gone or busy. */
  assign(agentId: string, task: TaskMsg): boolean {
    const a = this.agents.get(agentId);
    if (!a?.channel || a.busyWith) return false;
    a.busyWith = task.taskId;
    a.record.currentTask = `${task.kind} ${task.runId} round ${task.round}`;
    try {
      a.channel.send(task);
    } catch (err) {
      delete a.busyWith;
      log.warn({ agentId, err }, 'sending task failed');
      return false;
    }
    this.emit('changed');
    return true;
  }

  /** Ends an agent's task, counting it as completed or failed. */
  release(agentId: string, taskId: string, ok: boolean): void {
    const a = this.agents.get(agentId);
    if (!a) return;
    if (a.busyWith === taskId) {
      delete a.busyWith;
      delete a.record.currentTask;
    }
    if (ok) a.record.tasksCompleted++;
    else a.record.tasksFailed++;
    this.writes.mark(agentId);
    this.emit('changed');
  }

  /**
   * Sends an `announce` task (a new global version) to every online agent, busy or not, without assigning it:
   * agents that serve models fetch, verify and swap it in; others ignore it. Returns how many were told.
   * With `only`, just those agent ids are told (a canary rollout). Agents that joined saying they serve nothing
   * (SERVES_LABEL "false") are skipped: at 10,000 training-only agents each version was 10,000 messages for nobody.
   */
  announce(task: TaskMsg, only?: readonly string[]): number {
    let n = 0;
    const ids = only && new Set(only);
    for (const a of this.agents.values()) {
      if (!a.channel || (ids && !ids.has(a.record.id)) || a.record.labels[SERVES_LABEL] === 'false') continue;
      try {
        a.channel.send(task);
        n++;
      } catch {
        /* a closed channel is already reported through detach */
      }
    }
    return n;
  }

  /** Sends a cancel for a task the coordinator no longer wants (e.g. its round closed). */
  cancel(agentId: string, task: TaskMsg): void {
    const a = this.agents.get(agentId);
    if (a?.busyWith === task.taskId) {
      delete a.busyWith;
      delete a.record.currentTask;
    }
    try {
      a?.channel?.send({ ...task, kind: 'cancel' });
    } catch {
      /* a closed channel is already reported through detach */
    }
  }

  /** Resolves once at least `n` agents are available, or rejects when `signal` aborts. */
  waitForAvailable(n: number, signal: AbortSignal, eligible?: (a: AgentRecord) => boolean): Promise<void> {
    return new Promise((resolve, reject) => {
      // Checked once per event-loop turn, by counting: thousands of agents joining emit thousands of `changed`.
      let queued: NodeJS.Immediate | undefined;
      const count = (): number => {
        let k = 0;
        for (const a of this.agents.values()) if (a.channel && !a.busyWith && (!eligible || eligible(a.record))) k++;
        return k;
      };
      const now = (): void => {
        queued = undefined;
        if (count() >= n) {
          cleanup();
          resolve();
        }
      };
      const check = (): void => {
        queued ??= setImmediate(now);
      };
      const onAbort = (): void => {
        cleanup();
        reject(signal.reason instanceof Error ? signal.reason : new Error(String(signal.reason)));
      };
      const cleanup = (): void => {
        if (queued) clearImmediate(queued);
        this.off('changed', check);
        signal.removeEventListener('abort', onAbort);
      };
      if (signal.aborted) return onAbort();
      this.on('changed', check);
      signal.addEventListener('abort', onAbort);
      now();
    });
  }

  /** Whether an agent that joined with the shared token (no enrolled identity) has this id or this name. */
  knowsTokenAgent(agentId: string, name: string): boolean {
    const token = (a: AgentState | undefined): boolean => a !== undefined && a.record.identity === undefined;
    return (!!agentId && token(this.agents.get(agentId))) || [...(this.byName.get(name) ?? [])].some((i) => token(this.agents.get(i)));
  }

  /** How many agents joined with the shared token (the --max-token-agents cap), counted without copying records. */
  tokenAgents(): number {
    let n = 0;
    for (const a of this.agents.values()) if (a.record.identity === undefined) n++;
    return n;
  }

  /** A copy of every record (without the secret hash); a listing of one page or a count uses records() instead. */
  list(): AgentRecord[] {
    return [...this.agents.values()].map(({ record: { secretSha256: _secret, ...r } }) => ({ ...r }));
  }

  /** The live records, not copies (list() copies 10,000 at fleet scale): read only; copy without the secret hash to send. */
  *records(): IterableIterator<Readonly<AgentRecord>> {
    for (const a of this.agents.values()) yield a.record;
  }

  /** One agent's live record (not a copy; see records()). */
  record(agentId: string): Readonly<AgentRecord> | undefined {
    return this.agents.get(agentId)?.record;
  }

  /** How many agents the registry knows, online or not. */
  get size(): number {
    return this.agents.size;
  }

  /** The versions of `runId` that agents report serving (retention keeps them), without copying any record. */
  servedVersions(runId: string): number[] {
    const out: number[] = [];
    for (const { record: r } of this.agents.values()) if (r.servedRun === runId && r.servedVersion !== undefined) out.push(r.servedVersion);
    return out;
  }

  closeAll(reason: string): void {
    for (const a of this.agents.values()) a.channel?.close(reason);
    // The offline records, and whatever else is pending, go to the store before it closes.
    void this.flush();
  }

  /** Writes every record changed since the last write, in one store transaction. */
  flush(): Promise<void> {
    return this.writes.flush();
  }

  private index(id: string, name: string): void {
    let ids = this.byName.get(name);
    if (!ids) this.byName.set(name, (ids = new Set()));
    ids.add(id);
  }
}
