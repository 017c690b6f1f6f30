/** `fedge agent list`'s paging, filter flags, footer and --summary rendering (the command itself is in commands/agent.ts). */
import { Command, Option } from 'commander';
import { FedgeError, ValidationError } from '@fedge/proto';
import { AGENT_STATES, AGENT_TRANSPORTS, DEFAULT_AGENT_PAGE, agentQuerySchema, parseAgentQuery, type AgentPage, type AgentQuery, type AgentSummary } from '../engine/agent-query.js';

export interface AgentListFlags {
  limit?: string;
  all?: boolean;
  after?: string;
  state?: string;
  name?: string;
  site?: string;
  serving?: string;
  backend?: string;
  transport?: string;
  summary?: boolean;
}

/** Adds the paging, filter and summary flags to `fedge agent list`. */
export function withAgentListFlags(cmd: Command): Command {
  return cmd
    .option('--limit <n>', `agents per page (default ${DEFAULT_AGENT_PAGE}; 0: all)`)
    .option('--all', 'every matching agent on one page (same as --limit 0)')
    .option('--after <id>', 'start after this agent id: the last one of the previous page (the footer prints the command)')
    .addOption(new Option('--state <state>', 'only agents in this state; busy and idle split online').choices(AGENT_STATES))
    .option('--name <prefix>', 'only agents whose name starts with PREFIX')
    .option('--site <name>', 'only the aggregator site NAME (fedge serve --upstream --name NAME)')
    .option('--serving <version>', 'only agents serving this global model version ("none": serving nothing)')
    .option('--backend <name>', 'only agents with this backend (tfjs-node, onnx, echo, ...)')
    .addOption(new Option('--transport <name>', 'only agents connected over this transport').choices(AGENT_TRANSPORTS))
    .option('--summary', 'counts instead of agents: by state, served version, backend, transport, agent version, site and auth (filters apply)');
}

/** The flags as a query, checked by the server's own schema; errors name the flag. */
export function agentQueryOf(f: AgentListFlags): AgentQuery {
  if (f.all && f.limit !== undefined) throw new ValidationError(`--all and --limit ${f.limit}: give one of them (--all is --limit 0)`);
  if (f.summary && (f.after !== undefined || f.limit !== undefined || f.all)) throw new ValidationError('--summary counts every matching agent: it takes filters, not --limit, --all or --after');
  const { after, state, name, site, serving, backend, transport } = f;
  return parseAgentQuery({ after, state, name, site, serving, backend, transport, limit: f.all ? 0 : (f.limit ?? DEFAULT_AGENT_PAGE) }, '--');
}

/**
 * The coordinator names a bad field as the request spells it ("after: no agent ..."); on the command line that is a
 * flag, so the error says --after.
 */
export function asFlagError(err: unknown): unknown {
  if (!(err instanceof FedgeError) || err.code !== 'E_VALIDATION') return err;
  const field = /^(\w+): /.exec(err.message)?.[1];
  return field && field in agentQuerySchema.shape ? new ValidationError(`--${err.message}`) : err;
}

const n = (x: number): string => x.toLocaleString('en-US');

/** This command line with `--after ID` in place of any earlier --after (argv: the words after `fedge`). */
export function nextPageCommand(argv: readonly string[], next: string): string {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--after') i++;
    else if (!argv[i]!.startsWith('--after=')) out.push(argv[i]!);
  }
  return ['fedge', ...out, '--after', next].map((w) => (/^[\w@%+=:,./-]+$/.test(w) ? w : `'${w.replace(/'/g, `'\\''`)}'`)).join(' ');
}

/**
 * "showing 1-500 of 10,000 agents; next page: fedge agent list --after agent-1f2e3d4c", or undefined when the page is
 * the whole (filtered) list. `filtered`: the listing had filters (the fleet's size is then said too).
 */
export function pageFooter(p: AgentPage, argv: readonly string[], filtered: boolean): string | undefined {
  if (!p.next && p.skipped === 0) return undefined;
  const range = p.agents.length ? `${n(p.skipped + 1)}-${n(p.skipped + p.agents.length)}` : 'none';
  const of = `of ${n(p.total)} ${filtered ? `matching agents (${n(p.fleet)} in all)` : 'agents'}`;
  return `showing ${range} ${of}${p.next ? `; next page: ${nextPageCommand(argv, p.next)}` : '; last page'}`;
}

/** The summary as a few lines: states first, then one line per breakdown, largest first. */
export function renderSummary(s: AgentSummary, filtered: boolean): string {
  const top = (m: Record<string, number>): string => {
    const e = Object.entries(m).sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
    if (e.length === 0) return '(none)';
    const shown = e.slice(0, 8).map(([k, v]) => `${k} ${n(v)}`);
    return e.length > 8 ? `${shown.join(', ')}, ... (${e.length - 8} more; --format json has all)` : shown.join(', ');
  };
  const head = `${n(s.total)} ${filtered ? `matching agents (${n(s.fleet)} in all)` : 'agents'}: ${n(s.state.online)} online (${n(s.state.busy)} busy, ${n(s.state.idle)} idle), ${n(s.state.offline)} offline`;
  return [
    head,
    `serving:        ${top(s.serving)}`,
    `backend:        ${top(s.backend)}`,
    `transport:      ${top(s.transport)}`,
    `agent version:  ${top(s.agentVersion)}`,
    `auth:           token ${n(s.auth.token)}, key ${n(s.auth.key)}`,
    `sites:          ${Object.entries(s.sites).map(([k, v]) => `${k} (${n(v)} agents behind it)`).join(', ') || '(none)'}`,
  ].join('\n');
}

/** Whether the query filters (anything besides the page). */
export function isFiltered(q: AgentQuery): boolean {
  return Object.keys(q).some((k) => k !== 'limit' && k !== 'after');
}
