/** @fedge/coordinator: the coordinator engine, its gRPC transport and the pure aggregation functions. */
export { Coordinator, type RunView } from './coordinator.js';
export { parseRunConfig, runConfigSchema, type RunConfig } from './config/run-config.js';
export { startGrpcServer } from './transport/grpc/server.js';
export * from './store/store.js';
export { MemoryStore } from './store/memory-store.js';
export * from './strategy/strategy.js';
export * from './strategy/fedavg.js';
export { AdminClient } from './cli/admin-client.js';
