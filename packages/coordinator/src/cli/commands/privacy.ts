/** `fedge privacy epsilon|noise`: the RDP accountant as a planner, offline (no coordinator needed). */
import { Command, Option } from 'commander';
import { ValidationError } from '@fedge/proto';
import { parseFormat, printJson, type OutputFormat } from '../format.js';
import { planEpsilon, planNoise } from '../../privacy/accountant.js';
import { DEFAULT_ORDERS } from '../../privacy/rdp.js';

function numberArg(flag: string): (v: string) => number {
  return (v: string) => {
    const x = Number(v);
    if (v.trim() === '' || !Number.isFinite(x)) throw new ValidationError(`${flag}: expected a number, got "${v}"`);
    return x;
  };
}

function ordersArg(v: string): number[] {
  const parts = v.split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (parts.length === 0) throw new ValidationError('--orders: give a comma-separated list of RDP orders, e.g. 1.5,2,4,8,16,32');
  return parts.map((p) => {
    const x = Number(p);
    if (!Number.isFinite(x) || x <= 1) throw new ValidationError(`--orders: every order must be a number greater than 1, got "${p}"`);
    return x;
  });
}

/** Puts the flag name in front of the planner's message ("sampling rate must be..." -> "--sampling-rate: ..."). */
function named<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (!(err instanceof ValidationError)) throw err;
    const flags: [RegExp, string][] = [
      [/^sampling rate/, '--sampling-rate'],
      [/^noise multiplier/, '--noise-multiplier'],
      [/^delta/, '--delta'],
      [/^steps/, '--steps'],
      [/^target epsilon/, '--target-epsilon'],
      [/^orders/, '--orders'],
    ];
    const hit = flags.find(([re]) => re.test(err.message));
    throw hit ? new ValidationError(`${hit[1]}: ${err.message}`) : err;
  }
}

interface CommonOpts {
  samplingRate: number;
  steps: number;
  delta: number;
  orders?: number[];
  format: OutputFormat;
}

function common(cmd: Command): Command {
  return cmd
    .requiredOption('--sampling-rate <q>', 'Poisson sampling rate q of one step, in (0, 1] (fraction of agents per round)', numberArg('--sampling-rate'))
    .requiredOption('--steps <t>', 'number of steps (aggregate updates, i.e. rounds), an integer >= 1', numberArg('--steps'))
    .requiredOption('--delta <d>', 'target delta, in (0, 1); usually below 1 / number of agents', numberArg('--delta'))
    .option('--orders <list>', `comma-separated RDP orders to optimize over (default: ${DEFAULT_ORDERS.length} orders from 1.1 to 1024)`, ordersArg)
    .addOption(new Option('--format <format>', 'output format: table or json').default('table').argParser(parseFormat));
}

export function privacyCommand(): Command {
  const privacy = new Command('privacy').description('plan differential privacy budgets (RDP accountant for the Poisson-subsampled Gaussian)');
  privacy.addHelpText(
    'after',
    `
Examples:
  fedge privacy epsilon --sampling-rate 0.1 --noise-multiplier 1.1 --steps 100 --delta 1e-5
  fedge privacy noise --target-epsilon 2 --sampling-rate 0.1 --steps 100 --delta 1e-5 --format json

Epsilon is for user-level (agent-level) DP with add/remove-one adjacency: each agent takes part in a step
independently with probability q, its clipped update has L2 norm <= S, and the sum gets N(0, (z S)^2) noise.
RDP (Mironov, Talwar, Zhang 2019) is converted with the bound of Canonne, Kamath, Steinke 2020 (as dp_accounting
and Opacus do).`,
  );

  common(
    privacy
      .command('epsilon')
      .description('epsilon spent after T steps with sampling rate q and noise multiplier z, at delta')
      .requiredOption('--noise-multiplier <z>', 'noise std divided by the clip norm, > 0', numberArg('--noise-multiplier'))
      .addHelpText(
        'after',
        `
Examples:
  fedge privacy epsilon --sampling-rate 0.1 --noise-multiplier 1.1 --steps 100 --delta 1e-5
  fedge privacy epsilon --sampling-rate 0.0025 --noise-multiplier 1.3 --steps 6000 --delta 1e-5 --format json
  # reproduce TensorFlow Privacy's compute_dp_sgd_privacy (its orders): epsilon 0.7242 at order 19
  fedge privacy epsilon --sampling-rate 0.0025 --noise-multiplier 1.3 --steps 6000 --delta 1e-5 \\
    --orders 1.25,1.5,1.75,2,2.25,2.5,3,3.5,4,4.5,$(seq -s, 5 63),128,256,512

JSON output: {"epsilon": 0.7242, "order": 19}`,
      ),
  ).action((opts: CommonOpts & { noiseMultiplier: number }) => {
    const r = named(() =>
      planEpsilon({ samplingRate: opts.samplingRate, noiseMultiplier: opts.noiseMultiplier, steps: opts.steps, delta: opts.delta, ...(opts.orders ? { orders: opts.orders } : {}) }),
    );
    if (opts.format === 'json') return printJson({ epsilon: r.epsilon, order: r.order });
    console.log(
      `epsilon ${fmt(r.epsilon)} at delta ${opts.delta} (optimal RDP order ${r.order}) after ${opts.steps} steps, sampling rate ${opts.samplingRate}, noise multiplier ${opts.noiseMultiplier}`,
    );
  });

  common(
    privacy
      .command('noise')
      .description('smallest noise multiplier whose epsilon after T steps stays within a target')
      .requiredOption('--target-epsilon <e>', 'epsilon budget, > 0', numberArg('--target-epsilon'))
      .addHelpText(
        'after',
        `
Examples:
  fedge privacy noise --target-epsilon 2 --sampling-rate 0.1 --steps 100 --delta 1e-5
  fedge privacy noise --target-epsilon 8 --sampling-rate 0.04 --steps 2000 --delta 1e-5 --format json

JSON output: {"noiseMultiplier": 1.355}`,
      ),
  ).action((opts: CommonOpts & { targetEpsilon: number }) => {
    const r = named(() =>
      planNoise({ targetEpsilon: opts.targetEpsilon, samplingRate: opts.samplingRate, steps: opts.steps, delta: opts.delta, ...(opts.orders ? { orders: opts.orders } : {}) }),
    );
    if (opts.format === 'json') return printJson({ noiseMultiplier: r.noiseMultiplier });
    console.log(
      `noise multiplier ${r.noiseMultiplier.toPrecision(6)} gives epsilon ${fmt(r.epsilon)} <= ${opts.targetEpsilon} at delta ${opts.delta} (order ${r.order}) after ${opts.steps} steps, sampling rate ${opts.samplingRate}`,
    );
  });
  return privacy;
}

function fmt(x: number): string {
  return Number.isFinite(x) ? x.toPrecision(6) : String(x);
}
