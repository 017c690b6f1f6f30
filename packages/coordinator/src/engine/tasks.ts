/** The one place task messages are built and signed: train, evaluate, announce (new version) and promote. */
import { randomUUID } from 'node:crypto';
import type { SignedModelRef, TaskMsg, TrainConfigMsg } from '@fedge/proto';
import type { RunConfig } from '../config/run-config.js';
import { trainCodecFields } from '../config/compression.js';
import type { RunData } from '../store/store.js';
import type { GlobalModel } from './global-model.js';

/** TrainConfig.task_json for every task of a run with a data step (train, evaluate, announce, promote): agents encode and serve with it. */
export function taskPayloadJson(data: RunData | undefined): { taskJson?: string } {
  return data ? { taskJson: JSON.stringify({ task: data.task, preprocessing: data.preprocessing }) } : {};
}

/**
 * With taskSeeds "agent" (and in an aggregator site's sub-run) an agent's training seed is the round's base plus this
 * offset of its name (FNV-1a): the same agent trains with the same seed whichever coordinator or invitation order it
 * gets the task from, so a tree of sites trains exactly as a flat federation of the same agents.
 */
export function agentSeedOffset(name: string): number {
  let h = 0x811c9dc5;
  for (const b of Buffer.from(name, 'utf8')) h = Math.imul(h ^ b, 0x01000193) >>> 0;
  return h;
}

/** The seed base of round `r`: what invitation index or agent offset is added to. */
export function roundSeedBase(c: Pick<RunConfig, 'seed'>, r: number): number {
  return c.seed * 7919 + r * 101;
}

export interface TaskFactoryOptions {
  /** Signs (run, version, sha256) for every task that names a model, so agents can check the coordinator made it. */
  signModel?: (ref: SignedModelRef) => Uint8Array;
  /** Fields the strategy adds to training tasks (DP clip and noise, later FedProx's mu). */
  trainExtras?: () => Partial<TrainConfigMsg>;
}

export class TaskFactory {
  /** Built once: a run's task and preprocessing are fixed once its data step is over. */
  private readonly taskJson: { taskJson?: string };

  constructor(
    private readonly run: { readonly id: string; readonly config: RunConfig; readonly data?: RunData },
    private readonly opts: TaskFactoryOptions = {},
  ) {
    this.taskJson = taskPayloadJson(run.data);
  }

  private signature(version: number, sha256: string): { modelSignature?: Uint8Array } {
    return this.opts.signModel ? { modelSignature: this.opts.signModel({ runId: this.run.id, version, sha256 }) } : {};
  }

  /**
   * A training or evaluation task on `model` for round `r`; `i` (the invitation index) picks the agent's seed, or with
   * taskSeeds "agent" (and in a site's sub-run, whose base is the root's) `agentName` does.
   */
  round(kind: 'train' | 'evaluate', model: GlobalModel, r: number, i: number, deadline: number, agentName?: string): TaskMsg {
    const c = this.run.config;
    const base = c.upstream ? c.upstream.seedBase : roundSeedBase(c, r);
    const byName = (c.taskSeeds === 'agent' || c.upstream !== undefined) && agentName !== undefined;
    return {
      taskId: `${this.run.id}.${kind}.${r}.${randomUUID().slice(0, 8)}`,
      runId: this.run.id,
      round: r,
      modelVersion: model.version,
      kind,
      modelSha256: model.sha256,
      modelBytes: model.bytes.byteLength,
      ...this.signature(model.version, model.sha256),
      config: {
        epochs: c.epochs,
        batchSize: c.batchSize,
        learningRate: c.learningRate,
        seed: base + (byName ? agentSeedOffset(agentName) : i),
        ...this.taskJson,
        ...(kind === 'train' ? this.opts.trainExtras?.() : undefined),
        // A site's sub-run under its root's DP: its agents clip (and with local DP noise) as the root's own agents would.
        ...(kind === 'train' && c.upstream?.clipNorm ? { clipNorm: c.upstream.clipNorm, noiseStd: c.upstream.noiseStd ?? 0 } : {}),
        // Warm-up (compression.warmupRounds) makes the top-k density of the codec depend on the round.
        ...(kind === 'train' ? trainCodecFields(c.compression, r) : {}),
      },
      deadlineUnixMs: deadline,
    };
  }

  /** Tells serving agents a new version exists (runs without a promotion: they follow every version). */
  announce(model: GlobalModel, round: number): TaskMsg {
    return { ...this.round('evaluate', model, round, 0, 0), taskId: `${this.run.id}.announce.${model.version}`, kind: 'announce' };
  }

  /** Tells serving agents to serve `model` (fedge model promote / rollback, and agents reconnecting to a promoted run). */
  promote(model: GlobalModel, round: number): TaskMsg {
    return {
      taskId: `${this.run.id}.promote.${model.version}.${randomUUID().slice(0, 8)}`,
      runId: this.run.id,
      round,
      modelVersion: model.version,
      kind: 'promote',
      modelSha256: model.sha256,
      modelBytes: model.bytes.byteLength,
      config: { epochs: 0, batchSize: 0, learningRate: 0, seed: 0, ...this.taskJson },
      deadlineUnixMs: 0,
      ...this.signature(model.version, model.sha256),
    };
  }
}
