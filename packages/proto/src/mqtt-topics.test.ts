import { describe, expect, it } from 'vitest';
import { agentMayPublish, agentMaySubscribe, clientIdOfRequestTopic, isAgentClientId, mqttTopics, newAgentClientId } from './mqtt-topics.js';

describe('mqtt topics', () => {
  it('client ids are agent ids only when they cannot smuggle topic syntax', () => {
    const id = newAgentClientId();
    expect(isAgentClientId(id)).toBe(true);
    expect(newAgentClientId()).not.toBe(id);
    for (const bad of ['fa-short', 'fa-abc/defghijk', 'fa-abcdefgh+', 'fa-abcdefgh#', 'fedge-coordinator-1', `fa-${'x'.repeat(65)}`, ''])
      expect(isAgentClientId(bad), bad).toBe(false);
  });

  it('maps request topics back to their client and nothing else', () => {
    const id = newAgentClientId();
    expect(clientIdOfRequestTopic(mqttTopics.requests(id))).toBe(id);
    expect(clientIdOfRequestTopic(mqttTopics.replies(id))).toBeUndefined();
    expect(clientIdOfRequestTopic('fedge/v1/c/fa-abcdefgh/req/x')).toBeUndefined();
    expect(clientIdOfRequestTopic('fedge/v1/c/not-an-agent/req')).toBeUndefined();
    expect(mqttTopics.allRequests).toBe('fedge/v1/c/+/req');
  });

  it('confines an agent to its own topics', () => {
    const me = newAgentClientId();
    const other = newAgentClientId();
    expect(agentMayPublish(me, mqttTopics.requests(me))).toBe(true);
    expect(agentMayPublish(me, mqttTopics.requests(other))).toBe(false);
    expect(agentMayPublish(me, mqttTopics.tasks(me))).toBe(false);
    expect(agentMayPublish(me, mqttTopics.status)).toBe(false);
    for (const t of [mqttTopics.replies(me), mqttTopics.tasks(me), mqttTopics.status]) expect(agentMaySubscribe(me, t), t).toBe(true);
    for (const t of [mqttTopics.replies(other), mqttTopics.tasks(other), mqttTopics.allRequests, 'fedge/#', '#', mqttTopics.requests(me)])
      expect(agentMaySubscribe(me, t), t).toBe(false);
    expect(agentMayPublish('fedge-coordinator-1', mqttTopics.requests('fedge-coordinator-1'))).toBe(false);
  });
});
