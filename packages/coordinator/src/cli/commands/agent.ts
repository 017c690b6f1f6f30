/** `fedge agent list | enroll | revoke`: agents known to the coordinator and their per-device identities. */
import { Command, InvalidArgumentError } from 'commander';
import { printJson, shortHash, table } from '../format.js';
import { withAdminOptions, withClient, type AdminOpts } from './common.js';
import type { IdentityListing } from '../admin-client.js';
import type { AgentRecord } from '../../store/store.js';
import { driftListings, renderDriftTable } from '../drift-show.js';
import { agentQueryOf, asFlagError, isFiltered, pageFooter, renderSummary, withAgentListFlags, type AgentListFlags } from '../agent-list.js';
import { DEFAULT_AGENT_PAGE } from '../../engine/agent-query.js';

/** "90s", "30m", "24h", "7d" or plain seconds. */
export function parseTtl(v: string): number {
  const m = /^(\d+(?:\.\d+)?)([smhd]?)$/.exec(v.trim());
  const s = m ? Number(m[1]) * ({ '': 1, s: 1, m: 60, h: 3600, d: 86400 } as Record<string, number>)[m[2]!]! : NaN;
  if (!(s >= 1)) throw new InvalidArgumentError(`--ttl: "${v}" is not a duration such as 90s, 30m, 24h or 7d`);
  return Math.round(s);
}

function agentsTable(agents: AgentRecord[]): string {
  return table(
    agents.map((a) => ({
      id: a.id,
      name: a.name,
      status: a.status,
      auth: a.identity ? `key ${a.identity}` : 'token',
      backend: a.backend,
      transport: a.transport,
      examples: a.numExamples,
      // An aggregator site (fedge serve --upstream) has no data of its own: the agents behind it, as of its last join.
      data: a.labels['fedge.site-agents'] !== undefined ? `site of ${a.labels['fedge.site-agents']} agents` : a.data ? `${a.data.format} ${a.data.columns} cols ${shortHash(a.data.fingerprint)}` : '',
      serving: a.servedVersion !== undefined ? `v${a.servedVersion} ${a.servedRun ?? ''}`.trim() : '',
      task: a.currentTask ?? 'idle',
      done: a.tasksCompleted,
      failed: a.tasksFailed,
      'last seen': a.lastSeen,
    })),
    ['id', 'name', 'status', 'auth', 'backend', 'transport', 'examples', 'data', 'serving', 'task', 'done', 'failed', 'last seen'],
  );
}

function identitiesTable(identities: IdentityListing[]): string {
  return table(
    identities.map((i) => ({
      name: i.name,
      status: i.status,
      fingerprint: i.fingerprint ?? '',
      'enrolled at': i.enrolledAt ?? (i.expiresAt ? `code expires ${i.expiresAt}` : ''),
      'last seen': i.lastSeen ?? '',
      revoked: i.revokedAt ?? '',
    })),
    ['name', 'status', 'fingerprint', 'enrolled at', 'last seen', 'revoked'],
  );
}

export function agentCommand(): Command {
  const agent = new Command('agent').description('inspect edge agents, enroll and revoke device identities');
  agent.addHelpText('after', '\nExamples:\n  fedge agent list\n  fedge agent list --summary\n  fedge agent ls --format json\n  fedge agent enroll cam-07 --ttl 1h\n  fedge agent revoke cam-07');
  withAdminOptions(
    withAgentListFlags(
      agent
        .command('list')
        .alias('ls')
        .description(`list agents that joined the coordinator in name order, ${DEFAULT_AGENT_PAGE} a page (filters and paging run on the coordinator), then enrolled device identities (--identities: only those)`)
        .option('--identities', 'list the enrolled device identities only (name, status, key fingerprint, enrolled at, last seen, revoked)'),
    ).addHelpText(
      'after',
      `
Examples:
  fedge agent list                                   # the first ${DEFAULT_AGENT_PAGE} agents; the footer prints the next page's command
  fedge agent list --after agent-1f2e3d4c            # the page after that agent
  fedge agent list --summary                         # counts by state, served version, backend, transport, site
  fedge agent list --state offline --name cam-       # offline agents whose name starts with cam-
  fedge agent list --serving none --state online     # online agents serving no model version yet
  fedge agent list --all --format json               # every agent, as a JSON array
  fedge agent ls --coordinator 10.0.0.5:7070 --format json --limit 100   # an array of 100 agents; the footer goes to stderr
  fedge agent list --identities --format json        # an array of identities

With --format json the page is a JSON array of agents; the next page's cursor is the last agent's id (--after ID).`,
    ),
  ).action(async (opts: AdminOpts & AgentListFlags & { identities?: boolean }) => {
    if (opts.identities) {
      const identities = await withClient(opts, (c) => c.listIdentities());
      if (opts.format === 'json') return printJson(identities);
      if (identities.length) console.log(identitiesTable(identities));
      return;
    }
    const q = agentQueryOf(opts);
    if (opts.summary) {
      const s = await withClient(opts, (c) => c.agentSummary(q)).catch((err: unknown) => Promise.reject(asFlagError(err)));
      return opts.format === 'json' ? printJson(s) : console.log(renderSummary(s, isFiltered(q)));
    }
    // Identities come with the first page of an unfiltered listing, as before paging.
    const [page, identities] = await withClient(opts, (c) => Promise.all([c.agentPage(q), q.after !== undefined || isFiltered(q) ? Promise.resolve([]) : c.listIdentities()])).catch(
      (err: unknown) => Promise.reject(asFlagError(err)),
    );
    const footer = pageFooter(page, process.argv.slice(2), isFiltered(q));
    if (opts.format === 'json') {
      printJson(page.agents);
      if (footer) console.error(footer);
      return;
    }
    console.log(agentsTable(page.agents));
    if (footer) console.log(footer);
    if (identities.length) console.log(`\nEnrolled identities:\n${identitiesTable(identities)}`);
  });
  withAdminOptions(
    agent
      .command('enroll <name>')
      .description('issue a one-time enrollment code for the agent NAME (give it to that device only: it is a secret)')
      .option('--ttl <duration>', 'how long the code stays valid: 90s, 30m, 24h, 7d (default 24h)', parseTtl)
      .addHelpText(
        'after',
        `
Examples:
  fedge agent enroll cam-07                    # prints the code
  fedge-agent --name cam-07 --enroll-code fe1-... --coordinator grpc://coord:7070 --data mnist
  FEDGE_ENROLL_CODE=fe1-... fedge-agent --name cam-07 ...   # the code from the environment (e.g. a Kubernetes Secret)

The agent creates an ed25519 key in its --state-dir on first start and enrolls it with the code; from then on it joins
by signing a challenge with that key (no join token) and signs every update. A code works once; enrolling a name again
needs \`fedge agent revoke NAME\` first.

With an external Mosquitto and \`fedge serve --mqtt-dynsec\`, enrolling also creates the device's broker login
(fedge-device:NAME, its password derived from the code: the device starts with --enroll-code CODE --mqtt-dynsec), and
\`fedge agent revoke NAME\` deletes it (deploy/mosquitto/README.md).`,
      ),
  ).action(async (name: string, opts: AdminOpts & { ttl?: number }) => {
    const e = await withClient(opts, (c) => c.enrollAgent(name, opts.ttl ?? 0));
    if (opts.format === 'json') return printJson(e);
    console.log(`enrollment code for ${e.name} (valid until ${e.expiresAt}, works once):\n${e.code}`);
  });
  withAdminOptions(
    agent
      .command('revoke <name>')
      .description('revoke the identity NAME at once: its open session is closed, its tasks, uploads and joins are refused')
      .addHelpText('after', '\nExamples:\n  fedge agent revoke cam-07\n  fedge agent enroll cam-07   # later: a new code, for a new key'),
  ).action(async (name: string, opts: AdminOpts) => {
    const r = await withClient(opts, (c) => c.revokeAgent(name));
    if (opts.format === 'json') return printJson(r);
    console.log(`revoked ${r.name}${r.fingerprint ? ` (key ${r.fingerprint})` : ''}; ${r.sessionsClosed ?? 0} open session(s) closed${r.brokerLoginRemoved ? '; its broker login deleted' : ''}`);
  });
  withAdminOptions(
    agent
      .command('drift [agent]')
      .description('data drift of serving agents (--serve, --drift-window): PSI and KS of each served feature and of the predictions vs the agent\'s own training data and the fleet\'s, worst first')
      .addHelpText('after', '\nPSI bands: < 0.1 stable, 0.1-0.25 moderate, > 0.25 significant. KS is on binned values, its p-value approximate.\n\nExamples:\n  fedge agent drift\n  fedge agent drift cam-07 --format json'),
  ).action(async (which: string | undefined, opts: AdminOpts) => {
    const listings = driftListings(await withClient(opts, (c) => c.listAgents()), which);
    if (opts.format === 'json') return printJson(listings);
    if (listings.length === 0) return console.log(which ? `agent "${which}" reports no drift (is it serving with --drift-window, and has it served requests?)` : 'no serving agent reports drift yet (agents need --serve, and requests to serve)');
    console.log(renderDriftTable(listings));
  });
  return agent;
}
