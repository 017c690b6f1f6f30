/** In-memory Store: the default for `fedge serve` and demos; state ends with the process. */
import type { ModelBlob } from '@fedge/proto';
import { runReferences, type AgentRecord, type EnrollmentRecord, type IdentityRecord, type RunRecord, type Store } from './store.js';

const clone = <T>(v: T): T => structuredClone(v);

export class MemoryStore implements Store {
  private runs = new Map<string, RunRecord>();
  private models = new Map<string, ModelBlob>();
  private agents = new Map<string, AgentRecord>();
  private identities = new Map<string, IdentityRecord>();
  private enrollments = new Map<string, EnrollmentRecord>();

  async createRun(run: RunRecord): Promise<void> {
    if (this.runs.has(run.id)) throw new Error(`run ${run.id} already exists`);
    this.runs.set(run.id, clone(run));
  }
  async saveRun(run: RunRecord, docOnly = false): Promise<void> {
    const prev = docOnly ? this.runs.get(run.id) : undefined;
    this.runs.set(run.id, prev ? { ...clone({ ...run, rounds: [], versions: [] }), rounds: prev.rounds, versions: prev.versions } : clone(run));
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
