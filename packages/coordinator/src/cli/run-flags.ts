/** Turns `fedge run start` / `fedge demo` flags and an optional config file into one run-config object. */
import { readFileSync } from 'node:fs';
import { Command, InvalidArgumentError } from 'commander';
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
}

const intArg = (flag: string) => (v: string): number => {
  const n = Number(v);
  if (!Number.isInteger(n)) throw new InvalidArgumentError(`${flag} must be an integer, got "${v}"`);
  return n;
};
const numArg = (flag: string) => (v: string): number => {
  const n = Number(v);
  if (!Number.isFinite(n)) throw new InvalidArgumentError(`${flag} must be a number, got "${v}"`);
  return n;
};

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
    .option('--seed <n>', 'seed for agent sampling and local shuffling', intArg('--seed'));
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
  return cfg;
}
