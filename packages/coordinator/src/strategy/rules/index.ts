/** Pure update rules the strategies build on: server optimizers on the pseudo-gradient, and chunked robust aggregators. */

export {
  base64ToFloat32,
  createServerOptimizer,
  float32ToBase64,
  restoreServerOptimizer,
  SERVER_OPT_NAMES,
  type AdaptiveOptions,
  type FedAvgMOptions,
  type ServerOptimizer,
  type ServerOptName,
  type ServerOptRawState,
  type ServerOptSnapshot,
} from './server-opt.js';
export {
  coordinateMedian,
  DEFAULT_CHUNK,
  krum,
  multiKrum,
  normBound,
  pairwiseSquaredDistances,
  scaleSource,
  trimmedMean,
  weightedMean,
  type ChunkOptions,
  type KrumResult,
  type NormBoundResult,
  type ReadChunk,
  type RobustResult,
  type TrimmedMeanResult,
  type UpdateSource,
} from './robust.js';
