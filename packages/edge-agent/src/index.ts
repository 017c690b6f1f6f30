/** @fedge/edge-agent: the agent daemon, its task executor and the coordinator connection interface. */
export { Agent, AGENT_VERSION, type AgentOptions } from './agent.js';
export { TaskExecutor, type ExecutorOptions } from './executor.js';
export { TrainingWorkerError } from './train-worker-client.js';
export { loadLocalData, type DataOptions, type LocalData } from './data.js';
// An aggregator site (coordinator, fedge serve --upstream) packs its update to the root as an agent does.
export { packUpdate } from './privacy.js';
export { FeedbackStore } from './feedback-store.js';
export type { CoordinatorConnection, TaskStream } from './transport/connection.js';
export { GrpcConnection } from './transport/grpc/grpc-connection.js';
export { MqttConnection, isMqttUrl } from './transport/mqtt/mqtt-connection.js';
