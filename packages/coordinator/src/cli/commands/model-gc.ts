/** `fedge model gc`: applies model retention now (one run or all) and reports which versions' weights were freed. */
import type { Command } from 'commander';
import { parseKeepLast } from '../../config/retention.js';
import type { GcResult } from '../../engine/retention.js';
import { printJson, table } from '../format.js';
import { withAdminOptions, withClient, type AdminOpts } from './common.js';

const mib = (b: number): string => `${(b / 2 ** 20).toFixed(1)} MiB`;

export function addGcCommand(model: Command): void {
  withAdminOptions(
    model
      .command('gc')
      .description('free the weights of model versions retention no longer keeps (records, metrics and sha256 stay)')
      .option('--run <id>', 'only this run (default: every run)')
      .option('--keep-last <K|all>', 'keep the last K versions of each run (default: the run\'s retention.keepLast, else fedge serve --keep-versions)', (v) => parseKeepLast(v, '--keep-last'))
      .option('--dry-run', 'report what would be freed, change nothing')
      .addHelpText(
        'after',
        `
Examples:
  fedge model gc --dry-run
  fedge model gc --run run-1a2b3c4d --keep-last 3
  fedge model gc --format json

Always kept: the last K versions, the current, promoted, previous (rollback target) and canary versions, the best
version (central accuracy, else federated), the version that reached the run's target, and versions agents report
serving. A collected version stays in fedge model list; fetching or promoting it fails with an error naming it.
Retention also runs by itself after every round (run config retention.keepLast, default 5).`,
      ),
  ).action(async (opts: AdminOpts & { run?: string; keepLast?: number | 'all'; dryRun?: boolean }) => {
    const results = await withClient(opts, (c) =>
      c.gcModels({ ...(opts.run !== undefined ? { runId: opts.run } : {}), ...(opts.keepLast !== undefined ? { keepLast: opts.keepLast } : {}), dryRun: !!opts.dryRun }),
    );
    if (opts.format === 'json') return printJson(results);
    printTable(results, !!opts.dryRun);
  });
}

function printTable(results: GcResult[], dryRun: boolean): void {
  console.log(
    table(
      results.map((r) => ({
        run: r.runId,
        keepLast: String(r.keepLast),
        collected: r.collected.length ? r.collected.map((c) => c.version).join(',') : '-',
        freed: mib(r.freedBytes),
        kept: r.kept.map((k) => `${k.version}(${k.reasons.join('+')})`).join(' '),
      })),
      ['run', 'keepLast', 'collected', 'freed', 'kept'],
    ),
  );
  const total = results.reduce((s, r) => s + r.freedBytes, 0);
  console.log(`${dryRun ? 'would free' : 'freed'} ${mib(total)} in ${results.reduce((s, r) => s + r.collected.length, 0)} versions of ${results.length} runs${dryRun ? ' (dry run: nothing changed)' : ''}`);
}
