/** State of one open round (sync) or buffer fill (async): who was invited, what each returned, when it may close. */
import type { TaskMsg } from '@fedge/proto';
import type { Participant, ParticipantOutcome } from '../store/store.js';
import type { SpooledUpdate } from './spool-source.js';
import type { AcceptedResult, CandidateAgent, FailedResult } from '../strategy/strategy.js';

export type LiveState = 'invited' | 'uploading' | ParticipantOutcome;

export interface Invitee {
  agent: CandidateAgent;
  task: TaskMsg;
  state: LiveState;
  sentAt: number;
  /** The global version the task trained from (differs from the round's base for late or async updates). */
  baseVersion: number;
  participant?: Participant;
  abortUpload?: (reason: string) => void;
}

export type CloseReason = 'deadline' | 'enough' | 'stopped';

export class OpenRound {
  readonly invitees = new Map<string, Invitee>();
  readonly accepted: AcceptedResult[] = [];
  readonly failures: FailedResult[] = [];
  readonly startedAt = new Date();
  open = true;
  closedBy: CloseReason | undefined;
  /** Updates kept in the scratch spool (a non-durable run whose strategy aggregates every update). */
  readonly spooled: SpooledUpdate[] = [];
  bytesReceived = 0;
  bytesSent = 0;
  /** The downloads' size as full float32 models (bytesSent is less with compression.downlink). */
  bytesSentDense = 0;
  private settle!: () => void;
  readonly settled = new Promise<void>((r) => (this.settle = r));

  /**
   * @param targetResults close as soon as this many results are accepted (over-selection); Infinity waits for all
   */
  constructor(
    readonly round: number,
    readonly kind: 'train' | 'evaluate',
    readonly baseVersion: number,
    readonly deadline: number,
    readonly targetResults = Infinity,
  ) {}

  /** Records a participant's outcome once (key: agent id, or task id for async); later reports are ignored. */
  resolve(key: string, p: Participant, accepted?: AcceptedResult): boolean {
    const inv = this.invitees.get(key);
    if (!inv || inv.participant) return false;
    inv.participant = p;
    inv.state = p.outcome;
    delete inv.abortUpload;
    if (accepted) this.accepted.push(accepted);
    else if (p.outcome !== 'completed') this.failures.push({ agentId: p.agentId, outcome: p.outcome, reason: p.reason ?? 'unknown' });
    if (this.accepted.length >= this.targetResults) {
      this.closedBy ??= 'enough';
      this.settle();
    }
    if ([...this.invitees.values()].every((i) => i.participant)) this.settle();
    return true;
  }

  /**
   * Adds a result that was not invited to this round (a late result, or an async update). Async buffers key
   * by task id: a fast agent may contribute more than one update to the same buffer.
   */
  addExtra(inv: Invitee, key = inv.agent.id): void {
    this.invitees.set(key, inv);
  }

  /** Invitees still working when the round closes. */
  pending(): Invitee[] {
    return [...this.invitees.values()].filter((i) => !i.participant);
  }

  /**
   * Closes the round. Uploads in progress are aborted; agents still training are recorded as late
   * (or dropped when the run stops). `onLate` decides what becomes of them (discard or carry over).
   */
  close(reason: CloseReason, lateReason?: (inv: Invitee) => string): void {
    if (!this.open) return;
    this.open = false;
    this.closedBy ??= reason;
    for (const inv of this.pending()) {
      inv.abortUpload?.(reason === 'stopped' ? 'run stopped' : 'round closed');
      const why = this.closedBy === 'deadline' ? 'round deadline passed' : this.closedBy === 'enough' ? 'round closed with enough results' : 'run stopped';
      this.resolve(inv.agent.id, {
        agentId: inv.agent.id,
        name: inv.agent.name,
        outcome: reason === 'stopped' ? 'dropped' : 'late',
        reason: lateReason ? `${why}; ${lateReason(inv)}` : why,
      });
    }
    this.settle();
  }

  participants(): Participant[] {
    return [...this.invitees.values()].map(
      (i) => i.participant ?? { agentId: i.agent.id, name: i.agent.name, outcome: 'dropped', reason: 'no result' },
    );
  }

  live(): { agentId: string; name: string; state: LiveState }[] {
    return [...this.invitees.values()].map((i) => ({ agentId: i.agent.id, name: i.agent.name, state: i.state }));
  }
}
