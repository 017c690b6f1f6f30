/** The strategy registry: a run's `strategy.name` picks a factory here; a privacy block wraps the result in DP. */
import type { GaussianSampler } from '@fedge/proto';
import { bufferSizeOf, STRATEGY_NAMES, type RunConfig } from '../config/run-config.js';
import { DpStrategy } from './dp.js';
import { FedAvg, type FedAvgOptions } from './fedavg.js';
import type { ServerOptName } from './rules/server-opt.js';
import { RobustStrategy, type RobustName } from './robust.js';
import { ScaffoldStrategy } from './scaffold.js';
import { ServerOptStrategy } from './server-opt.js';
import type { Strategy } from './strategy.js';

export interface StrategyDeps {
  /** Number of registered agents (central DP fixes its denominator q * N from it at the first round). */
  populationSize: () => number;
  /** DP noise source; default: the OS CSPRNG. Seeded sources are for tests only. */
  noise?: GaussianSampler;
}

type StrategyFactory = (config: RunConfig, deps: StrategyDeps) => Strategy;

/** FedAvg's selection and weighting, from the run config. */
function fedavgOptions(c: RunConfig): FedAvgOptions {
  return { fraction: c.agentsPerRound.fraction, minAgents: c.agentsPerRound.min, minResults: c.minResults, serverLearningRate: c.strategy.serverLearningRate };
}

/** A server optimizer strategy with the run's options (the config filled in their defaults). */
function serverOpt(rule: ServerOptName): StrategyFactory {
  return (c) => {
    const s = c.strategy;
    return new ServerOptStrategy(rule, fedavgOptions(c), {
      serverLr: s.serverLearningRate,
      ...(s.momentum !== undefined ? { momentum: s.momentum } : {}),
      ...(s.beta1 !== undefined ? { beta1: s.beta1 } : {}),
      ...(s.beta2 !== undefined ? { beta2: s.beta2 } : {}),
      ...(s.tau !== undefined ? { tau: s.tau } : {}),
    });
  };
}

/** A robust aggregator with the run's options (beta, f, m; the config filled in their defaults). */
function robust(name: RobustName): StrategyFactory {
  return (c) => {
    const s = c.strategy;
    return new RobustStrategy(name, fedavgOptions(c), {
      ...(s.beta !== undefined ? { beta: s.beta } : {}),
      ...(s.f !== undefined ? { f: s.f } : {}),
      ...(s.m !== undefined ? { m: s.m } : {}),
    });
  };
}

/**
 * One line per strategy: adding one is its file plus a line here (and its name in run-config.ts's strategy block,
 * with its options and combinations). FedProx's proximal term is the agents' (strategy.proximalMu reaches them in the
 * resolved task, see data-step.ts); on the server `fedprox` is FedAvg, and any other strategy takes proximalMu too.
 */
const STRATEGIES: Record<RunConfig['strategy']['name'], StrategyFactory> = {
  fedavg: (c) => new FedAvg(fedavgOptions(c)),
  fedprox: (c) => new FedAvg({ ...fedavgOptions(c), name: 'fedprox' }),
  fedavgm: serverOpt('fedavgm'),
  fedadam: serverOpt('fedadam'),
  fedyogi: serverOpt('fedyogi'),
  fedadagrad: serverOpt('fedadagrad'),
  // strategy.normBound (any strategy) is applied by the engine's intake to every accepted update; norm-bound is FedAvg after it.
  'norm-bound': (c) => new FedAvg({ ...fedavgOptions(c), name: 'norm-bound' }),
  median: robust('median'),
  'trimmed-mean': robust('trimmed-mean'),
  krum: robust('krum'),
  'multi-krum': robust('multi-krum'),
  scaffold: (c, deps) => new ScaffoldStrategy(fedavgOptions(c), { serverLr: c.strategy.serverLearningRate, populationSize: deps.populationSize }),
};

/** The names (run-config.ts owns the list and its option and combination tables; the Record type above makes every name have a factory). */
export { STRATEGY_COMBINATIONS, STRATEGY_NAMES, STRATEGY_OPTIONS } from '../config/run-config.js';

/**
 * The run's strategy. With a privacy block: central DP Poisson-samples agents at rate agentsPerRound.fraction and
 * noises the aggregate before the inner strategy's server step; local DP leaves all of it to the inner strategy
 * (agents noise their own updates) and only accounts.
 */
export function createStrategy(config: RunConfig, deps: StrategyDeps): Strategy {
  const make = STRATEGIES[config.strategy.name];
  if (!make) throw new Error(`strategy.name: unknown strategy "${config.strategy.name}"; use one of ${STRATEGY_NAMES.join(', ')}`);
  const inner = make(config, deps);
  if (!config.privacy) return inner;
  return new DpStrategy(inner, {
    privacy: config.privacy,
    samplingRate: config.agentsPerRound.fraction,
    populationSize: deps.populationSize,
    ...(deps.noise ? { noise: deps.noise } : {}),
    // Read at each step: async.bufferSize "auto" is resolved (in this same config object) when the async run starts.
    ...(config.mode === 'async' ? { buffered: { get bufferSize() { return bufferSizeOf(config); } } } : {}),
  });
}
