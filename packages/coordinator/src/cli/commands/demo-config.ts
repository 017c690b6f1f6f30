/** `fedge demo`'s run config and agent flags: a --config file with the demo's flags on top, defaults that fit the data. */
import type { OutputFormat } from '../format.js';
import { applyTaskFlags, mergeStrategy, type RunFlags, type TaskFlags } from '../run-flags.js';

/** The demo's flags: the run flags it shares with `fedge run start` (same meaning), and its own. */
export interface DemoOpts
  extends Omit<TaskFlags, 'target'>,
    Pick<RunFlags, 'config' | 'rounds' | 'model' | 'epochs' | 'batchSize' | 'lr' | 'deadline' | 'targetAccuracy' | 'overSelection' | 'lateResults' | 'bufferSize' | 'concurrency' | 'compression' | 'downlinkCompression' | 'strategy'> {
  /** As typed (names or indexes): the agents get them as --target too. */
  target?: string[];
  agents: number;
  data: string;
  missing?: string;
  partition: string;
  seed: number;
  dataDir: string;
  format: OutputFormat;
  mode: 'sync' | 'async';
  stragglers: number;
  slowdown: number;
  attackers?: number;
  attack?: string;
  failRate?: number;
  staleness?: Record<string, unknown>;
  serverLr?: number;
  errorFeedback: boolean;
  /** Secure aggregation (run config secureAggregation with its defaults, or the --config file's block). */
  secagg?: boolean;
  /** With --secagg: each agent drops out after sending its masked input with this probability (simulated). */
  dropoutRate?: number;
  /** One `fedge-agent --simulate N` process instead of N agent processes (fleet.ts): virtual agents on one shared worker. */
  simulated?: boolean;
}

/**
 * Local training measured to suit each built-in model with plain SGD. mnist-mlp: E=2, B=32, lr 0.2 (95.7% in 10
 * rounds IID; the quickstart). mnist-cnn: E=1, B=10, lr 0.1 (McMahan et al.'s B=10; bench/learning.mjs: 97.3% at
 * round 36 on label shards, where E=2, B=32, lr 0.05 peaked at 96.2% in 50 rounds).
 */
export const MODEL_TRAINING: Record<string, { epochs: number; batchSize: number; learningRate: number }> = {
  'mnist-mlp': { epochs: 2, batchSize: 32, learningRate: 0.2 },
  'mnist-cnn': { epochs: 1, batchSize: 10, learningRate: 0.1 },
};
/** The demo's optimizer for the user's own data when none is named (see demoRunConfig). */
const DEFAULT_ADAM_LR = 0.01;
/** The share of the user's file the coordinator keeps back for central evaluation (agents leave these rows out). */
export const CENTRAL_HOLDOUT = 0.1;

/** Agent flags for the user's data: targets, missing values, and leaving out the rows the coordinator evaluates on. */
export function dataArgs(o: DemoOpts): string[] {
  if (o.data === 'mnist') return [];
  return [
    ...(o.target ?? []).flatMap((t) => ['--target', t]),
    ...(o.missing ? ['--missing', o.missing] : []),
    '--central-holdout', String(CENTRAL_HOLDOUT),
  ];
}

/** The run: the --config file, with the demo's flags on top and defaults that fit the data. */
export function demoRunConfig(opts: DemoOpts, base: Record<string, unknown>, min: number, fraction: number): Record<string, unknown> {
  const mnist = opts.data === 'mnist';
  const baseTask = (base.task ?? undefined) as Record<string, unknown> | undefined;
  const modelFlag = opts.model;
  const model: unknown = modelFlag === 'mlp' ? { builtin: 'mlp', ...(opts.hidden ? { hidden: opts.hidden } : {}) }
    : modelFlag ? (/\.json$|[\\/]/.test(modelFlag) ? { path: modelFlag } : modelFlag)
    : base.model ?? (mnist ? 'mnist-mlp' : { builtin: 'mlp', ...(opts.hidden ? { hidden: opts.hidden } : {}) });
  const task = !mnist || baseTask || opts.task || opts.target
    ? {
        ...baseTask,
        ...(opts.task ? { type: opts.task } : {}),
        ...(opts.target ? { target: opts.target.length === 1 ? opts.target[0] : opts.target } : {}),
      }
    : undefined;
  const trained = typeof model === 'string' ? MODEL_TRAINING[model] : undefined;
  const sync = (base.sync ?? {}) as Record<string, unknown>;
  const asyncCfg = (base.async ?? {}) as Record<string, unknown>;
  const { target: _t, task: _k, hidden: _h, ...taskFlags } = opts;
  const cfg = applyTaskFlags({
    ...base,
    name: base.name ?? 'demo',
    model,
    ...(task ? { task } : {}),
    rounds: opts.rounds ?? base.rounds ?? 10,
    agentsPerRound: { fraction, min },
    // Simulated failures would otherwise fail every round that loses one agent.
    ...(opts.failRate ? { minResults: Math.max(1, Math.ceil(min / 2)) } : { minResults: min }),
    epochs: opts.epochs ?? base.epochs ?? trained?.epochs ?? 2,
    batchSize: opts.batchSize ?? base.batchSize ?? trained?.batchSize ?? 32,
    learningRate: opts.lr ?? base.learningRate ?? trained?.learningRate ?? 0.05,
    seed: opts.seed,
    waitForAgentsSeconds: 180,
    roundDeadlineSeconds: opts.deadline ?? base.roundDeadlineSeconds ?? 600,
    mode: opts.mode,
    ...(mnist ? {} : { evaluation: { data: opts.data, ...(opts.target ? { target: opts.target } : {}), ...(opts.missing ? { missing: opts.missing } : {}), holdout: { fraction: CENTRAL_HOLDOUT, seed: opts.seed } } }),
    ...(opts.staleness ? { staleness: opts.staleness } : {}),
    // --compression replaces the file's uplink; --downlink-compression adds to whatever the file says.
    ...(opts.compression || opts.downlinkCompression
      ? { compression: { ...(opts.compression ? {} : (base.compression as Record<string, unknown> | undefined)), ...opts.compression, ...(opts.downlinkCompression ? { downlink: opts.downlinkCompression } : {}), errorFeedback: opts.errorFeedback } }
      : {}),
    ...(opts.targetAccuracy !== undefined ? { targetAccuracy: opts.targetAccuracy } : {}),
    ...(opts.secagg ? { secureAggregation: { ...((base.secureAggregation ?? {}) as Record<string, unknown>) } } : {}),
    sync: {
      ...sync,
      ...(opts.overSelection !== undefined ? { overSelection: opts.overSelection } : {}),
      ...(opts.lateResults !== undefined ? { lateResults: opts.lateResults } : {}),
    },
    async: {
      ...asyncCfg,
      ...(opts.bufferSize !== undefined ? { bufferSize: opts.bufferSize } : {}),
      ...(opts.concurrency !== undefined ? { concurrency: opts.concurrency } : {}),
    },
  }, taskFlags);
  mergeStrategy(cfg, opts.strategy, opts.serverLr);
  // Your own data, no optimizer or learning rate named anywhere: Adam at 0.01. Plain SGD at the MNIST rate diverges on
  // unscaled regression targets (auto-mpg's mpg, 9-46, overflowed in round 1), and Adam is what Keras users expect.
  const finalTask = cfg.task as { optimizer?: unknown } | undefined;
  if (!mnist && finalTask && finalTask.optimizer === undefined && opts.lr === undefined && base.learningRate === undefined)
    finalTask.optimizer = { name: 'adam', learningRate: DEFAULT_ADAM_LR };
  return cfg;
}
