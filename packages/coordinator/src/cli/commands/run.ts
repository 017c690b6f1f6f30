/** `fedge run start|list|show|stop`: launch and manage federated runs on a coordinator. */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Command, Option } from 'commander';
import { roundMetrics, roundsCsv, writeMlflow } from '../tracking-export.js';
import type { RunView } from '../../coordinator.js';
import { parseRunConfig } from '../../config/run-config.js';
import { ValidationError } from '@fedge/proto';
import { parseFormat, printJson, type OutputFormat } from '../format.js';
import { ProgressPrinter, timing } from '../progress.js';
import { renderRunList, renderRunShow } from '../run-show.js';
import { driftLine, renderHeterogeneity } from '../drift-show.js';
import { addRunFlags, buildRunConfig, type RunFlags, type TaskFlags } from '../run-flags.js';
import { withAdminOptions, withClient, withConnectionOptions, type AdminOpts } from './common.js';
import { addParticipantsCommand, withAllParticipants } from './run-participants.js';

const EXPORT_TARGETS = ['csv', 'mlflow'] as const;
type ExportTarget = (typeof EXPORT_TARGETS)[number];

function parseExportFormat(v: string): OutputFormat | ExportTarget {
  return v === 'csv' || v === 'mlflow' ? v : parseFormat(v);
}

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
    // The run config's promotion gate at the end (passed and promoted, or why not) and the promotion state.
    promotionGate: r.promotionGate,
    promotion: r.promotion,
  };
}

export function runCommand(): Command {
  const run = new Command('run').description('launch, watch and manage federated runs');
  run.addHelpText('after', '\nExamples:\n  fedge run start --model mnist-mlp --rounds 20 --min-agents 3 --watch\n  fedge run start --task regression --target price --metrics rmse,r2 --watch\n  fedge run list\n  fedge run show run-1a2b3c4d --format json\n  fedge run participants run-1a2b3c4d --round 3 --status failed\n  fedge run stop run-1a2b3c4d');

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
  { "model": "mnist-mlp", "rounds": 20, "promotion": { "auto": true, "minMetric": 0.9, "canary": 0.2, "window": "10m" } }
    (at the end: the best version through a self-healing canary if its accuracy reaches 0.9, else an alert:
     fedge run show, fedge_promotion_gate_failed{run}; for rmse/mae/loss minMetric is the maximum)
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
      .option('--data', 'how the agents\' training data differ (label shares, features least like the fleet\'s: PSI of their histograms), from the drift profiles')
      .addHelpText('after', '\nExamples:\n  fedge run show run-1a2b3c4d\n  fedge run show run-1a2b3c4d --data\n  fedge run show run-1a2b3c4d --format json | jq .metrics'),
  ).action(async (id: string, opts: AdminOpts & { data?: boolean }) => {
    // The agents only for the table's drift line: at fleet scale every agent is megabytes the other outputs never read.
    const table = !opts.data && opts.format !== 'json';
    const [r, agents] = await withClient(opts, (c) => Promise.all([c.getRun(id), table ? c.listAgents().catch(() => []) : Promise.resolve([])]));
    if (opts.data) return opts.format === 'json' ? printJson({ run: r.id, driftProfiles: r.driftProfiles ?? {} }) : console.log(renderHeterogeneity(r).join('\n'));
    if (opts.format === 'json') return printJson(runSummary(r));
    const drift = driftLine(r.id, agents);
    console.log([...renderRunShow(r), ...(drift ? [drift] : [])].join('\n'));
  });

  addParticipantsCommand(run);

  withAdminOptions(
    run.command('stop').argument('<run>', 'run id').description('stop a run after closing its current round').addHelpText('after', '\nExamples:\n  fedge run stop run-1a2b3c4d'),
  ).action(async (id: string, opts: AdminOpts) => {
    const r = await withClient(opts, (c) => c.stopRun(id));
    if (opts.format === 'json') return printJson(runSummary(r));
    console.log(`stopping ${r.id} (${r.status})`);
  });

  withConnectionOptions(
    run
      .command('export')
      .argument('<run>', 'run id')
      .description('export per-round metrics for experiment tracking: CSV, or an MLflow file store (mlruns/0/<run_id>/)')
      .addOption(new Option('--to <target>', 'what to write: csv or mlflow').choices(EXPORT_TARGETS).default('csv'))
      .option('-o, --output <path>', 'csv: the file (default stdout); mlflow: the directory that gets mlruns/ (default .)')
      // csv/mlflow were this flag's values before --to: still accepted, with a warning, so scripts keep working.
      .addOption(new Option('--format <format>', 'printed summary: table or json (csv and mlflow: deprecated spelling of --to)').default('table').argParser(parseExportFormat))
      .addHelpText('after', '\nExamples:\n  fedge run export run-1a2b3c4d --to csv -o rounds.csv\n  fedge run export run-1a2b3c4d > rounds.csv                       # CSV on stdout\n  fedge run export run-1a2b3c4d --to mlflow -o . --format json      # {"run", "to", "path", "rounds"}\n  MLFLOW_ALLOW_FILE_STORE=true mlflow ui --backend-store-uri ./mlruns   # MLflow 3 reads a file store only so\n  mlflow migrate-filestore --source ./mlruns --target sqlite:///mlflow.db   # or move it into a database once\n  fedge serve --mlflow-tracking-uri http://mlflow:5000                   # or log runs live to a tracking server'),
  ).action(async (id: string, opts: Omit<AdminOpts, 'format'> & { to: ExportTarget; output?: string; format: OutputFormat | ExportTarget }) => {
    let format: OutputFormat = 'table';
    let to = opts.to;
    if (opts.format === 'csv' || opts.format === 'mlflow') {
      process.stderr.write(`warning: fedge run export --format ${opts.format} is deprecated; use --to ${opts.format} (--format now picks the printed summary: table or json)\n`);
      to = opts.format;
    } else format = opts.format;
    const toStdout = to === 'csv' && (!opts.output || opts.output === '-');
    if (toStdout && format === 'json') throw new ValidationError('--format json prints a JSON summary on stdout, where the CSV would go: give the CSV a file with -o FILE');
    // MLflow's lineage.json names every participant of every version: rounds too large for run show are paged in.
    const r = await withClient({ ...opts, format }, async (c) => (to === 'mlflow' ? withAllParticipants(c, await c.getRun(id)) : c.getRun(id)));
    let written: string;
    if (to === 'csv') {
      const csv = roundsCsv(r);
      if (toStdout) return void process.stdout.write(csv);
      written = path.resolve(opts.output!);
      await writeFile(written, csv);
    } else written = await writeMlflow(r, opts.output ?? '.');
    if (format === 'json') return printJson({ run: r.id, to, path: written, rounds: r.rounds.length });
    const view = to === 'mlflow' ? `; view it with: MLFLOW_ALLOW_FILE_STORE=true mlflow ui --backend-store-uri ${path.dirname(path.dirname(written))}` : '';
    console.error(`wrote ${r.rounds.length} rounds of ${r.id} to ${written}${view}`);
  });
  return run;
}
