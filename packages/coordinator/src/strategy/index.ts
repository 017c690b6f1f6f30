/** The strategy registry: a run's `strategy.name` picks a factory here; a privacy block wraps the result in DP. */
import type { GaussianSampler } from '@fedge/proto';
import type { RunConfig } from '../config/run-config.js';
import { DpStrategy } from './dp.js';
import { FedAvg } from './fedavg.js';
import type { Strategy } from './strategy.js';

export interface StrategyDeps {
  /** Number of registered agents (central DP fixes its denominator q * N from it at the first round). */
  populationSize: () => number;
  /** DP noise source; default: the OS CSPRNG. Seeded sources are for tests only. */
  noise?: GaussianSampler;
}

type StrategyFactory = (config: RunConfig, deps: StrategyDeps) => Strategy;

/** One line per strategy: adding one is its file plus a line here (and its name in run-config.ts's strategy block). */
const STRATEGIES: Record<RunConfig['strategy']['name'], StrategyFactory> = {
  fedavg: (c) =>
    new FedAvg({
      fraction: c.agentsPerRound.fraction,
      minAgents: c.agentsPerRound.min,
      minResults: c.minResults,
      serverLearningRate: c.strategy.serverLearningRate,
    }),
};

export const STRATEGY_NAMES = Object.keys(STRATEGIES) as readonly string[];

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
    ...(config.mode === 'async' ? { buffered: { bufferSize: config.async.bufferSize } } : {}),
  });
}
