/** Drives a new run through the statistics step: waits for agents that report their data, combines, records RunData. */
import type { ModelBlob } from '@fedge/proto';
import type { RunContext } from './run-context.js';
import type { AgentRegistry } from './agent-registry.js';
import { runDataStep } from './data-step.js';
import { moduleLogger } from '../log.js';

const log = moduleLogger('data-step');

export interface PrepareDeps {
  registry: AgentRegistry;
  signal: AbortSignal;
  /** Called when the run record changed (agents arriving while it waits), for watchers. */
  onUpdate?: () => void;
}

/**
 * Resolves with the run's initial model once `run.data` is set and saved (through `ctx`, the record's writer). Waits
 * (up to waitForAgentsSeconds) for agentsPerRound.min online agents that reported a data profile, so the statistics
 * cover the fleet a round will invite. Throws when it cannot prepare (the caller fails the run with the message) or when `signal` aborts.
 */
export async function prepareRun(ctx: RunContext, blob: ModelBlob | undefined, deps: PrepareDeps): Promise<ModelBlob> {
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
  // The noised statistics are one more Gaussian-mechanism step the accountant composes (DpStrategy.restore).
  const spent = data.statisticsNoiseStd !== undefined && c.privacy ? { privacyState: { steps: 0, clipNorm: c.privacy.clipNorm, statisticsSteps: 1 } } : undefined;
  ctx.setData(data, spent);
  ctx.setMessage(`statistics step: ${data.agents.length} agents, ${data.n} examples, input width ${data.preprocessing.inputWidth}${data.refused.length ? `; refused ${data.refused.map((r) => `${r.name} (${r.reason})`).join('; ')}` : ''}`);
  await ctx.persist();
  log.info({ runId: run.id, agents: data.agents.map((a) => a.name), refused: data.refused, n: data.n, task: data.task }, 'statistics step done');
  return initial;
}
