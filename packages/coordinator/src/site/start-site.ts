/** Starts an aggregator site's link to its root: one Agent (the edge agent's own daemon and gRPC client) whose tasks a SiteExecutor runs. */
import { setTimeout as sleep } from 'node:timers/promises';
import { Agent, GrpcConnection } from '@fedge/edge-agent';
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
    agent = new Agent(() => new GrpcConnection(o.target, o.tls ? {} : undefined), undefined, {
      name: o.name,
      backend: `site/${COORDINATOR_VERSION}`,
      executor,
      describe: () => executor.describe(),
      ...(o.upstreamJoinToken ? { joinToken: o.upstreamJoinToken } : {}),
    });
    log.info({ upstream: o.upstream, site: o.name, agents: executor.describe().labels['fedge.site-agents'] }, `site ${o.name}: joining the root at ${o.upstream}`);
    await agent.runForever();
  })().catch((err: unknown) => log.error({ err }, 'site link failed'));
  return {
    stop: () => {
      stopped = true;
      agent?.stop();
    },
  };
}
