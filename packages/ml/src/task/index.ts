/** The learning side of a task: losses, optimizers, metrics (and their combination across agents) and model/data checks. */
export * from './losses.js';
export * from './optimizers.js';
export * from './metrics.js';
export * from './check.js';
export * from './scaffold.js';
