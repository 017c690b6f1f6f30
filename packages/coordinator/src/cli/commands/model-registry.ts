/** `fedge model list|show`: the model registry, i.e. every global version of every run with its sha256, round, parent and metrics. */
import { Command } from 'commander';
import { NotFoundError, ValidationError } from '@fedge/proto';
import type { RunView } from '../../coordinator.js';
import type { ModelVersionRecord } from '../../store/store.js';
import { pct, printJson, table } from '../format.js';
import { withAdminOptions, withClient, type AdminOpts } from './common.js';

export interface RegistryEntry extends ModelVersionRecord {
  runId: string;
  runStatus: string;
  latest: boolean;
  trainLoss?: number;
  federatedExamples?: number;
  epsilon?: number;
}

/** The registry entries of `runs`, oldest run first, versions ascending. */
export function registryEntries(runs: RunView[]): RegistryEntry[] {
  return runs.flatMap((r) =>
    r.versions.map((v): RegistryEntry => {
      const rec = r.rounds.find((x) => x.version === v.version);
      return {
        runId: r.id,
        runStatus: r.status,
        ...v,
        latest: v.version === r.modelVersion,
        ...(rec?.trainLoss !== undefined ? { trainLoss: rec.trainLoss } : {}),
        ...(rec?.federatedExamples !== undefined ? { federatedExamples: rec.federatedExamples } : {}),
        ...(rec?.epsilon !== undefined ? { epsilon: rec.epsilon } : {}),
      };
    }),
  );
}

const parseVersion = (v: string): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new ValidationError(`VERSION must be an integer >= 0, got "${v}"`);
  return n;
};

export function addRegistryCommands(model: Command): void {
  withAdminOptions(
    model
      .command('list')
      .alias('ls')
      .description('list registered global model versions (sha256, run, round, parent, accuracy)')
      .option('--run <id>', 'only this run\'s versions')
      .addHelpText('after', '\nExamples:\n  fedge model list\n  fedge model list --run run-1a2b3c4d --format json'),
  ).action(async (opts: AdminOpts & { run?: string }) => {
    const runs = await withClient(opts, async (c) => (opts.run ? [await c.getRun(opts.run)] : c.listRuns()));
    const entries = registryEntries(runs);
    if (opts.format === 'json') return printJson(entries);
    console.log(
      table(
        entries.map((e) => ({
          run: e.runId,
          version: `${e.version}${e.latest ? '*' : ''}`,
          round: e.round,
          parent: e.parent,
          sha256: e.sha256.slice(0, 12),
          central: pct(e.centralAccuracy),
          federated: pct(e.federatedAccuracy),
          created: e.createdAt,
        })),
        ['run', 'version', 'round', 'parent', 'sha256', 'central', 'federated', 'created'],
      ),
    );
  });

  withAdminOptions(
    model
      .command('show')
      .argument('<version>', 'global model version', parseVersion)
      .requiredOption('--run <id>', 'the run the version belongs to')
      .description('show one registered model version')
      .addHelpText('after', '\nExamples:\n  fedge model show 12 --run run-1a2b3c4d\n  fedge model show 0 --run run-1a2b3c4d --format json'),
  ).action(async (version: number, opts: AdminOpts & { run: string }) => {
    const run = await withClient(opts, (c) => c.getRun(opts.run));
    const e = registryEntries([run]).find((x) => x.version === version);
    if (!e) throw new NotFoundError(`run ${run.id} has no model version ${version} (latest is ${run.modelVersion}); see fedge model list --run ${run.id}`);
    if (opts.format === 'json') return printJson(e);
    const rows: [string, string | number | undefined][] = [
      ['run', `${e.runId} (${e.runStatus})`],
      ['version', `${e.version}${e.latest ? ' (latest)' : ''}`],
      ['sha256', e.sha256],
      ['round', e.round],
      ['parent', e.parent],
      ['created', e.createdAt],
      ['central accuracy', pct(e.centralAccuracy)],
      ['central loss', e.centralLoss],
      ['federated accuracy', pct(e.federatedAccuracy)],
      ['train loss', e.trainLoss],
      ['epsilon', e.epsilon],
    ];
    for (const [k, v] of rows) if (v !== undefined) console.log(`${k.padEnd(19)} ${v}`);
  });
}
