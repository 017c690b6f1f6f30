/** In-memory Store: the default for `fedge serve` and demos; state ends with the process. */
import type { ModelBlob } from '@fedge/proto';
import { runReferences, type AgentRecord, type EnrollmentRecord, type IdentityRecord, type Participant, type ParticipantPage, type ParticipantQuery, type ParticipantWrites, type RunRecord, type Store } from './store.js';
import { statusMatches, withNote } from './round-summary.js';

const clone = <T>(v: T): T => structuredClone(v);

export class MemoryStore implements Store {
  private runs = new Map<string, RunRecord>();
  /** Each run's participant lists by round, kept apart from the record as the SQLite store keeps them. */
  private participants = new Map<string, Map<number, Participant[]>>();
  private models = new Map<string, ModelBlob>();
  private agents = new Map<string, AgentRecord>();
  private identities = new Map<string, IdentityRecord>();
  private enrollments = new Map<string, EnrollmentRecord>();

  async createRun(run: RunRecord): Promise<void> {
    if (this.runs.has(run.id)) throw new Error(`run ${run.id} already exists`);
    this.runs.set(run.id, clone(run));
  }
  async saveRun(run: RunRecord, docOnly = false, writes?: ParticipantWrites): Promise<void> {
    const prev = docOnly ? this.runs.get(run.id) : undefined;
    this.runs.set(run.id, prev ? { ...clone({ ...run, rounds: [], versions: [] }), rounds: prev.rounds, versions: prev.versions } : clone(run));
    if (!writes) return;
    let byRound = this.participants.get(run.id);
    if (!byRound) this.participants.set(run.id, (byRound = new Map()));
    for (const w of writes.rounds) byRound.set(w.round, clone(w.participants));
    for (const n of writes.notes) {
      const list = byRound.get(n.round);
      const i = list?.findIndex((p) => p.agentId === n.agentId) ?? -1;
      if (list && i >= 0) list[i] = withNote(list[i]!, n.note);
    }
  }
  async listParticipants(runId: string, q: ParticipantQuery): Promise<ParticipantPage> {
    const byRound = this.participants.get(runId) ?? new Map<number, Participant[]>();
    const rounds = [...byRound.keys()].filter((r) => q.round === undefined || r === q.round).sort((a, b) => a - b);
    // Counts every match but copies only the page's rows.
    let total = 0;
    const page: (Participant & { round: number })[] = [];
    for (const round of rounds)
      for (const p of byRound.get(round)!) {
        if (!statusMatches(p.outcome, q.status)) continue;
        if (total >= q.offset && page.length < q.limit) page.push({ ...clone(p), round });
        total++;
      }
    return { total, participants: page };
  }
  async getRun(id: string): Promise<RunRecord | undefined> {
    const r = this.runs.get(id);
    return r && clone(r);
  }
  async listRuns(): Promise<RunRecord[]> {
    return [...this.runs.values()].map(clone);
  }
  async putModel(sha256: string, blob: ModelBlob): Promise<void> {
    // Models are immutable by content, so the blob is kept as given (no copy of possibly large weights).
    if (!this.models.has(sha256)) this.models.set(sha256, blob);
  }
  async getModel(sha256: string): Promise<ModelBlob | undefined> {
    return this.models.get(sha256);
  }
  async modelReferenced(sha256: string): Promise<boolean> {
    return [...this.runs.values()].some((r) => runReferences(r, sha256));
  }
  async modelBytes(sha256: string): Promise<number | undefined> {
    return this.models.get(sha256)?.weights.byteLength;
  }
  async deleteModel(sha256: string): Promise<number> {
    const blob = this.models.get(sha256);
    this.models.delete(sha256);
    return blob?.weights.byteLength ?? 0;
  }
  async saveAgent(agent: AgentRecord): Promise<void> {
    this.agents.set(agent.id, clone(agent));
  }
  async saveAgents(agents: readonly AgentRecord[]): Promise<void> {
    for (const a of agents) this.agents.set(a.id, clone(a));
  }
  async listAgents(): Promise<AgentRecord[]> {
    return [...this.agents.values()].map(clone);
  }
  async saveIdentity(identity: IdentityRecord): Promise<void> {
    this.identities.set(identity.name, clone(identity));
  }
  async listIdentities(): Promise<IdentityRecord[]> {
    return [...this.identities.values()].map(clone);
  }
  async saveEnrollment(e: EnrollmentRecord): Promise<void> {
    this.enrollments.set(e.codeSha256, clone(e));
  }
  async deleteEnrollment(codeSha256: string): Promise<void> {
    this.enrollments.delete(codeSha256);
  }
  async listEnrollments(): Promise<EnrollmentRecord[]> {
    return [...this.enrollments.values()].map(clone);
  }
}
