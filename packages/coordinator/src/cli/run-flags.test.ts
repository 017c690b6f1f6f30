/** `fedge run start` flags into a run config: the task flags merge into a --config file's task; old flags unchanged. */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { parseRunConfig } from '../config/run-config.js';
import { addRunFlags, addTaskFlags, buildRunConfig, mergeStrategy, parseStopAt, parseStrategy, type RunFlags, type TaskFlags } from './run-flags.js';

/** Parses `args` as `fedge run start` would and builds the config. */
function build(args: string[]): Record<string, unknown> {
  const cmd = addRunFlags(new Command('start').option('--config <file>').option('--name <name>')).exitOverride().configureOutput({ writeErr: () => {} });
  cmd.parse(args, { from: 'user' });
  return buildRunConfig(cmd.opts<RunFlags & TaskFlags>());
}

function configFile(cfg: unknown): string {
  const f = path.join(mkdtempSync(path.join(tmpdir(), 'fedge-flags-')), 'run.json');
  writeFileSync(f, JSON.stringify(cfg));
  return f;
}

describe('run flags', () => {
  it('keeps the existing flags as they were (no task unless asked for)', () => {
    expect(build(['--model', 'mnist-cnn', '--rounds', '5', '--lr', '0.1', '--min-agents', '3', '--target-accuracy', '0.9', '--compression', 'topk:0.05'])).toEqual({
      model: 'mnist-cnn', rounds: 5, learningRate: 0.1, agentsPerRound: { min: 3 }, targetAccuracy: 0.9, compression: { codec: 'topk', topkFraction: 0.05 },
    });
  });

  it('builds a task, stopAt, the built-in MLP and central evaluation from flags', () => {
    const cfg = build([
      '--task', 'regression', '--target', 'price', '--loss', 'huber', '--optimizer', 'adam', '--beta1', '0.8', '--beta2', '0.99',
      '--metrics', 'rmse,r2', '--normalization', 'minmax', '--stop-at', 'rmse:2.5', '--model', 'mlp', '--hidden', '128,64',
      '--eval-data', 'csv:test.csv', '--eval-target', 'price',
    ]);
    expect(cfg).toEqual({
      model: { builtin: 'mlp', hidden: [128, 64] },
      task: { type: 'regression', target: 'price', loss: 'huber', metrics: ['rmse', 'r2'], normalization: 'minmax', optimizer: { name: 'adam', beta1: 0.8, beta2: 0.99 } },
      stopAt: { metric: 'rmse', value: 2.5 },
      evaluation: { data: 'csv:test.csv', target: 'price' },
    });
    const c = parseRunConfig(cfg);
    expect(c.task?.optimizer).toEqual({ name: 'adam', beta1: 0.8, beta2: 0.99 });
    expect(c.stopAt).toEqual({ metric: 'rmse', value: 2.5 });
  });

  it('reads digits as a column index and repeats --target for several columns', () => {
    expect((build(['--task', 'multilabel', '--target', 'a', '--target', '3']).task as { target: unknown }).target).toEqual(['a', 3]);
    expect(build(['--task', 'binary', '--target', '0']).task).toEqual({ type: 'binary', target: 0 });
  });

  it('merges into the --config file\'s task instead of replacing it', () => {
    const file = configFile({
      rounds: 7, model: { builtin: 'mlp', hidden: [32] },
      task: { type: 'regression', target: 'price', loss: 'huber', optimizer: { name: 'adam', learningRate: 0.001, beta1: 0.8 } },
      targetAccuracy: undefined, evaluation: { data: 'csv:a.csv', missing: 'mean' },
    });
    const cfg = build(['--config', file, '--metrics', 'rmse', '--beta2', '0.99', '--lr', '0.01', '--model', 'mlp', '--eval-data', 'csv:b.csv']);
    expect(cfg).toEqual({
      rounds: 7, model: { builtin: 'mlp', hidden: [32] }, learningRate: 0.01,
      task: { type: 'regression', target: 'price', loss: 'huber', metrics: ['rmse'], optimizer: { name: 'adam', learningRate: 0.01, beta1: 0.8, beta2: 0.99 } },
      evaluation: { data: 'csv:b.csv', missing: 'mean' },
    });
    // Another optimizer drops the file's adam options but keeps its learning rate.
    expect((build(['--config', file, '--optimizer', 'momentum', '--momentum', '0.5']).task as { optimizer: unknown }).optimizer).toEqual({ learningRate: 0.001, name: 'momentum', momentum: 0.5 });
    expect(build(['--config', file, '--hidden', '8']).model).toEqual({ builtin: 'mlp', hidden: [8] });
  });

  it('a stop flag replaces the file\'s stop rule', () => {
    expect(build(['--config', configFile({ targetAccuracy: 0.9 }), '--stop-at', 'accuracy:0.95'])).toEqual({ stopAt: { metric: 'accuracy', value: 0.95 } });
    expect(build(['--config', configFile({ stopAt: { metric: 'f1', value: 0.8 } }), '--target-accuracy', '0.9'])).toEqual({ targetAccuracy: 0.9 });
  });

  it.each([
    [['--stop-at', 'rmse:2', '--target-accuracy', '0.9'], /--stop-at and --target-accuracy: give one of them/],
    [['--model', 'mnist-cnn', '--hidden', '64'], /--hidden: sizes the built-in MLP only, but the model is "mnist-cnn"; add --model mlp/],
    [['--momentum', '0.9'], /--momentum: applies to --optimizer momentum or rmsprop; add --optimizer momentum/],
    [['--optimizer', 'sgd', '--beta1', '0.9'], /--beta1: applies to --optimizer adam, not sgd; add --optimizer adam/],
    [['--eval-target', 'price'], /--eval-target: needs the evaluation file too; add --eval-data/],
    [['--stop-at', 'rmse'], /--stop-at: use METRIC:VALUE/],
    [['--stop-at', 'speed:3'], /--stop-at: use METRIC:VALUE with METRIC one of accuracy/],
    [['--metrics', 'rmse,mape'], /--metrics: use a comma-separated list of accuracy, auc/],
    [['--hidden', '64,x'], /--hidden: use comma-separated layer widths/],
    [['--task', 'ranking'], /argument 'ranking' is invalid. Allowed choices are classification, binary, multilabel, regression/],
    [['--loss', 'hinge'], /Allowed choices are sparse-categorical-crossentropy/],
  ])('rejects %j naming the option and the fix', (args, msg) => {
    expect(() => build(args)).toThrow(msg);
  });

  it('flags the config schema rejects are reported by it with the field (fail fast before any call)', () => {
    expect(() => parseRunConfig(build(['--task', 'regression', '--loss', 'binary-crossentropy']))).toThrow(/task\.loss: "binary-crossentropy" does not fit task\.type regression/);
    expect(() => parseRunConfig(build(['--task', 'regression', '--target-accuracy', '0.9']))).toThrow(/targetAccuracy: a regression task has no accuracy/);
  });

  it('parses --stop-at values with a sign or exponent', () => {
    expect(parseStopAt('r2:-0.5')).toEqual({ metric: 'r2', value: -0.5 });
    expect(parseStopAt('loss:1e-3')).toEqual({ metric: 'loss', value: 0.001 });
  });

  it('addTaskFlags can leave out flags a command defines itself (fedge demo has its own --target)', () => {
    const cmd = addTaskFlags(new Command('demo').option('--target <col>', 'agent label column'), ['target']);
    expect(cmd.options.filter((o) => o.long === '--target')).toHaveLength(1);
    expect(cmd.options.some((o) => o.long === '--stop-at')).toBe(true);
  });
});

describe('--strategy', () => {
  it('parses NAME[:k=v,...] with short option names', () => {
    expect(parseStrategy('fedavg')).toEqual({ name: 'fedavg' });
    expect(parseStrategy('fedadam:lr=0.01,beta1=0.8,tau=0.001')).toEqual({ name: 'fedadam', serverLearningRate: 0.01, beta1: 0.8, tau: 0.001 });
    expect(parseStrategy('fedprox:mu=0.1')).toEqual({ name: 'fedprox', proximalMu: 0.1 });
    expect(parseStrategy('scaffold:lr=0.5')).toEqual({ name: 'scaffold', serverLearningRate: 0.5 });
    expect(() => parseStrategy('fedadam:lr')).toThrow(/lr needs a number/);
    expect(() => parseStrategy('fedadam:gamma=1')).toThrow(/unknown option "gamma"/);
    expect(() => parseStrategy('FedAdam!')).toThrow(/use NAME\[:key=value,\.\.\.\]/);
  });

  it('keeps a file\'s options for the same strategy, drops them for another, and --server-lr lands in it', () => {
    const same: Record<string, unknown> = { strategy: { name: 'fedavgm', momentum: 0.5 } };
    mergeStrategy(same, { name: 'fedavgm', serverLearningRate: 2 });
    expect(same.strategy).toEqual({ name: 'fedavgm', momentum: 0.5, serverLearningRate: 2 });
    const other: Record<string, unknown> = { strategy: { name: 'fedavgm', momentum: 0.5 } };
    mergeStrategy(other, { name: 'fedadam' });
    expect(other.strategy).toEqual({ name: 'fedadam' });
    const lr: Record<string, unknown> = {};
    mergeStrategy(lr, undefined, 0.5);
    expect(lr.strategy).toEqual({ serverLearningRate: 0.5 });
  });
});
