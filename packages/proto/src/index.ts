/** @fedge/proto: everything the coordinator and the edge agent must agree on. */
export * from './errors.js';
export * from './tensor.js';
export * from './messages.js';
export * from './schemas.js';
export * from './chunking.js';
export * from './grpc-loader.js';
export * from './address.js';
export * from './clip.js';
export * from './gaussian.js';
export * from './rng.js';
export * from './codec.js';
export * from './mqtt-topics.js';
export * from './mqtt-frame.js';
export * from './signing.js';
export * from './tls-files.js';
export * from './task.js';
export * from './task-metrics.js';
