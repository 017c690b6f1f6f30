/** Turns `fedge run start` / `fedge demo` flags and an optional config file into one run-config object. */
import { readFileSync } from 'node:fs';
import { Command, InvalidArgumentError, Option } from 'commander';
import { intArg, numArg } from './args.js';
import { LOSSES, METRICS, NORMALIZATIONS, OPTIMIZERS, TASK_TYPES, ValidationError, parsePipeline } from '@fedge/proto';

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
  /** --downlink-compression SPEC: compression.downlink. */
  downlinkCompression?: string;
  errorFeedback?: boolean;
  strategy?: Record<string, unknown>;
  /** Secure aggregation with the defaults (a --config file's secureAggregation block keeps its settings). */
  secagg?: boolean;
}

/** The task flags (`addTaskFlags`): each lands in the run config's task, stopAt, model or evaluation. */
export interface TaskFlags {
  task?: string;
  target?: (string | number)[];
  loss?: string;
  optimizer?: string;
  momentum?: number;
  beta1?: number;
  beta2?: number;
  metrics?: string[];
  normalization?: string;
  stopAt?: { metric: string; value: number };
  hidden?: number[];
  evalData?: string;
  evalTarget?: (string | number)[];
}

const STOP_METRICS = [...METRICS, 'loss'];
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** A column by name, or by 0-based index when it is all digits (as fedge-agent --target reads it). */
function collectColumn(v: string, prev: (string | number)[] | undefined): (string | number)[] {
  const col = /^\d+$/.test(v) ? Number(v) : v;
  return [...(prev ?? []), col];
}

/** `rmse:2.5` into { metric, value }: stop once a version reaches it (from above for rmse, mae and loss). */
export function parseStopAt(v: string): { metric: string; value: number } {
  const i = v.lastIndexOf(':');
  const metric = i > 0 ? v.slice(0, i) : '';
  const value = Number(i > 0 ? v.slice(i + 1) : NaN);
  if (!STOP_METRICS.includes(metric) || !Number.isFinite(value))
    throw new InvalidArgumentError(`--stop-at: use METRIC:VALUE with METRIC one of ${STOP_METRICS.join(', ')} (e.g. rmse:2.5 or accuracy:0.9), got "${v}"`);
  return { metric, value };
}

/** `rmse,r2` into a metric list (each one fedge computes). */
function parseMetricList(v: string): string[] {
  const list = v.split(',').map((m) => m.trim()).filter(Boolean);
  const bad = list.find((m) => !(METRICS as readonly string[]).includes(m));
  if (bad !== undefined || list.length === 0) throw new InvalidArgumentError(`--metrics: use a comma-separated list of ${METRICS.join(', ')} (e.g. rmse,r2), got "${v}"`);
  return [...new Set(list)];
}

/** `64,32` into hidden layer widths of the built-in MLP. */
export function parseHidden(v: string): number[] {
  const h = v.split(',').map((x) => Number(x.trim()));
  if (h.length === 0 || !h.every((x) => Number.isInteger(x) && x >= 1 && x <= 65_536))
    throw new InvalidArgumentError(`--hidden: use comma-separated layer widths between 1 and 65536 (e.g. 64,32), got "${v}"`);
  return h;
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

/** Short names `--strategy` takes for the run config's strategy options. */
const STRATEGY_KEYS: Record<string, string> = {
  lr: 'serverLearningRate', serverLr: 'serverLearningRate', serverLearningRate: 'serverLearningRate',
  mu: 'proximalMu', proximalMu: 'proximalMu', momentum: 'momentum', beta1: 'beta1', beta2: 'beta2', tau: 'tau',
  beta: 'beta', f: 'f', m: 'm', bound: 'normBound', normBound: 'normBound',
};

/** `NAME[:k=v,...]` (e.g. `fedadam:lr=0.01,beta1=0.9`, `fedprox:mu=0.1`) into the run-config form; the config checks the rest. */
export function parseStrategy(v: string): Record<string, unknown> {
  const [name, args = ''] = v.split(/:(.*)/s);
  if (!name || !/^[a-z-]+$/.test(name)) throw new InvalidArgumentError(`--strategy: use NAME[:key=value,...], e.g. fedadam:lr=0.01 or fedprox:mu=0.1; got "${v}"`);
  const out: Record<string, unknown> = { name };
  for (const kv of args ? args.split(',') : []) {
    const [k, val] = kv.split('=');
    const key = k ? STRATEGY_KEYS[k.trim()] : undefined;
    if (!key) throw new InvalidArgumentError(`--strategy: unknown option "${k}" in "${v}"; use ${Object.keys(STRATEGY_KEYS).join(', ')}`);
    const n = Number(val);
    if (val === undefined || val.trim() === '' || !Number.isFinite(n)) throw new InvalidArgumentError(`--strategy: ${k} needs a number, e.g. ${k}=0.1; got "${kv}"`);
    out[key] = n;
  }
  return out;
}

/** --strategy over a file's strategy: the same name keeps the file's options, another name starts from the flag's. */
export function mergeStrategy(cfg: Record<string, unknown>, flag: Record<string, unknown> | undefined, serverLr?: number): void {
  if (!flag && serverLr === undefined) return;
  const file = isObject(cfg.strategy) ? cfg.strategy : {};
  const base = flag && file.name !== undefined && file.name !== flag.name ? {} : file;
  cfg.strategy = { ...base, ...(flag ?? {}), ...(serverLr !== undefined ? { serverLearningRate: serverLr } : {}) };
}

/**
 * --compression SPEC: today's forms (`none`, `int8`, `topk[:fraction]`, 4-byte top-k indices) keep their run-config
 * form; any other spec is an uplink pipeline (`topk:0.001+q8`, `q4`, `fp16`, ...), checked here.
 */
export function parseCompression(v: string): Record<string, unknown> {
  if (!/^(none|float32|int8|topk(:[^+]*)?)$/.test(v.trim())) return { uplink: parsePipelineFlag(v, '--compression', 'uplink') };
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

/** A pipeline spec flag (--compression, --downlink-compression) in canonical form; a bad one names the flag. */
export function parsePipelineFlag(v: string, flag: string, direction: 'uplink' | 'downlink'): string {
  try {
    return parsePipeline(v, direction, flag).spec;
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
}

/**
 * What to learn and how to judge it. `omit` leaves out flags a command defines its own way (e.g. `fedge demo`
 * passes its --target to the agents as well).
 */
export function addTaskFlags(cmd: Command, omit: readonly (keyof TaskFlags)[] = []): Command {
  const add = (key: keyof TaskFlags, o: Option): void => {
    if (!omit.includes(key)) cmd.addOption(o);
  };
  add('task', new Option('--task <type>', 'what to learn (default classification)').choices(TASK_TYPES));
  add('target', new Option('--target <col>', 'label column: name, or 0-based index; repeat for multilabel/multi-output (default: the agents\' --target)').argParser(collectColumn));
  add('loss', new Option('--loss <name>', 'training loss (default: the task type\'s, e.g. mse for regression)').choices(LOSSES));
  add('optimizer', new Option('--optimizer <name>', 'local optimizer, learning rate from --lr (default sgd)').choices(OPTIMIZERS));
  add('momentum', new Option('--momentum <m>', 'with --optimizer momentum or rmsprop: momentum in [0, 1]').argParser(numArg('--momentum')));
  add('beta1', new Option('--beta1 <b>', 'with --optimizer adam: first-moment decay in [0, 1)').argParser(numArg('--beta1')));
  add('beta2', new Option('--beta2 <b>', 'with --optimizer adam: second-moment decay in [0, 1)').argParser(numArg('--beta2')));
  add('metrics', new Option('--metrics <list>', `metrics to report, comma-separated: ${METRICS.join(', ')} (default: the task type's)`).argParser(parseMetricList));
  add('normalization', new Option('--normalization <kind>', 'feature scaling from the fleet statistics (default zscore for tables, none for images)').choices(NORMALIZATIONS));
  add('stopAt', new Option('--stop-at <metric:value>', 'stop once a version reaches it, e.g. rmse:2.5 (from above for rmse/mae/loss) or auc:0.95').argParser(parseStopAt));
  add('hidden', new Option('--hidden <sizes>', 'built-in MLP (--model mlp) hidden layer widths, e.g. 64,32').argParser(parseHidden));
  add('evalData', new Option('--eval-data <spec>', 'central evaluation on a file the coordinator reads: csv:PATH, npy:X.npy,Y.npy, images:DIR or module:PATH.mjs'));
  add('evalTarget', new Option('--eval-target <col>', 'label column of --eval-data (default: the task\'s target); repeatable').argParser(collectColumn));
  return cmd;
}

export function addRunFlags(cmd: Command): Command {
  cmd
    .option('--model <name|path>', 'mnist-mlp, mnist-cnn, mlp (built-in tabular MLP sized from the data; --hidden), or the path of a tfjs model.json on the coordinator')
    .option('--rounds <n>', 'number of federated rounds', intArg('--rounds'))
    .option('--min-agents <n>', 'minimum agents per round (the round waits for them)', intArg('--min-agents'))
    .option('--fraction <f>', 'fraction of available agents invited per round, in (0, 1]', numArg('--fraction'))
    .option('--min-results <n>', 'results needed for a round to count (default: --min-agents)', intArg('--min-results'))
    .option('--epochs <n>', 'local epochs per round', intArg('--epochs'))
    .option('--batch-size <n>', 'local batch size', intArg('--batch-size'))
    .option('--lr <x>', 'local learning rate (also the task optimizer\'s, overriding task.optimizer.learningRate from --config)', numArg('--lr'))
    .option('--deadline <seconds>', 'round deadline in seconds; agents still training then are recorded as late', numArg('--deadline'))
    .option('--seed <n>', 'seed for agent sampling and local shuffling', intArg('--seed'))
    .option('--target-accuracy <a>', 'stop as soon as the global model reaches this accuracy (0-1)', numArg('--target-accuracy'))
    .option('--mode <mode>', "sync (rounds) or async (buffered aggregation, FedBuff; defaults: buffer of min(agents, 10) updates, fedadam at server lr 0.005, slow agents' updates weighted by their task time)")
    .option('--over-selection <f>', 'sync: invite this fraction more agents and close on the first results needed', numArg('--over-selection'))
    .option('--late-results <policy>', 'sync: discard late results, or fold them into the next round (next-round)')
    .option('--buffer-size <k>', 'async: updates per new global version (default: auto, min(concurrency, 10), chosen when the run starts)', intArg('--buffer-size'))
    .option('--concurrency <n>', 'async: agents training at once (default: all available)', intArg('--concurrency'))
    .option('--max-staleness <n>', 'async: reject updates more than n versions behind', intArg('--max-staleness'))
    .option('--staleness <fn>', 'discount of stale updates: polynomial[:a] (default polynomial:0.5), hinge[:a,b], constant', parseStaleness)
    .option('--compression <spec>', 'update compression: none, int8 (0.25x), topk[:fraction] (4-byte indices), or a pipeline such as topk:0.001+q8, q4, fp16 (stages: topk:F, then float32|fp16|int8|q8|q4|q2)', parseCompression)
    .option('--downlink-compression <spec>', 'model downloads as deltas from the version the agent holds: delta+fp16, delta+q8 or delta (exact)', (v: string) => parsePipelineFlag(v, '--downlink-compression', 'downlink'))
    .option('--strategy <spec>', 'aggregation strategy NAME[:k=v,...]: fedavg, fedavgm[:momentum=0.9], fedadam|fedyogi|fedadagrad[:lr=0.01,beta1=,beta2=,tau=], fedprox[:mu=0.01], median, trimmed-mean[:beta=0.1], krum[:f=1], multi-krum[:f=,m=], norm-bound:bound=B, scaffold[:lr=1] (sync, SGD agents, float32 updates twice a model\'s size); mu=... (FedProx) adds to any, bound=... (norm bound) to any but scaffold', parseStrategy)
    .option('--no-error-feedback', 'with --compression: do not carry what the codec dropped into the next update')
    .option('--secagg', 'secure aggregation: agents mask their updates so the coordinator learns only each round\'s weighted sum (sync; fedavg/fedavgm/fedadam/fedyogi/fedadagrad/fedprox; threshold and neighbors from the number of agents, or secureAggregation in --config)');
  return addTaskFlags(cmd);
}

/** A --config file: a JSON object (a run config), unchecked; the coordinator validates it with the run-config schema. */
export function readConfigFile(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ValidationError(`--config: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  let cfg: unknown;
  try {
    cfg = JSON.parse(text);
  } catch (err) {
    throw new ValidationError(`--config: ${file} is not valid JSON (${(err as Error).message})`);
  }
  if (!isObject(cfg)) throw new ValidationError(`--config: ${file} must contain a JSON object`);
  return cfg;
}

/** File values first, flags override them; the coordinator validates the result with the run-config schema. */
export function buildRunConfig(flags: RunFlags & TaskFlags): Record<string, unknown> {
  const cfg = flags.config ? readConfigFile(flags.config) : {};
  const set = (k: string, v: unknown): void => {
    if (v !== undefined) cfg[k] = v;
  };
  set('name', flags.name);
  // --model mlp keeps a file's MLP (its hidden sizes); any other --model replaces the file's model.
  const fileMlp = isObject(cfg.model) && cfg.model.builtin === 'mlp';
  if (flags.model !== undefined && !(flags.model === 'mlp' && fileMlp)) cfg.model = /\.json$|[\\/]/.test(flags.model) ? { path: flags.model } : flags.model;
  applyTaskFlags(cfg, flags);
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
  // The task optimizer's own rate wins over learningRate: a file's must not silently outlive --lr.
  const optimizer = (cfg.task as { optimizer?: Record<string, unknown> } | undefined)?.optimizer;
  if (flags.lr !== undefined && optimizer?.learningRate !== undefined) optimizer.learningRate = flags.lr;
  set('roundDeadlineSeconds', flags.deadline);
  set('seed', flags.seed);
  if (flags.targetAccuracy !== undefined) {
    if (flags.stopAt) throw new ValidationError('--stop-at and --target-accuracy: give one of them (--target-accuracy A is --stop-at accuracy:A)');
    cfg.targetAccuracy = flags.targetAccuracy;
    delete cfg.stopAt; // the flag replaces the file's stop rule, which the config would otherwise reject as a second one
  }
  set('mode', flags.mode);
  const merge = (key: string, patch: Record<string, unknown>): void => {
    const defined = Object.fromEntries(Object.entries(patch).filter(([, v]) => v !== undefined));
    if (Object.keys(defined).length) cfg[key] = { ...((cfg[key] as Record<string, unknown> | undefined) ?? {}), ...defined };
  };
  merge('sync', { overSelection: flags.overSelection, lateResults: flags.lateResults });
  merge('async', { bufferSize: flags.bufferSize, concurrency: flags.concurrency, maxStaleness: flags.maxStaleness });
  if (flags.staleness !== undefined) cfg.staleness = flags.staleness;
  // commander sets errorFeedback to true unless --no-error-feedback was given: only the explicit "no" overrides the file.
  // --compression replaces the file's uplink in whichever form it was (codec or uplink), not merges into it.
  if (flags.compression && isObject(cfg.compression)) {
    const { codec: _c, topkFraction: _t, uplink: _u, ...rest } = cfg.compression;
    cfg.compression = rest;
  }
  merge('compression', { ...flags.compression, downlink: flags.downlinkCompression, ...(flags.errorFeedback === false ? { errorFeedback: false } : {}) });
  mergeStrategy(cfg, flags.strategy);
  if (flags.secagg && !isObject(cfg.secureAggregation)) cfg.secureAggregation = {};
  return cfg;
}

/**
 * The task flags onto `cfg` (a --config file's values): merged into its task, model and evaluation objects, so a
 * flag changes one setting and keeps the rest of the file's task.
 */
export function applyTaskFlags(cfg: Record<string, unknown>, flags: TaskFlags): Record<string, unknown> {
  const task: Record<string, unknown> = isObject(cfg.task) ? { ...cfg.task } : {};
  const put = (k: string, v: unknown): void => {
    if (v !== undefined) task[k] = v;
  };
  put('type', flags.task);
  if (flags.target?.length) task.target = flags.target.length === 1 ? flags.target[0] : flags.target;
  put('loss', flags.loss);
  put('metrics', flags.metrics);
  put('normalization', flags.normalization);
  const fileOpt = isObject(task.optimizer) ? task.optimizer : undefined;
  if (flags.optimizer !== undefined || flags.momentum !== undefined || flags.beta1 !== undefined || flags.beta2 !== undefined) {
    const name = flags.optimizer ?? (fileOpt?.name as string | undefined);
    // Another optimizer than the file's: its options (beta1 of adam...) would not fit; only the learning rate carries over.
    const base = fileOpt && fileOpt.name === name ? fileOpt : fileOpt?.learningRate !== undefined ? { learningRate: fileOpt.learningRate } : {};
    const opt: Record<string, unknown> = { ...base, name };
    if (flags.momentum !== undefined) {
      if (name !== 'momentum' && name !== 'rmsprop') throw new ValidationError(`--momentum: applies to --optimizer momentum or rmsprop${name ? `, not ${String(name)}` : ''}; add --optimizer momentum`);
      opt.momentum = flags.momentum;
    }
    for (const k of ['beta1', 'beta2'] as const) {
      if (flags[k] === undefined) continue;
      if (name !== 'adam') throw new ValidationError(`--${k}: applies to --optimizer adam${name ? `, not ${String(name)}` : ''}; add --optimizer adam`);
      opt[k] = flags[k];
    }
    task.optimizer = opt;
  }
  if (Object.keys(task).length) cfg.task = task;

  if (flags.stopAt) {
    cfg.stopAt = flags.stopAt;
    delete cfg.targetAccuracy; // the flag replaces the file's stop rule
  }

  if (flags.hidden) {
    const m = cfg.model;
    const mlp = m === undefined || m === 'mlp' || (isObject(m) && m.builtin === 'mlp');
    if (!mlp) throw new ValidationError(`--hidden: sizes the built-in MLP only, but the model is ${JSON.stringify(m)}; add --model mlp (or drop --hidden)`);
    cfg.model = { ...(isObject(m) ? m : {}), builtin: 'mlp', hidden: flags.hidden };
  } else if (cfg.model === 'mlp') cfg.model = { builtin: 'mlp', hidden: [64, 32] };

  if (flags.evalData !== undefined || flags.evalTarget?.length) {
    const ev: Record<string, unknown> = isObject(cfg.evaluation) ? { ...cfg.evaluation } : {};
    if (flags.evalData !== undefined) ev.data = flags.evalData;
    if (flags.evalTarget?.length) ev.target = flags.evalTarget.length === 1 ? flags.evalTarget[0] : flags.evalTarget;
    if (ev.data === undefined) throw new ValidationError('--eval-target: needs the evaluation file too; add --eval-data csv:PATH (or "evaluation": { "data": ... } in --config)');
    cfg.evaluation = ev;
  }
  return cfg;
}
