/** The run configuration: one zod schema, parsed once, with errors that name the option and the fix. */
import { z } from 'zod';
import { CODECS, TOPK_MAX_FRACTION, ValidationError } from '@fedge/proto';
import { checkPrivacyConfig, privacyConfigSchema } from '../privacy/config.js';
import { checkTaskConfig, evaluationSchema, stopAtSchema, taskConfigSchema } from './task-config.js';

export const BUILTIN_MODEL_NAMES = ['mnist-mlp', 'mnist-cnn'] as const;

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

export const runConfigSchema = z.strictObject({
  name: z.string().min(1).max(128).optional(),
  model: modelSchema.default('mnist-mlp'),
  strategy: z
    .strictObject({
      name: z.literal('fedavg', { message: 'strategy.name: only "fedavg" is available in this version' }).default('fedavg'),
      serverLearningRate: z.number().positive().max(100).default(1),
    })
    .default({ name: 'fedavg', serverLearningRate: 1 }),
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
  /** Stop as soon as the global model reaches this accuracy (central evaluation, else federated). */
  targetAccuracy: z.number().gt(0).max(1).optional(),
  /** What to learn: task type, target column(s), loss, optimizer, metrics, normalization (task-config.ts). */
  task: taskConfigSchema.optional(),
  /** Stop as soon as a version reaches this value of a metric (from below, or from above for rmse/mae/loss). */
  stopAt: stopAtSchema.optional(),
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
      /** K: a new global version is made from every K accepted updates. */
      bufferSize: z.number().int().min(1).max(100_000).default(3),
      /** Agents training at once; default: every available agent. */
      concurrency: z.number().int().min(1).max(1_000_000).optional(),
      /** Updates more than this many versions behind are rejected. */
      maxStaleness: z.number().int().min(0).max(1_000_000).default(20),
    })
    .default({ bufferSize: 3, maxStaleness: 20 }),
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
  /**
   * How agents pack their updates (see @fedge/proto codec.ts): float32 (none), int8 blocks (0.254x), or top-k sparse
   * (8 bytes per kept value). With error feedback, what a lossy codec dropped is added to the agent's next update.
   */
  compression: z
    .strictObject({
      codec: z.enum(CODECS, { message: `compression.codec: use one of ${CODECS.join(', ')}` }).default('float32'),
      topkFraction: z
        .number()
        .gt(0, `compression.topkFraction: must be in (0, ${TOPK_MAX_FRACTION}]`)
        .max(TOPK_MAX_FRACTION, `compression.topkFraction: must be in (0, ${TOPK_MAX_FRACTION}]; above it top-k is larger than float32`)
        .default(0.1),
      errorFeedback: z.boolean().default(true),
    })
    .default({ codec: 'float32', topkFraction: 0.1, errorFeedback: true }),
});

/** How a run's model reads in lists and logs: a built-in name, "mlp 64-32" or the model path. */
export function modelLabel(m: ModelConfig): string {
  if (typeof m === 'string') return m;
  return 'builtin' in m ? `mlp ${m.hidden.join('-')}` : m.path;
}

export type RunConfigInput = z.input<typeof runConfigSchema>;
export type RunConfig = z.output<typeof runConfigSchema> & { minResults: number };

/** Parses a run config, reporting each problem as `field: message`. */
export function parseRunConfig(input: unknown): RunConfig {
  const r = runConfigSchema.safeParse(input);
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
  checkPrivacyConfig(c);
  checkTaskConfig(c);
  return { ...c, minResults };
}
