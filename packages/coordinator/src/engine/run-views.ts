/** What admins and watchers see of runs: the live engine's, the statistics step's or the stored record, and its participants' pages. */
import { NotFoundError } from '@fedge/proto';
import type { Participant, ParticipantPage, ParticipantQuery, RunRecord, Store } from '../store/store.js';
import { MAX_PARTICIPANTS_PAGE, listing, parseParticipantQuery, roundRows, withInlineParticipants, type ParticipantListing } from './participants-view.js';
import type { LiveView, RunEngine } from './run-engine.js';
import type { PreparingRuns } from './prepare.js';
import type { CanaryController } from './canary-controller.js';
import type { ModelSigner } from '../signing-key.js';

/** A run record plus what is happening right now (only while it is active). */
export type RunView = RunRecord & {
  live?: LiveView;
  /** getRun only: fingerprint of the model signing key, and each version's signature (hex) in `versions`. */
  signingKeyFingerprint?: string;
  /** getRun only, during a self-healing canary: the verdict and figures of the agents' latest health reports. */
  canaryLive?: { verdict: string; figures: string; reason?: string };
};

/** A copy of the engine's run, with its live view while it is active. */
export function engineView(e: RunEngine): RunView {
  return e.isFinished() ? structuredClone(e.run) : { ...structuredClone(e.run), live: structuredClone(e.live) };
}

export interface RunViewsDeps {
  store: Store;
  /** The coordinator's engines by run id (finished ones included). */
  engines: ReadonlyMap<string, RunEngine>;
  /** Runs in their statistics step (no engine yet). */
  preparing: PreparingRuns;
  signer: ModelSigner;
  canaries: Pick<CanaryController, 'status'>;
}

export class RunViews {
  constructor(private readonly d: RunViewsDeps) {}

  async getRun(id: string): Promise<RunView> {
    const p = this.d.preparing.view(id);
    if (p) return p;
    const e = this.d.engines.get(id);
    if (e) return this.signed(engineView(e));
    const r = await this.d.store.getRun(id);
    if (!r) throw new NotFoundError(`run "${id}" not found; see fedge run list`);
    return this.signed(r);
  }

  /** getRun for `fedge run show`: rounds of up to INLINE_PARTICIPANTS participants list them (participants-view.ts). */
  async showRun(id: string): Promise<RunView> {
    return withInlineParticipants(await this.getRun(id), (q) => this.participantPage(id, q));
  }

  /** `fedge run participants`: a page of a run's participants; `query` is network input, checked here. */
  async listParticipants(runId: string, query: unknown): Promise<ParticipantListing> {
    const q = parseParticipantQuery(query);
    if (!this.d.engines.has(runId) && !this.d.preparing.view(runId) && !(await this.d.store.getRun(runId))) throw new NotFoundError(`run "${runId}" not found; see fedge run list`);
    return listing(runId, q, await this.participantPage(runId, q));
  }

  /** Every participant of one round (a site's sub-run), page by page. */
  async roundParticipants(runId: string, round: number): Promise<Participant[]> {
    const out: Participant[] = [];
    for (let offset = 0; ; offset += MAX_PARTICIPANTS_PAGE) {
      const page = await this.participantPage(runId, { round, limit: MAX_PARTICIPANTS_PAGE, offset });
      out.push(...roundRows(page));
      if (out.length >= page.total || page.participants.length === 0) return out;
    }
  }

  async listRuns(): Promise<RunView[]> {
    const runs = await this.d.store.listRuns();
    return runs.map((r) => {
      const e = this.d.engines.get(r.id);
      return e ? engineView(e) : this.d.preparing.view(r.id) ?? r;
    }).sort((a, b) => a.createdAt.localeCompare(b.createdAt));
  }

  /**
   * Calls `fn` whenever the run changes; returns an unsubscribe function. The view is built (a deep copy) only when
   * `view()` is called, so watchers that coalesce updates do not copy the whole run on every event.
   */
  watchRun(id: string, fn: (view: () => RunView, ended: boolean) => void): () => void {
    // In its statistics step: report it, then follow the engine once it exists.
    const preparing = this.d.preparing.watch(id, fn, () => this.watchRun(id, fn));
    if (preparing) return preparing;
    const e = this.d.engines.get(id);
    if (!e) throw new NotFoundError(`run "${id}" is not active on this coordinator`);
    const view = (): RunView => engineView(e);
    const onUpdate = (): void => fn(view, false);
    const onEnd = (): void => fn(view, true);
    e.on('update', onUpdate);
    e.on('end', onEnd);
    if (e.isFinished()) queueMicrotask(onEnd);
    else queueMicrotask(onUpdate);
    return () => {
      e.off('update', onUpdate);
      e.off('end', onEnd);
    };
  }

  /** Resolves when the run ends. */
  waitForRun(id: string): Promise<RunView> {
    return new Promise((resolve, reject) => {
      try {
        const off = this.watchRun(id, (view, ended) => {
          if (ended) {
            off();
            resolve(view());
          }
        });
      } catch (err) {
        reject(err);
      }
    });
  }

  private participantPage(runId: string, q: ParticipantQuery): Promise<ParticipantPage> {
    const ctx = this.d.engines.get(runId)?.ctx;
    return ctx ? ctx.listParticipants(q) : this.d.store.listParticipants(runId, q);
  }

  /** The view with each version's signature (what agents verify) and the key's fingerprint, for fedge model show. */
  private signed(v: RunView): RunView {
    return {
      ...v,
      versions: v.versions.map((x) => ({ ...x, signature: this.d.signer.sign({ runId: v.id, version: x.version, sha256: x.sha256 }).toString('hex') })),
      signingKeyFingerprint: this.d.signer.fingerprint,
      ...((s) => (s ? { canaryLive: s } : {}))(this.d.canaries.status(v.id)),
    };
  }
}
