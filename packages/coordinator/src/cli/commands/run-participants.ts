/** `fedge run participants RUN`: who took part in a run's rounds, a page at a time (round records keep only counts). */
import { Command, InvalidArgumentError, Option } from 'commander';
import { MAX_PARTICIPANTS_PAGE, PARTICIPANT_STATUSES, type ParticipantListing } from '../../engine/participants-view.js';
import { printJson, table } from '../format.js';
import type { AdminClient } from '../admin-client.js';
import type { RunView } from '../../coordinator.js';
import { withAdminOptions, withClient, type AdminOpts } from './common.js';

function count(flag: string, min: number, max = Number.MAX_SAFE_INTEGER) {
  return (v: string): number => {
    const n = Number(v);
    if (!/^\d+$/.test(v) || n < min || n > max) throw new InvalidArgumentError(`${flag}: "${v}" is not a whole number from ${min} to ${max === Number.MAX_SAFE_INTEGER ? 'up' : max}`);
    return n;
  };
}

/** The table `fedge run participants` prints, and a last line saying how to get the next page. */
export function renderParticipants(page: ParticipantListing): string {
  const rows = page.participants.map((p) => ({
    round: p.round,
    agent: p.name,
    outcome: p.outcome,
    examples: p.numExamples,
    seconds: p.seconds === undefined ? undefined : p.seconds.toFixed(1),
    staleness: p.staleness,
    reason: p.reason,
  }));
  const first = page.query.offset + 1;
  const shown = page.participants.length ? `${first}-${page.query.offset + page.participants.length} of ${page.total}` : `none of ${page.total}`;
  const next = page.nextOffset !== undefined ? `; next page: --offset ${page.nextOffset}` : '';
  return [table(rows, ['round', 'agent', 'outcome', 'examples', 'seconds', 'staleness', 'reason']), `participants ${shown}${next}`].join('\n');
}

/**
 * The run with every round's participants inline, paged from the coordinator for rounds too large for `run show`:
 * what `fedge run export --to mlflow` writes into lineage.json (which data trained each version).
 */
export async function withAllParticipants(c: AdminClient, run: RunView): Promise<RunView> {
  const rounds = [];
  for (const x of run.rounds) {
    if (x.participants || x.version === undefined || run.data === undefined) {
      rounds.push(x);
      continue;
    }
    const list = [];
    for (let offset: number | undefined = 0; offset !== undefined;) {
      const page = await c.listParticipants(run.id, { round: x.round, limit: MAX_PARTICIPANTS_PAGE, offset });
      list.push(...page.participants.map(({ round: _r, ...p }) => p));
      offset = page.nextOffset;
    }
    const { participantsNote: _n, ...rest } = x;
    rounds.push({ ...rest, participants: list });
  }
  return { ...run, rounds };
}

export function addParticipantsCommand(run: Command): void {
  withAdminOptions(
    run
      .command('participants')
      .argument('<run>', 'run id')
      .description('list who took part in a run\'s rounds, with outcome, examples, time and reason (paged; fedge run show has the counts)')
      .option('--round <n>', 'only this round (async runs: step)', count('--round', 0))
      .addOption(new Option('--status <status>', 'only this outcome; failed: every outcome but completed').choices(PARTICIPANT_STATUSES))
      .option('--limit <n>', `rows per page (1-${MAX_PARTICIPANTS_PAGE})`, count('--limit', 1, MAX_PARTICIPANTS_PAGE), 100)
      .option('--offset <n>', 'rows to skip (the previous page\'s last line says where the next starts)', count('--offset', 0), 0)
      .addHelpText(
        'after',
        `
Examples:
  fedge run participants run-1a2b3c4d --round 3
  fedge run participants run-1a2b3c4d --round 3 --status failed            # why agents did not complete
  fedge run participants run-1a2b3c4d --limit 1000 --offset 1000            # the second page of 1000
  fedge run participants run-1a2b3c4d --format json | jq '.participants[].name'   # {run, query, total, participants, nextOffset?}`,
      ),
  ).action(async (id: string, opts: AdminOpts & { round?: number; status?: (typeof PARTICIPANT_STATUSES)[number]; limit: number; offset: number }) => {
    const query = { ...(opts.round !== undefined ? { round: opts.round } : {}), ...(opts.status ? { status: opts.status } : {}), limit: opts.limit, offset: opts.offset };
    const page = await withClient(opts, (c) => c.listParticipants(id, query));
    if (opts.format === 'json') return printJson(page);
    console.log(renderParticipants(page));
  });
}
