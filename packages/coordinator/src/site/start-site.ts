/** Starts an aggregator site's link to its root: one Agent (the edge agent's own daemon and gRPC or MQTT client) whose tasks a SiteExecutor runs. */
import { setTimeout as sleep } from 'node:timers/promises';
import { Agent, GrpcConnection, MqttConnection, type CoordinatorConnection } from '@fedge/edge-agent';
import type { Coordinator } from '../coordinator.js';
import { COORDINATOR_VERSION } from '../version.js';
import { logger } from '../log.js';
import { SiteExecutor } from './site-executor.js';
import type { SiteOptions } from './site-options.js';

const log = logger.child({ module: 'site' });

export interface SiteLink {
  stop(): void;
}

/**
 * Joins the root once this site has --site-min-agents agents online (a site without them could not run a round, and
 * its join reports the agents and examples behind it), then follows the root's tasks until stop(); reconnects with
 * the agent's backoff.
 */
export function startSite(coord: Coordinator, o: SiteOptions): SiteLink {
  const executor = new SiteExecutor(coord, o);
  let stopped = false;
  let agent: Agent | undefined;
  void (async () => {
    while (!stopped && coord.listAgents().filter((a) => a.status === 'online').length < o.minAgents) await sleep(200);
    if (stopped) return;
    // The agent's own transports: gRPC, or MQTT through the root's broker (the join token is the broker password).
    const connect = (): CoordinatorConnection => o.mqtt
      ? new MqttConnection(o.target, o.upstreamJoinToken ? { joinToken: o.upstreamJoinToken } : {})
      : new GrpcConnection(o.target, o.tls ? {} : undefined);
    agent = new Agent(connect, undefined, {
      name: o.name,
      backend: `site/${COORDINATOR_VERSION}`,
      executor,
      describe: () => executor.describe(),
      ...(o.upstreamJoinToken ? { joinToken: o.upstreamJoinToken } : {}),
    });
    // The join says what stood behind the site then; reports keep the root's view fresh as agents come and go.
    const now = agent;
    now.reporter.section('site', () => executor.counts());
    // Registry changes are frequent (every task); the root hears of a site only when its agents or examples change.
    let last = '';
    coord.registry.on('changed', () => {
      const c = executor.counts();
      const key = `${c.agents}/${c.examples}`;
      if (key !== last) (last = key), now.reporter.poke();
    });
    log.info({ upstream: o.upstream, site: o.name, agents: executor.counts().agents }, `site ${o.name}: joining the root at ${o.upstream}`);
    await agent.runForever();
  })().catch((err: unknown) => log.error({ err }, 'site link failed'));
  return {
    stop: () => {
      stopped = true;
      agent?.stop();
    },
  };
}
