/** MQTT topic layout both ends agree on, and the access rule the embedded broker enforces per agent client. */
import { randomBytes } from 'node:crypto';

/** Versioned root, so a future incompatible framing can share a broker with this one. */
export const MQTT_TOPIC_ROOT = 'fedge/v1';

/** MQTT usernames: the coordinator proves itself with a secret, agents present the join token as password. */
export const MQTT_COORDINATOR_USERNAME = 'fedge-coordinator';
export const MQTT_AGENT_USERNAME = 'fedge-agent';

/**
 * Agent client ids carry no wildcard or separator characters, so a client id can be put into a topic and a topic
 * can only name one client. The `fa-` prefix keeps them apart from the coordinator's.
 */
export const MQTT_AGENT_CLIENT_ID = /^fa-[A-Za-z0-9_-]{8,64}$/;

export function newAgentClientId(): string {
  return `fa-${randomBytes(12).toString('base64url')}`;
}

export function isAgentClientId(clientId: string): boolean {
  return MQTT_AGENT_CLIENT_ID.test(clientId);
}

/**
 * Topics are keyed by MQTT client id, not agent id: an agent has no id before it joins, and the broker can check a
 * client id on every publish and subscribe without knowing anything about fedge sessions.
 */
export const mqttTopics = {
  /** Agent -> coordinator: every request, upload chunk, window ack, and the last will. */
  requests: (clientId: string): string => `${MQTT_TOPIC_ROOT}/c/${clientId}/req`,
  /** Coordinator -> agent: replies, errors, download chunks, upload window acks. */
  replies: (clientId: string): string => `${MQTT_TOPIC_ROOT}/c/${clientId}/res`,
  /** Coordinator -> agent: pushed tasks and the end of the task stream. */
  tasks: (clientId: string): string => `${MQTT_TOPIC_ROOT}/c/${clientId}/tasks`,
  /** What the coordinator subscribes to: every agent's request topic. */
  allRequests: `${MQTT_TOPIC_ROOT}/c/+/req`,
  /** Retained coordinator status (online, or offline by its last will), so agents notice a coordinator going away. */
  status: `${MQTT_TOPIC_ROOT}/coordinator/status`,
} as const;

const REQUEST_TOPIC = new RegExp(`^${MQTT_TOPIC_ROOT}/c/([^/+#]+)/req$`);

/** The client id a request topic belongs to, or undefined when the topic is not a request topic. */
export function clientIdOfRequestTopic(topic: string): string | undefined {
  const m = REQUEST_TOPIC.exec(topic);
  return m && isAgentClientId(m[1]!) ? m[1] : undefined;
}

/** An agent client may publish only on its own request topic (its last will included). */
export function agentMayPublish(clientId: string, topic: string): boolean {
  return isAgentClientId(clientId) && topic === mqttTopics.requests(clientId);
}

/** An agent client may subscribe only to its own reply and task topics and the coordinator status; no wildcards. */
export function agentMaySubscribe(clientId: string, topic: string): boolean {
  return isAgentClientId(clientId) && (topic === mqttTopics.replies(clientId) || topic === mqttTopics.tasks(clientId) || topic === mqttTopics.status);
}
