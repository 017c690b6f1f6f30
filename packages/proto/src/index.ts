/** @fedge/proto: everything the coordinator and the edge agent must agree on. */
export * from './errors.js';
export * from './tensor.js';
