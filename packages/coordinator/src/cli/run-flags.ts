/** Turns `fedge run start` / `fedge demo` flags and an optional config file into one run-config object. */
import { readFileSync } from 'node:fs';
import { Command, InvalidArgumentError } from 'commander';
import { intArg, numArg } from './args.js';
import { ValidationError } from '@fedge/proto';

export interface RunFlags {
  config?: string;
  name?: string;
  model?: string;
  rounds?: number;
  minAgents?: number;
  fraction?: number;
  minResults?: number;
  epochs?: number;
  batchSize?: number;
  lr?: number;
  deadline?: number;
  seed?: number;
  mode?: string;
  overSelection?: number;
  lateResults?: string;
  bufferSize?: number;
  concurrency?: number;
  maxStaleness?: number;
  staleness?: string;
  targetAccuracy?: number;
  compression?: Record<string, unknown>;
  errorFeedback?: boolean;
}

/** `polynomial[:a]`, `hinge[:a,b]` or `constant` into the run-config form. */
export function parseStaleness(v: string): Record<string, unknown> {
  const [fn, args = ''] = v.split(':');
  const nums = args ? args.split(',').map(Number) : [];
  if (nums.some((n) => !Number.isFinite(n))) throw new InvalidArgumentError(`--staleness: bad numbers in "${v}"`);
  if (fn === 'constant') return { fn };
  if (fn === 'polynomial') return nums.length ? { fn, a: nums[0] } : { fn };
  if (fn === 'hinge') return { fn, ...(nums.length > 0 ? { a: nums[0] } : {}), ...(nums.length > 1 ? { b: nums[1] } : {}) };
  throw new InvalidArgumentError(`--staleness: use polynomial[:a], hinge[:a,b] or constant, got "${v}"`);
}

/** `float32` (or `none`), `int8`, or `topk[:fraction]` into the run-config form. */
export function parseCompression(v: string): Record<string, unknown> {
  const [codec, arg] = v.split(':');
  if (codec === 'none' || codec === 'float32') return { codec: 'float32' };
  if (codec === 'int8' && arg === undefined) return { codec };
  if (codec === 'topk') {
    if (arg === undefined) return { codec };
    const f = Number(arg);
    if (!(Number.isFinite(f) && f > 0 && f <= 0.5)) throw new InvalidArgumentError(`--compression: the top-k fraction must be in (0, 0.5], got "${arg}"`);
    return { codec, topkFraction: f };
  }
  throw new InvalidArgumentError(`--compression: use none, int8 or topk[:fraction] (e.g. topk:0.1), got "${v}"`);
}

export function addRunFlags(cmd: Command): Command {
  return cmd
    .option('--model <name|path>', 'mnist-mlp, mnist-cnn, or the path of a tfjs model.json on the coordinator')
    .option('--rounds <n>', 'number of federated rounds', intArg('--rounds'))
    .option('--min-agents <n>', 'minimum agents per round (the round waits for them)', intArg('--min-agents'))
    .option('--fraction <f>', 'fraction of available agents invited per round, in (0, 1]', numArg('--fraction'))
    .option('--min-results <n>', 'results needed for a round to count (default: --min-agents)', intArg('--min-results'))
    .option('--epochs <n>', 'local epochs per round', intArg('--epochs'))
    .option('--batch-size <n>', 'local batch size', intArg('--batch-size'))
    .option('--lr <x>', 'local SGD learning rate', numArg('--lr'))
    .option('--deadline <seconds>', 'round deadline in seconds; agents still training then are recorded as late', numArg('--deadline'))
    .option('--seed <n>', 'seed for agent sampling and local shuffling', intArg('--seed'))
    .option('--target-accuracy <a>', 'stop as soon as the global model reaches this accuracy (0-1)', numArg('--target-accuracy'))
    .option('--mode <mode>', 'sync (rounds) or async (buffered aggregation, FedBuff)')
    .option('--over-selection <f>', 'sync: invite this fraction more agents and close on the first results needed', numArg('--over-selection'))
    .option('--late-results <policy>', 'sync: discard late results, or fold them into the next round (next-round)')
    .option('--buffer-size <k>', 'async: updates per new global version', intArg('--buffer-size'))
    .option('--concurrency <n>', 'async: agents training at once (default: all available)', intArg('--concurrency'))
    .option('--max-staleness <n>', 'async: reject updates more than n versions behind', intArg('--max-staleness'))
    .option('--staleness <fn>', 'discount of stale updates: polynomial[:a] (default polynomial:0.5), hinge[:a,b], constant', parseStaleness)
    .option('--compression <codec>', 'update compression: none, int8 (0.25x) or topk[:fraction] (default fraction 0.1)', parseCompression)
    .option('--no-error-feedback', 'with --compression: do not carry what the codec dropped into the next update');
}

/** File values first, flags override them; the coordinator validates the result with the run-config schema. */
export function buildRunConfig(flags: RunFlags): Record<string, unknown> {
  let cfg: Record<string, unknown> = {};
  if (flags.config) {
    let text: string;
    try {
      text = readFileSync(flags.config, 'utf8');
    } catch (err) {
      throw new ValidationError(`--config: cannot read ${flags.config} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
    }
    try {
      cfg = JSON.parse(text) as Record<string, unknown>;
    } catch (err) {
      throw new ValidationError(`--config: ${flags.config} is not valid JSON (${(err as Error).message})`);
    }
    if (typeof cfg !== 'object' || cfg === null || Array.isArray(cfg)) throw new ValidationError(`--config: ${flags.config} must contain a JSON object`);
  }
  const set = (k: string, v: unknown): void => {
    if (v !== undefined) cfg[k] = v;
  };
  set('name', flags.name);
  if (flags.model !== undefined) cfg.model = /\.json$|[\\/]/.test(flags.model) ? { path: flags.model } : flags.model;
  set('rounds', flags.rounds);
  if (flags.minAgents !== undefined || flags.fraction !== undefined) {
    const apr = { ...((cfg.agentsPerRound as Record<string, unknown> | undefined) ?? {}) };
    if (flags.minAgents !== undefined) apr.min = flags.minAgents;
    if (flags.fraction !== undefined) apr.fraction = flags.fraction;
    cfg.agentsPerRound = apr;
  }
  set('minResults', flags.minResults);
  set('epochs', flags.epochs);
  set('batchSize', flags.batchSize);
  set('learningRate', flags.lr);
  set('roundDeadlineSeconds', flags.deadline);
  set('seed', flags.seed);
  set('targetAccuracy', flags.targetAccuracy);
  set('mode', flags.mode);
  const merge = (key: string, patch: Record<string, unknown>): void => {
    const defined = Object.fromEntries(Object.entries(patch).filter(([, v]) => v !== undefined));
    if (Object.keys(defined).length) cfg[key] = { ...((cfg[key] as Record<string, unknown> | undefined) ?? {}), ...defined };
  };
  merge('sync', { overSelection: flags.overSelection, lateResults: flags.lateResults });
  merge('async', { bufferSize: flags.bufferSize, concurrency: flags.concurrency, maxStaleness: flags.maxStaleness });
  if (flags.staleness !== undefined) cfg.staleness = flags.staleness;
  // commander sets errorFeedback to true unless --no-error-feedback was given: only the explicit "no" overrides the file.
  merge('compression', { ...flags.compression, ...(flags.errorFeedback === false ? { errorFeedback: false } : {}) });
  return cfg;
}
