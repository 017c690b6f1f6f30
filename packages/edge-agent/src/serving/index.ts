export * from './model-slot.js';
export * from './server.js';
export * from './global-server.js';
export * from './grpc-server.js';
export * from './ab-split.js';
export * from './serving-stats.js';
export * from './health-report.js';
export * from './holdout-accuracy.js';
