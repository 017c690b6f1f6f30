/** The run configuration: one zod schema, parsed once, with errors that name the option and the fix. */
import { z } from 'zod';
import { ValidationError } from '@fedge/proto';
import { compressesUplink, compressionSchema, uplinkName, type CompressionConfig } from './compression.js';
import { checkPrivacyConfig, privacyConfigSchema } from '../privacy/config.js';
import { checkSecureAggregation, secureAggregationSchema } from './secagg-config.js';
import { checkTaskConfig, evaluationSchema, stopAtSchema, taskConfigSchema } from './task-config.js';
import { promotionConfigSchema } from './promotion-config.js';
import { trackingSchema } from './tracking-config.js';
import { retentionSchema } from './retention.js';

const BUILTIN_MODEL_NAMES = ['mnist-mlp', 'mnist-cnn'] as const;

type BuiltinModelName = (typeof BUILTIN_MODEL_NAMES)[number];
const MODEL_HINT = `use one of ${BUILTIN_MODEL_NAMES.join(', ')}, { "builtin": "mlp", "hidden": [64, 32] } or { "path": "model.json" }`;
const modelPathSchema = z.strictObject({
  path: z.string().min(1, 'model.path: give the path of a tfjs model.json on the coordinator'),
});
/** A tabular MLP sized from the data: input width from the fleet's schema, output width and activation from the task. */
const mlpSchema = z.strictObject({
  builtin: z.literal('mlp', { message: 'model.builtin: only "mlp" is available; for other architectures save a tfjs model and use { "path": "model.json" }' }),
  hidden: z.array(z.number().int().min(1).max(65_536)).max(16).default([64, 32]),
});
export type MlpModelConfig = z.output<typeof mlpSchema>;
export type ModelConfig = BuiltinModelName | { path: string } | MlpModelConfig;

/** A union would report only "Invalid input"; checking the form first gives a message for each form. */
const modelSchema = z.unknown().transform((v, ctx): ModelConfig => {
  if (v === undefined) return 'mnist-mlp';
  if (typeof v === 'string') {
    if ((BUILTIN_MODEL_NAMES as readonly string[]).includes(v)) return v as BuiltinModelName;
    if (v === 'mlp') return { builtin: 'mlp', hidden: [64, 32] };
    ctx.addIssue({ code: 'custom', message: `model: unknown model "${v}"; ${MODEL_HINT}` });
    return z.NEVER;
  }
  if (typeof v === 'object' && v !== null && 'builtin' in v) {
    const m = mlpSchema.safeParse(v);
    if (m.success) return m.data;
    for (const i of m.error.issues) ctx.addIssue({ code: 'custom', message: i.message.startsWith('model.') ? i.message : `model.${i.path.join('.') || 'builtin'}: ${i.message}`, path: i.path });
    return z.NEVER;
  }
  const r = modelPathSchema.safeParse(v);
  if (r.success) return r.data;
  for (const i of r.error.issues) ctx.addIssue({ code: 'custom', message: i.path.length ? `model.${i.path.join('.')}: ${i.message}` : `model: ${MODEL_HINT}`, path: i.path });
  return z.NEVER;
});

// ---------------------------------------------------------------- strategy

/** Every strategy a run may name (strategy/index.ts has a factory for each). */
export const STRATEGY_NAMES = [
  'fedavg', 'fedavgm', 'fedadam', 'fedyogi', 'fedadagrad', 'fedprox',
  'norm-bound', 'median', 'trimmed-mean', 'krum', 'multi-krum', 'scaffold',
] as const;
export type StrategyName = (typeof STRATEGY_NAMES)[number];

const ADAPTIVE: readonly StrategyName[] = ['fedadam', 'fedyogi', 'fedadagrad'];
const ALL: readonly StrategyName[] = STRATEGY_NAMES;
/** Aggregators that need every update of a round (coordinate-wise statistics, pairwise distances), not the streamed mean. */
const ROBUST_STRATEGIES = ['median', 'trimmed-mean', 'krum', 'multi-krum'] as const satisfies readonly StrategyName[];
const NOT_ROBUST: readonly StrategyName[] = ALL.filter((n) => !(ROBUST_STRATEGIES as readonly string[]).includes(n));
/**
 * SCAFFOLD's updates are [delta | control-variate delta]: clipping, noising or compressing that pair as one vector
 * would break c = mean(c_i) (the paper defines none of them), so it runs plain: sync, float32, no DP, no normBound.
 */
const NOT_SCAFFOLD: readonly StrategyName[] = ALL.filter((n) => n !== 'scaffold');

/** Which strategies each option applies to; any other pairing is an error naming both. */
export const STRATEGY_OPTIONS = {
  /** Server learning rate: 1 for fedavg, fedavgm, fedprox and scaffold (its global step size η_g); 1e-2 for the adaptive three (Reddi et al.'s grid). */
  serverLearningRate: ALL,
  /** Server momentum (fedavgm), default 0.9. */
  momentum: ['fedavgm'],
  /** First-moment decay, default 0.9 (fedadagrad: 0, plain Adagrad). */
  beta1: ADAPTIVE,
  /** Second-moment decay, default 0.99 (fedadagrad has none: it sums squares). */
  beta2: ['fedadam', 'fedyogi'],
  /** Adaptivity: the denominator is sqrt(v) + tau, default 1e-3. */
  tau: ADAPTIVE,
  /** FedProx's mu: agents add (mu/2)||w - w_global||^2 to their loss; any strategy; fedprox defaults it to 0.01. */
  proximalMu: ALL,
  /** Sun et al. 2019: every accepted update is scaled to at most this L2 norm before it is aggregated; any strategy; required by norm-bound. */
  normBound: NOT_SCAFFOLD,
  /** Trimmed mean: the share of values dropped at EACH end per coordinate, in [0, 0.5), default 0.1. */
  beta: ['trimmed-mean'],
  /** Krum / Multi-Krum: Byzantine updates tolerated, default 1 (a round needs more than 2f + 2 updates). */
  f: ['krum', 'multi-krum'],
  /** Multi-Krum: how many of the best-scored updates are averaged, default K - f. */
  m: ['multi-krum'],
} as const satisfies Record<string, readonly StrategyName[]>;

/**
 * Which strategies run where: sync rounds take all; async (FedBuff) mode takes those whose server step suits a
 * buffered pseudo-gradient (Nguyen et al. 2022 use FedAvg, server momentum and FedAdam; robust aggregators need a
 * whole round of updates); central differential privacy (a wrapper that noises the clipped mean before the server step,
 * its sensitivity bound is the mean's) takes all but the robust aggregators; local DP (agents noise their own
 * updates) takes all. One table for the config check, the CLI and the README.
 */
export const STRATEGY_COMBINATIONS: Record<'sync' | 'async' | 'privacy' | 'localPrivacy' | 'compression', readonly StrategyName[]> = {
  sync: ALL,
  async: ['fedavg', 'fedavgm', 'fedadam', 'fedprox', 'norm-bound'],
  /** Central DP (privacy.mode "central"). */
  privacy: NOT_ROBUST.filter((n) => n !== 'scaffold'),
  /** Local DP (privacy.mode "local"). */
  localPrivacy: NOT_SCAFFOLD,
  /** compression other than float32 (codec int8/topk, or any uplink pipeline but float32). */
  compression: NOT_SCAFFOLD,
};

type StrategyOption = keyof typeof STRATEGY_OPTIONS;
const unit = (key: string) => z.number().min(0, `strategy.${key}: must be in [0, 1)`).lt(1, `strategy.${key}: must be in [0, 1)`).optional();

/** "a, b or c". */
function orList(items: readonly string[]): string {
  return items.length <= 1 ? (items[0] ?? '') : `${items.slice(0, -1).join(', ')} or ${items.at(-1)}`;
}

const strategyInput = z.strictObject({
  name: z.enum(STRATEGY_NAMES, { message: `strategy.name: use one of ${STRATEGY_NAMES.join(', ')}` }).default('fedavg'),
  serverLearningRate: z.number().positive().max(100).optional(),
  momentum: unit('momentum'),
  beta1: unit('beta1'),
  beta2: unit('beta2'),
  tau: z.number().positive('strategy.tau: must be > 0 (it keeps sqrt(v) + tau away from 0)').max(1e3).optional(),
  proximalMu: z.number().min(0, 'strategy.proximalMu: must be >= 0').max(1e6).optional(),
  normBound: z.number().positive('strategy.normBound: must be > 0 (the L2 norm updates are scaled down to)').max(1e12).optional(),
  beta: z.number().min(0, 'strategy.beta: must be in [0, 0.5) (the share trimmed at EACH end)').lt(0.5, 'strategy.beta: must be in [0, 0.5) (the share trimmed at EACH end)').optional(),
  f: z.number().int('strategy.f: must be a whole number of updates').min(0, 'strategy.f: must be >= 0').max(100_000).optional(),
  m: z.number().int('strategy.m: must be a whole number of updates').min(1, 'strategy.m: must be >= 1').max(100_000).optional(),
});

export interface StrategyConfig {
  name: StrategyName;
  serverLearningRate: number;
  momentum?: number;
  beta1?: number;
  beta2?: number;
  tau?: number;
  proximalMu?: number;
  normBound?: number;
  beta?: number;
  f?: number;
  m?: number;
}

/** Options checked against the named strategy, then its defaults filled in (fedavg stays { name, serverLearningRate: 1 }). */
const strategySchema = strategyInput.transform((s, ctx): StrategyConfig => {
  for (const key of Object.keys(STRATEGY_OPTIONS) as StrategyOption[]) {
    const takes: readonly StrategyName[] = STRATEGY_OPTIONS[key];
    if (s[key] !== undefined && !takes.includes(s.name))
      ctx.addIssue({ code: 'custom', message: `strategy.${key}: applies to ${orList(takes)}, not ${s.name}` });
  }
  const adaptive = ADAPTIVE.includes(s.name);
  const out: StrategyConfig = { name: s.name, serverLearningRate: s.serverLearningRate ?? (adaptive ? 1e-2 : 1) };
  if (s.name === 'fedavgm') out.momentum = s.momentum ?? 0.9;
  if (adaptive) {
    out.beta1 = s.beta1 ?? (s.name === 'fedadagrad' ? 0 : 0.9);
    if (s.name !== 'fedadagrad') out.beta2 = s.beta2 ?? 0.99;
    out.tau = s.tau ?? 1e-3;
  }
  const mu = s.proximalMu ?? (s.name === 'fedprox' ? 0.01 : undefined);
  if (mu !== undefined) out.proximalMu = mu;
  if (s.name === 'norm-bound' && s.normBound === undefined)
    ctx.addIssue({ code: 'custom', message: 'strategy.normBound: norm-bound needs the bound, e.g. { "name": "norm-bound", "normBound": 5 } (--strategy norm-bound:bound=5)' });
  if (s.normBound !== undefined) out.normBound = s.normBound;
  if (s.name === 'trimmed-mean') out.beta = s.beta ?? 0.1;
  if (s.name === 'krum' || s.name === 'multi-krum') out.f = s.f ?? 1;
  if (s.m !== undefined) out.m = s.m;
  return out;
});

/** The combination rule (STRATEGY_COMBINATIONS): an error naming the strategy and what it cannot run with. */
function checkStrategyCombination(c: {
  strategy: { name: StrategyName };
  mode: 'sync' | 'async';
  privacy?: { mode?: string } | undefined;
  compression: CompressionConfig;
  task?: { optimizer?: { name: string } | undefined } | undefined;
  sync?: { lateResults: string };
}): void {
  const name = c.strategy.name;
  const refuse = (what: string, allowed: readonly StrategyName[]): never => {
    throw new ValidationError(`invalid run config: strategy.name ${name} cannot run with ${what}; use ${orList(allowed)}`);
  };
  if (!STRATEGY_COMBINATIONS[c.mode].includes(name)) refuse(`mode ${c.mode}`, STRATEGY_COMBINATIONS[c.mode]);
  if (c.privacy !== undefined) {
    const local = c.privacy.mode === 'local';
    const allowed = STRATEGY_COMBINATIONS[local ? 'localPrivacy' : 'privacy'];
    if (!allowed.includes(name)) refuse(local ? 'privacy mode local (local differential privacy)' : 'privacy mode central (central differential privacy; privacy.mode "local" is allowed)', allowed);
  }
  if (compressesUplink(c.compression) && !STRATEGY_COMBINATIONS.compression.includes(name))
    refuse(`compression.codec ${uplinkName(c.compression)} (its updates must travel as float32; use compression.codec float32)`, STRATEGY_COMBINATIONS.compression);
  // SCAFFOLD corrects plain SGD steps (Karimireddy et al. define it for SGD); agents refuse other optimizers too.
  const opt = c.task?.optimizer?.name;
  if (name === 'scaffold' && opt !== undefined && opt !== 'sgd')
    throw new ValidationError(`invalid run config: strategy.name scaffold cannot run with task.optimizer.name ${opt}; SCAFFOLD corrects plain SGD steps, so use "optimizer": { "name": "sgd" }`);
  // A late update was trained from an older x and c, and its staleness discount would weight the mean of Δc_i: c would
  // drift from the mean of the agents' variates.
  if (name === 'scaffold' && c.sync?.lateResults === 'next-round')
    throw new ValidationError('invalid run config: strategy.name scaffold cannot run with sync.lateResults next-round; use sync.lateResults discard (the default)');
}

export const runConfigSchema = z.strictObject({
  name: z.string().min(1).max(128).optional(),
  model: modelSchema.default('mnist-mlp'),
  strategy: strategySchema.prefault({}),
  rounds: z.number().int().min(1).max(1_000_000).default(10),
  agentsPerRound: z
    .strictObject({
      fraction: z.number().gt(0, 'agentsPerRound.fraction must be in (0, 1]').max(1).default(1),
      min: z.number().int().min(1).max(100_000).default(2),
    })
    .default({ fraction: 1, min: 2 }),
  minResults: z.number().int().min(1).optional(),
  epochs: z.number().int().min(1).max(1000).default(1),
  batchSize: z.number().int().min(1).max(65_536).default(32),
  learningRate: z.number().positive().max(100).default(0.05),
  roundDeadlineSeconds: z.number().positive().max(7 * 24 * 3600).default(600),
  waitForAgentsSeconds: z.number().positive().max(7 * 24 * 3600).default(3600),
  centralEvaluation: z.boolean().default(true),
  seed: z.number().int().min(0).max(2 ** 31 - 1).default(42),
  /**
   * How agents' training seeds are picked: "invitation" (the invitation index in the round) or "agent" (a hash of the
   * agent's name: the same whichever coordinator invites it, so a tree of aggregator sites reproduces a flat federation).
   */
  taskSeeds: z.enum(['invitation', 'agent'], { message: 'taskSeeds: use "invitation" or "agent"' }).default('invitation'),
  /**
   * Set by an aggregator site (fedge serve --upstream) on the one-round sub-run it starts for a root task: the root's
   * run, round and task, and the root round's seed base (agents seed as under taskSeeds "agent"); with the root's
   * DP, the clip norm its agents clip their updates to (and, central, the site round checks) and, local, the noise
   * they add; `evaluate`: the root task
   * is an evaluation, so the sub-run only evaluates the root's version on the site's agents. Not for users.
   */
  upstream: z.strictObject({ runId: z.string().min(1).max(256), round: z.number().int().min(0), taskId: z.string().min(1).max(512), site: z.string().min(1).max(256), seedBase: z.number().int(), clipNorm: z.number().positive().optional(), noiseStd: z.number().positive().optional(), evaluate: z.boolean().optional() }).optional(),
  /** Stop as soon as the global model reaches this accuracy (central evaluation, else federated). */
  targetAccuracy: z.number().gt(0).max(1).optional(),
  /** What to learn: task type, target column(s), loss, optimizer, metrics, normalization (task-config.ts). */
  task: taskConfigSchema.optional(),
  /** Stop as soon as a version reaches this value of a metric (from below, or from above for rmse/mae/loss). */
  stopAt: stopAtSchema.optional(),
  /** At the run's end: promote its best version through a self-healing canary if it reaches minMetric, else alert. */
  promotion: promotionConfigSchema.optional(),
  /** Central evaluation on a held-out file the coordinator reads (the user's own data). */
  evaluation: evaluationSchema.optional(),
  mode: z.enum(['sync', 'async'], { message: 'mode: use "sync" (rounds) or "async" (buffered, FedBuff)' }).default('sync'),
  sync: z
    .strictObject({
      /** Invite this fraction more agents than needed and close the round on the first results that suffice. */
      overSelection: z.number().min(0).max(10).default(0),
      /** What happens to a result that arrives after its round closed. */
      lateResults: z.enum(['discard', 'next-round'], { message: 'sync.lateResults: use "discard" or "next-round"' }).default('discard'),
    })
    .default({ overSelection: 0, lateResults: 'discard' }),
  async: z
    .strictObject({
      /**
       * K: a new global version is made from every K accepted updates. "auto" (default): autoBufferSize() of the
       * concurrency, chosen when the run starts and written into the run's config (fedge run show lists it).
       */
      bufferSize: z
        .union([z.literal('auto'), z.number().int().min(1).max(100_000)], { message: 'async.bufferSize: use "auto" or a whole number of updates >= 1' })
        .default('auto'),
      /** Agents training at once; default: every available agent. */
      concurrency: z.number().int().min(1).max(1_000_000).optional(),
      /** Updates more than this many versions behind are rejected. */
      maxStaleness: z.number().int().min(0).max(1_000_000).default(20),
      /**
       * An update from an agent whose task took d times the median of the agents' last task times weighs d times more
       * (1 to SPEED_WEIGHT_MAX): a slow agent sends d times fewer updates, so its data then counts as much per unit of
       * time as a fast agent's instead of being crowded out (label shards, 3 of 10 agents 10x slower, 60 versions:
       * 82% without it, 86-88% with it; the labels only slow agents hold are what was missing). Not applied under
       * differential privacy (an update's weight must stay at most 1 there).
       */
      speedWeighting: z.boolean().default(true),
    })
    .default({ bufferSize: 'auto', maxStaleness: 20, speedWeighting: true }),
  /** Discount of late (sync next-round) and stale (async) updates by how many versions behind they are. */
  staleness: z
    .discriminatedUnion('fn', [
      z.strictObject({ fn: z.literal('constant') }),
      z.strictObject({ fn: z.literal('polynomial'), a: z.number().min(0).max(100).default(0.5) }),
      z.strictObject({ fn: z.literal('hinge'), a: z.number().min(0).max(100).default(10), b: z.number().int().min(0).default(4) }),
    ], { message: 'staleness.fn: use "constant", "polynomial" or "hinge"' })
    .default({ fn: 'polynomial', a: 0.5 }),
  /** Differential privacy (see privacy/config.ts and strategy/dp.ts); absent: off. */
  privacy: privacyConfigSchema.optional(),
  /** Live experiment tracking (config/tracking-config.ts): the MLflow server and experiment the run is logged to as it goes. */
  tracking: trackingSchema.optional(),
  /** Secure aggregation (config/secagg-config.ts, engine/secagg-round.ts): the coordinator learns only each round's sum; absent: off. */
  secureAggregation: secureAggregationSchema.optional(),
  /**
   * How agents pack their updates and receive models (config/compression.ts): codec/topkFraction as before, or
   * uplink/downlink pipelines ("topk:0.001+q8", "delta+fp16"); error feedback with momentum correction and warm-up.
   */
  compression: compressionSchema,
  /** Model retention (config/retention.ts): how many versions' weights the store keeps; absent: the coordinator's default. */
  retention: retentionSchema.optional(),
});

/**
 * async.bufferSize "auto": K = min(agents training at once, 10). FedBuff (Nguyen et al. 2022) buffers K = 10 updates
 * with hundreds to thousands of clients in flight; a smaller fleet gets K = its concurrency, so a version holds about
 * one update per agent in flight (fast agents stand in for the slow ones instead of being waited for).
 */
export const AUTO_BUFFER_SIZE_MAX = 10;

export function autoBufferSize(concurrency: number): number {
  return Math.max(1, Math.min(AUTO_BUFFER_SIZE_MAX, Math.floor(concurrency)));
}

/** The largest async.speedWeighting factor: an agent more than this many times slower than the median is not fully compensated. */
export const SPEED_WEIGHT_MAX = 10;

/** The run's K once the async driver has resolved "auto" (it writes the number into the run's config first). */
export function bufferSizeOf(c: Pick<RunConfig, 'async'>): number {
  const k = c.async.bufferSize;
  if (k === 'auto') throw new Error('async.bufferSize "auto" is resolved when the async run starts; it was read before that');
  return k;
}

/**
 * The server step of an async run that names no strategy: FedAdam (beta1 0.9, beta2 0.99, tau 1e-3) on the buffered
 * pseudo-gradient at server lr 0.005, one of the server optimizers FedBuff is run with (Nguyen et al. 2022). On
 * label-skewed fleets each buffer pulls toward the labels of whoever filled it and a straggler's speed-weighted update
 * arrives as a burst: FedAdam's first moment averages ~10 buffers and its per-coordinate step stays near its lr
 * however large the burst, where FedAvgM's step grows with it. Measured (fedge demo --agents 10 --stragglers 0.3
 * --partition shards --mode async --rounds 60, one run each, bench/results/async-defaults-tuning.json): 90% at version
 * 49 (seed 42) and 40 (seed 7), not on seed 1, where two of the ten digits are held only by stragglers (peak 89.5%);
 * FedAvgM at lr 0.1 ended at 86-88% (seed 42), FedAdam at lr 0.01 reached 90% at 57 and at 0.02 not. Options given
 * without a name (e.g. serverLearningRate) apply to it.
 */
export const ASYNC_DEFAULT_STRATEGY = { name: 'fedadam', serverLearningRate: 0.005 } as const;

/** Defaults that depend on the mode, filled in before the schema's own (an explicit strategy.name always wins). */
function withModeDefaults(input: unknown): unknown {
  if (typeof input !== 'object' || input === null || (input as { mode?: unknown }).mode !== 'async') return input;
  const strategy = (input as { strategy?: unknown }).strategy ?? {};
  if (typeof strategy !== 'object' || strategy === null || (strategy as { name?: unknown }).name !== undefined) return input;
  return { ...input, strategy: { ...ASYNC_DEFAULT_STRATEGY, ...strategy } };
}

/** How a run's model reads in lists and logs: a built-in name, "mlp 64-32" or the model path. */
export function modelLabel(m: ModelConfig): string {
  if (typeof m === 'string') return m;
  return 'builtin' in m ? `mlp ${m.hidden.join('-')}` : m.path;
}

export type RunConfigInput = z.input<typeof runConfigSchema>;
export type RunConfig = z.output<typeof runConfigSchema> & { minResults: number };

/** Parses a run config, reporting each problem as `field: message`. */
export function parseRunConfig(input: unknown): RunConfig {
  const r = runConfigSchema.safeParse(withModeDefaults(input));
  if (!r.success) {
    const msg = r.error.issues
      .slice(0, 5)
      .map((i) => {
        const field = i.path.map(String).join('.') || 'config';
        if (i.code === 'unrecognized_keys') return `${field}: unknown option(s) ${i.keys.join(', ')} (check the spelling; see fedge run start --help)`;
        return i.message.startsWith(field) ? i.message : `${field}: ${i.message}`;
      })
      .join('; ');
    throw new ValidationError(`invalid run config: ${msg}`, { cause: r.error });
  }
  const c = r.data;
  // A task without a model means the user's own data: the MNIST default would not fit it, the data-sized MLP does.
  const raw = input as { model?: unknown; task?: unknown } | undefined;
  if (raw?.model === undefined && raw?.task !== undefined) c.model = { builtin: 'mlp', hidden: [64, 32] };
  const minResults = c.minResults ?? c.agentsPerRound.min;
  if (minResults > c.agentsPerRound.min)
    throw new ValidationError(
      `invalid run config: minResults (${minResults}) cannot exceed agentsPerRound.min (${c.agentsPerRound.min}); lower minResults or raise agentsPerRound.min`,
    );
  checkStrategyCombination(c);
  checkPrivacyConfig(c);
  checkSecureAggregation(c);
  checkTaskConfig(c);
  return { ...c, minResults };
}
