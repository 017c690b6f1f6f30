/**
 * Drives a new run through the statistics step: waits for agents that report their data, combines, records RunData;
 * PreparingRuns holds the runs in that step (no engine yet) for the coordinator.
 */
import { EventEmitter } from 'node:events';
import type { ModelBlob, StorageError } from '@fedge/proto';
import type { RunContext } from './run-context.js';
import type { AgentRegistry } from './agent-registry.js';
import type { RunEngine } from './run-engine.js';
import type { RunRecord } from '../store/store.js';
import type { RunConfig } from '../config/run-config.js';
import type { Strategy } from '../strategy/strategy.js';
import { runDataStep } from './data-step.js';
import { moduleLogger } from '../log.js';
import { storageError } from '../store/storage-error.js';

const log = moduleLogger('data-step');

interface PrepareDeps {
  registry: AgentRegistry;
  signal: AbortSignal;
  /** Called when the run record changed (agents arriving while it waits), for watchers. */
  onUpdate?: () => void;
  /** The run's strategy (its accountant composes the noised statistics). */
  strategyFor: (config: RunConfig) => Strategy;
}

/**
 * Resolves with the run's initial model once `run.data` is set and saved (through `ctx`, the record's writer). Waits
 * (up to waitForAgentsSeconds) for agentsPerRound.min online agents that reported a data profile, so the statistics
 * cover the fleet a round will invite. Throws when it cannot prepare (the caller fails the run with the message) or when `signal` aborts.
 */
async function prepareRun(ctx: RunContext, blob: ModelBlob | undefined, deps: PrepareDeps): Promise<ModelBlob> {
  const run = ctx.run;
  const c = run.config;
  const need = c.agentsPerRound.min;
  const reported = (a: { id: string }): boolean => deps.registry.profile(a.id) !== undefined;
  if (deps.registry.available(reported).length < need) {
    ctx.setStatus('waiting', `statistics step: waiting for ${need} agents to report their data (${deps.registry.available(reported).length} now)`);
    await ctx.persist();
    log.info({ runId: run.id, need }, run.statusMessage);
    const timeout = AbortSignal.timeout(c.waitForAgentsSeconds * 1000);
    const progress = (): void => {
      ctx.setMessage(`statistics step: waiting for ${need} agents to report their data (${deps.registry.available(reported).length} now)`);
      deps.onUpdate?.();
    };
    deps.registry.on('changed', progress);
    try {
      await deps.registry.waitForAvailable(need, AbortSignal.any([deps.signal, timeout]), reported);
    } catch (err) {
      if (deps.signal.aborted) throw err;
      throw new Error(`statistics step: fewer than ${need} agents reported their data within ${c.waitForAgentsSeconds}s (agentsPerRound.min, waitForAgentsSeconds)`, { cause: err });
    } finally {
      deps.registry.off('changed', progress);
    }
  }
  deps.signal.throwIfAborted();
  const agents = deps.registry.available(reported);
  const { data, blob: initial } = await runDataStep(c, agents, deps.registry, blob);
  deps.signal.throwIfAborted();
  // The noised statistics are one more Gaussian-mechanism step; the strategy's accountant composes it and its snapshot
  // (saved with the data) is what the engine's strategy restores, so a private run's epsilon counts it from the start.
  let spent: ReturnType<NonNullable<Strategy['snapshot']>> | undefined;
  if (data.statisticsNoiseStd !== undefined) {
    const strategy = deps.strategyFor(c);
    strategy.privacy?.accountStatistics();
    spent = strategy.snapshot?.();
  }
  ctx.setData(data, spent);
  ctx.setMessage(`statistics step: ${data.agents.length} agents, ${data.n} examples, input width ${data.preprocessing.inputWidth}${data.refused.length ? `; refused ${data.refused.map((r) => `${r.name} (${r.reason})`).join('; ')}` : ''}`);
  await ctx.persist();
  log.info({ runId: run.id, agents: data.agents.map((a) => a.name), refused: data.refused, n: data.n, task: data.task }, 'statistics step done');
  return initial;
}

export interface PreparingRunsDeps {
  registry: AgentRegistry;
  /** The store is durable: a run interrupted by close() stays waiting and the next process prepares it again. */
  resumeOnRestart: boolean;
  /** Builds and starts the run's engine from its initial model once the step is done. */
  launch: (ctx: RunContext, initial: ModelBlob) => Promise<RunEngine>;
  /** The run's strategy, built as the engine will build it. */
  strategyFor: (config: RunConfig) => Strategy;
  /** A write of the data directory failed (see RunEngineDeps.onStorageFault). */
  onStorageFault?: (err: StorageError) => void;
}

interface Preparing {
  ctx: RunContext;
  ctl: AbortController;
  launched: Promise<RunEngine | undefined>;
}

/** Runs in their statistics step (no engine yet): stop aborts them, watchers wait for the engine. */
export class PreparingRuns {
  private readonly runs = new Map<string, Preparing>();
  /** Emits a run id whenever a run in its statistics step changes (watch listens). */
  private readonly events = new EventEmitter();
  private closing = false;

  constructor(private readonly deps: PreparingRunsDeps) {}

  has(id: string): boolean {
    return this.runs.has(id);
  }

  /** A copy of the record of a run in its statistics step; undefined for any other run. */
  view(id: string): RunRecord | undefined {
    const p = this.runs.get(id);
    return p ? structuredClone(p.ctx.run) : undefined;
  }

  /** The statistics step in the background, then the engine; a failure fails the run with the step's message. */
  start(ctx: RunContext, blob: ModelBlob | undefined): void {
    const ctl = new AbortController();
    const id = ctx.id;
    const launched = (async (): Promise<RunEngine | undefined> => {
      try {
        const initial = await prepareRun(ctx, blob, { registry: this.deps.registry, signal: ctl.signal, onUpdate: () => this.events.emit(id), strategyFor: this.deps.strategyFor });
        return await this.deps.launch(ctx, initial);
      } catch (err) {
        // Shutting down with a durable store: the run stays waiting and the next process prepares it again.
        if (this.closing && this.deps.resumeOnRestart) return undefined;
        // A full or read-only data directory is not the run's failure: not saved as failed (a save that happens to
        // fit would make that permanent), its stored record (pending or waiting) prepares again on restart.
        const fault = this.deps.resumeOnRestart ? storageError(err, 'the data directory') : undefined;
        if (fault) {
          ctx.setMessage(`suspended in its statistics step (${fault.code}): ${fault.message}`);
          log.error({ runId: id, code: fault.code, path: fault.path, freeBytes: fault.freeBytes }, 'run suspended in its statistics step: the data directory cannot be written');
          this.deps.onStorageFault?.(fault);
          return undefined;
        }
        if (ctl.signal.aborted) ctx.fail('stopped', 'stopped by user during the statistics step');
        else ctx.fail('failed', (err as Error).message);
        await ctx.persist().catch((e: unknown) => log.error({ err: e }, 'saving the run failed'));
        if (!ctl.signal.aborted) log.error({ runId: id, err: (err as Error).message }, 'run failed in its statistics step');
        return undefined;
      } finally {
        this.runs.delete(id);
      }
    })();
    this.runs.set(id, { ctx, ctl, launched });
  }

  /** Stops a run in its statistics step and returns its record once it has ended; undefined for any other run. */
  async stop(id: string): Promise<RunRecord | undefined> {
    const p = this.runs.get(id);
    if (!p) return undefined;
    p.ctl.abort(new Error('stopped by user'));
    await p.launched;
    return structuredClone(p.ctx.run);
  }

  /**
   * Watches a run in its statistics step: reports it, then calls `follow` to watch the engine once it exists (or
   * reports the end if it never does). Returns the unsubscribe function; undefined for any other run.
   */
  watch(id: string, fn: (view: () => RunRecord, ended: boolean) => void, follow: () => () => void): (() => void) | undefined {
    const p = this.runs.get(id);
    if (!p) return undefined;
    let off: (() => void) | undefined;
    let cancelled = false;
    const onPrep = (): void => fn(() => structuredClone(p.ctx.run), false);
    this.events.on(id, onPrep);
    queueMicrotask(onPrep);
    void p.launched.then((e) => {
      this.events.off(id, onPrep);
      if (cancelled) return;
      if (e) off = follow();
      else fn(() => structuredClone(p.ctx.run), true);
    });
    return () => {
      cancelled = true;
      this.events.off(id, onPrep);
      off?.();
    };
  }

  /** Coordinator shutdown: aborts every statistics step and waits for them to end. */
  async close(): Promise<void> {
    this.closing = true;
    for (const p of this.runs.values()) p.ctl.abort(new Error('coordinator shutting down'));
    await Promise.all([...this.runs.values()].map((p) => p.launched));
  }
}
