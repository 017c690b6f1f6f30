/** State of one open round: who was invited, what each returned, and when the round may close. */
import type { TaskMsg } from '@fedge/proto';
import type { Participant, ParticipantOutcome } from '../store/store.js';
import type { AcceptedResult, CandidateAgent, FailedResult } from '../strategy/strategy.js';

export type LiveState = 'invited' | 'uploading' | ParticipantOutcome;

export interface Invitee {
  agent: CandidateAgent;
  task: TaskMsg;
  state: LiveState;
  sentAt: number;
  participant?: Participant;
  abortUpload?: (reason: string) => void;
}

export class OpenRound {
  readonly invitees = new Map<string, Invitee>();
  readonly accepted: AcceptedResult[] = [];
  readonly failures: FailedResult[] = [];
  readonly startedAt = new Date();
  open = true;
  bytesReceived = 0;
  bytesSent = 0;
  private settle!: () => void;
  readonly settled = new Promise<void>((r) => (this.settle = r));

  constructor(
    readonly round: number,
    readonly kind: 'train' | 'evaluate',
    readonly baseVersion: number,
    readonly deadline: number,
  ) {}

  /** Records a participant's outcome once; later reports for the same agent are ignored. */
  resolve(agentId: string, p: Participant, accepted?: AcceptedResult): boolean {
    const inv = this.invitees.get(agentId);
    if (!inv || inv.participant) return false;
    inv.participant = p;
    inv.state = p.outcome;
    delete inv.abortUpload;
    if (accepted) this.accepted.push(accepted);
    else if (p.outcome !== 'completed') this.failures.push({ agentId, outcome: p.outcome, reason: p.reason ?? 'unknown' });
    if ([...this.invitees.values()].every((i) => i.participant)) this.settle();
    return true;
  }

  /** Closes the round: pending invitees become timeouts and uploads in progress are aborted. */
  close(reason: 'deadline' | 'stopped'): void {
    if (!this.open) return;
    this.open = false;
    for (const [id, inv] of this.invitees) {
      if (inv.participant) continue;
      inv.abortUpload?.(reason);
      this.resolve(id, {
        agentId: id,
        name: inv.agent.name,
        outcome: reason === 'deadline' ? 'timeout' : 'dropped',
        reason: reason === 'deadline' ? 'round deadline passed' : 'run stopped',
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
