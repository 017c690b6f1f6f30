/** `fedge run start|list|show|stop`: launch and manage federated runs on a coordinator. */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Command, Option } from 'commander';
import { DEFAULT_COORDINATOR } from '../admin-client.js';
import { roundMetrics, roundsCsv, writeMlflow } from '../tracking-export.js';
import type { RunView } from '../../coordinator.js';
import { parseRunConfig } from '../../config/run-config.js';
import { printJson } from '../format.js';
import { ProgressPrinter, timing } from '../progress.js';
import { renderRunList, renderRunShow } from '../run-show.js';
import { addRunFlags, buildRunConfig, type RunFlags, type TaskFlags } from '../run-flags.js';
import { withAdminOptions, withClient, type AdminOpts } from './common.js';

function latestAccuracy(r: RunView): number | undefined {
  const done = r.rounds.filter((x) => x.status === 'completed');
  const last = done.at(-1);
  return last?.centralAccuracy ?? last?.federatedAccuracy;
}

/** The task metrics of the latest completed round (central evaluation, else federated); runs with a task only. */
function latestMetrics(r: RunView): Record<string, number> | undefined {
  if (!r.data) return undefined;
  const last = r.rounds.filter((x) => x.status === 'completed').at(-1);
  return last?.centralMetrics ?? last?.federatedMetrics;
}

/** The JSON form of a run shown to users and scripts: the record plus flat summary fields. */
export function runSummary(r: RunView): Record<string, unknown> {
  return {
    id: r.id,
    status: r.status,
    statusMessage: r.statusMessage,
    round: r.round,
    rounds: r.config.rounds,
    modelVersion: r.modelVersion,
    accuracy: latestAccuracy(r),
    initialAccuracy: r.versions.find((v) => v.version === 0)?.centralAccuracy,
    latestMetrics: latestMetrics(r),
    elapsedSeconds: timing(r).elapsed,
    modelPath: r.modelPath,
    config: r.config,
    metrics: r.rounds.map(roundMetrics),
    roundsDetail: r.rounds,
    versions: r.versions,
    live: r.live,
    // Task, preprocessing, fleet statistics and lineage (statistics step), and what stopped the run early.
    data: r.data,
    reachedTarget: r.reachedTarget,
  };
}

export function runCommand(): Command {
  const run = new Command('run').description('launch, watch and manage federated runs');
  run.addHelpText('after', '\nExamples:\n  fedge run start --model mnist-mlp --rounds 20 --min-agents 3 --watch\n  fedge run start --task regression --target price --metrics rmse,r2 --watch\n  fedge run list\n  fedge run show run-1a2b3c4d --format json\n  fedge run stop run-1a2b3c4d');

  withAdminOptions(
    addRunFlags(
      run
        .command('start')
        .description('start a run on the coordinator (config file and/or flags; flags override the file)')
        .option('--config <file>', 'run config (JSON): model, strategy, rounds, agentsPerRound, epochs, batchSize, learningRate, ...')
        .option('--name <name>', 'a name for the run')
        .option('--watch', 'follow the run with live progress until it ends'),
    ).addHelpText(
      'after',
      `
Examples:
  fedge run start --model mnist-mlp --rounds 20 --min-agents 3 --watch
  fedge run start --config run.json --lr 0.02 --format json
  fedge run start --model ./my-model/model.json --epochs 2 --batch-size 64
  fedge run start --model mnist-cnn --compression topk:0.05 --rounds 50   # 0.1x upload bytes, error feedback on

  # your own data (agents started with --data csv:... --target price): regression with the built-in MLP
  fedge run start --task regression --target price --model mlp --hidden 64,32 --metrics rmse,r2 --stop-at rmse:2.5 --watch
  fedge run start --task binary --target diagnosis --optimizer adam --lr 0.001 --beta2 0.99 --normalization minmax
  fedge run start --config run.json --loss huber --eval-data csv:/data/houses-test.csv --eval-target price

A config file holds the same options, e.g.:
  { "model": "mnist-cnn", "rounds": 30, "agentsPerRound": { "fraction": 0.5, "min": 4 },
    "epochs": 1, "batchSize": 50, "learningRate": 0.05, "roundDeadlineSeconds": 300 }
  { "model": { "builtin": "mlp", "hidden": [64, 32] }, "rounds": 30,
    "task": { "type": "regression", "target": "price", "loss": "huber", "metrics": ["rmse", "r2"],
              "optimizer": { "name": "adam", "learningRate": 0.001 }, "normalization": "zscore" },
    "stopAt": { "metric": "rmse", "value": 2.5 }, "evaluation": { "data": "csv:test.csv", "target": "price" } }
Task flags change single settings of the file's task (the rest of it stays).`,
    ),
  ).action(async (opts: AdminOpts & RunFlags & TaskFlags & { watch?: boolean }) => {
    const config = buildRunConfig(opts);
    // Fail fast, before any network call, with the same schema the coordinator applies.
    parseRunConfig(config);
    await withClient(opts, async (c) => {
      const started = await c.startRun(config);
      if (!opts.watch) {
        if (opts.format === 'json') return printJson(runSummary(started));
        console.log(`started ${started.id} (${JSON.stringify(started.config.model)}, ${started.config.rounds} rounds); follow it with: fedge run show ${started.id} or fedge run start --watch`);
        return;
      }
      const printer = new ProgressPrinter(process.stderr);
      if (opts.format !== 'json') process.stderr.write(`started ${started.id}\n`);
      const final = await c.watchRun(started.id, (r) => opts.format !== 'json' && printer.update(r));
      if (opts.format === 'json') printJson(runSummary(final));
      else printer.finish(final);
      if (final.status === 'failed') process.exitCode = 1;
    });
  });

  withAdminOptions(
    run.command('list').alias('ls').description('list runs').addHelpText('after', '\nExamples:\n  fedge run list\n  fedge run ls --format json'),
  ).action(async (opts: AdminOpts) => {
    const runs = await withClient(opts, (c) => c.listRuns());
    if (opts.format === 'json') return printJson(runs.map(runSummary));
    console.log(renderRunList(runs));
  });

  withAdminOptions(
    run
      .command('show')
      .argument('<run>', 'run id')
      .description('show a run: status, config, task and data (preprocessing, fleet statistics, lineage) and per-round metrics')
      .addHelpText('after', '\nExamples:\n  fedge run show run-1a2b3c4d\n  fedge run show run-1a2b3c4d --format json | jq .metrics'),
  ).action(async (id: string, opts: AdminOpts) => {
    const r = await withClient(opts, (c) => c.getRun(id));
    if (opts.format === 'json') return printJson(runSummary(r));
    console.log(renderRunShow(r).join('\n'));
  });

  withAdminOptions(
    run.command('stop').argument('<run>', 'run id').description('stop a run after closing its current round').addHelpText('after', '\nExamples:\n  fedge run stop run-1a2b3c4d'),
  ).action(async (id: string, opts: AdminOpts) => {
    const r = await withClient(opts, (c) => c.stopRun(id));
    if (opts.format === 'json') return printJson(runSummary(r));
    console.log(`stopping ${r.id} (${r.status})`);
  });

  run
    .command('export')
    .argument('<run>', 'run id')
    .description('export per-round metrics for experiment tracking: CSV, or an MLflow file store (mlruns/0/<run_id>/)')
    .option('--coordinator <host:port>', 'coordinator address (env FEDGE_COORDINATOR); grpcs://HOST:PORT for TLS', process.env.FEDGE_COORDINATOR ?? DEFAULT_COORDINATOR)
    .option('--tls-ca <file>', 'PEM CA that signed the coordinator\'s certificate; implies TLS (env FEDGE_TLS_CA)', process.env.FEDGE_TLS_CA)
    .addOption(new Option('--format <format>', 'csv or mlflow').choices(['csv', 'mlflow']).default('csv'))
    .option('-o, --output <path>', 'csv: the file (default stdout); mlflow: the directory that gets mlruns/ (default .)')
    .addHelpText('after', '\nExamples:\n  fedge run export run-1a2b3c4d --format csv -o rounds.csv\n  fedge run export run-1a2b3c4d --format mlflow -o . && mlflow ui --backend-store-uri ./mlruns')
    .action(async (id: string, opts: { coordinator: string; format: 'csv' | 'mlflow'; output?: string; tlsCa?: string }) => {
      const r = await withClient({ coordinator: opts.coordinator, format: 'table', ...(opts.tlsCa ? { tlsCa: opts.tlsCa } : {}) }, (c) => c.getRun(id));
      if (opts.format === 'csv') {
        const csv = roundsCsv(r);
        if (!opts.output || opts.output === '-') process.stdout.write(csv);
        else {
          await writeFile(opts.output, csv);
          console.error(`wrote ${r.rounds.length} rounds of ${r.id} to ${opts.output}`);
        }
        return;
      }
      const dir = await writeMlflow(r, opts.output ?? '.');
      console.error(`wrote MLflow run ${path.basename(dir)} (${r.id}) to ${dir}; view it with: mlflow ui --backend-store-uri ${path.dirname(path.dirname(dir))}`);
    });
  return run;
}
