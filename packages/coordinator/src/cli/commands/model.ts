/**
 * `fedge model export`: a run's global model (or a saved model directory) as an ONNX file, float32 or int8, with the
 * run's preprocessing in front of it when there is one (the file then takes raw columns).
 */
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { Command, Option } from 'commander';
import { preprocessingSchema, resolvedTaskSchema, ValidationError, type ModelBlob, type Preprocessing, type ResolvedTask } from '@fedge/proto';
import { parseFormat, printJson, type OutputFormat } from '../format.js';
import { withClient, withConnectionOptions } from './common.js';
import { addRegistryCommands } from './model-registry.js';
import { addGcCommand } from './model-gc.js';

interface ExportOpts {
  run?: string;
  version?: number;
  model?: string;
  quantize: 'none' | 'int8';
  activations: 'dynamic' | 'static';
  calibration?: string;
  /** false with --no-preprocessing. */
  preprocessing: boolean;
  output: string;
  coordinator: string;
  tlsCa?: string;
  tlsCert?: string;
  tlsKey?: string;
  /** The printed summary; 'onnx' (the file format, this flag's first meaning) prints the table form. */
  format: OutputFormat | 'onnx';
  /** Deprecated alias of --format json. */
  json?: boolean;
}

/**
 * Calibration rows for static int8, as the model's layers see them: any data spec (mnist, csv:, npy:, images:,
 * module:, idx:), encoded with the model's preprocessing when it has one (raw values otherwise).
 */
async function loadCalibration(spec: string, meta: ExportMeta | undefined): Promise<{ x: Float32Array; n: number }> {
  const ml = await import('@fedge/ml');
  if (spec === 'mnist') return ml.loadMnist().train;
  try {
    const pre = meta?.preprocessing;
    const table = await ml.loadTable(spec, pre ? { target: pre.targets.map((t) => t.name), missing: 'mean' } : {});
    if (pre && meta?.task) return ml.encodeTable(table, pre, meta.task);
    // No task: only the inputs matter here, so the targets are read as plain values.
    return ml.encodeTable(table, ml.defaultPreprocessing(table), { type: 'regression', outputs: 1 });
  } catch (err) {
    throw new ValidationError(`--calibration: ${(err as Error).message}`, { cause: err });
  }
}

interface ExportMeta { task?: ResolvedTask; preprocessing?: Preprocessing }

/** The run record's data.task / data.preprocessing (absent on runs without a statistics step), validated. */
function runMeta(runId: string, run: unknown): ExportMeta | undefined {
  const data = (run as { data?: { task?: unknown; preprocessing?: unknown } } | null)?.data;
  if (!data || data.preprocessing === undefined) return undefined;
  const p = preprocessingSchema.safeParse(data.preprocessing);
  if (!p.success) throw new ValidationError(`run ${runId}: data.preprocessing.${p.error.issues[0]?.path.join('.') ?? ''}: ${p.error.issues[0]?.message ?? 'invalid'}; export the bare model with --no-preprocessing`);
  const t = data.task === undefined ? undefined : resolvedTaskSchema.safeParse(data.task);
  if (t && !t.success) throw new ValidationError(`run ${runId}: data.task.${t.error.issues[0]?.path.join('.') ?? ''}: ${t.error.issues[0]?.message ?? 'invalid'}; export the bare model with --no-preprocessing`);
  return { preprocessing: p.data, ...(t?.success ? { task: t.data } : {}) };
}

export function modelCommand(): Command {
  const model = new Command('model').description('the model registry (list, show) and export of global models for serving');
  model.addHelpText('after', '\nExamples:\n  fedge model list\n  fedge model export --run run-1a2b3c4d --quantize int8 -o model.int8.onnx --format json\n  fedge model export --model .fedge/runs/run-1a2b3c4d/model -o model.onnx');
  const exp = model
    .command('export')
    .description('convert a run\'s global model or a saved tfjs model to ONNX (float32, or int8 with --quantize int8)')
    .option('--run <id>', 'export this run\'s global model, fetched from the coordinator')
    .option('--version <v>', 'global model version of --run (default: the latest)', (v) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 0) throw new ValidationError(`--version must be an integer >= 0, got "${v}"`);
      return n;
    })
    .option('--model <path>', 'a tfjs model directory or model.json as saved by a run (e.g. the modelPath `fedge demo` prints)')
    // --format was the model file's format (always onnx): still accepted, it changes nothing.
    .addOption(new Option('--format <format>', 'printed summary: table or json (the file is ONNX; --format onnx is still accepted)').default('table').argParser((v): OutputFormat | 'onnx' => (v === 'onnx' ? v : parseFormat(v))))
    .addOption(new Option('--quantize <kind>', 'weights: float32 (none) or int8 per output channel').choices(['none', 'int8']).default('none'))
    .addOption(new Option('--activations <mode>', 'int8 activations: quantized per call (dynamic) or with ranges calibrated on --calibration data (static)').choices(['dynamic', 'static']).default('dynamic'))
    .option('--calibration <data>', 'calibration data for --activations static, any data spec (mnist, csv:PATH, npy:X,Y, images:DIR, idx:I,L), encoded with the model\'s preprocessing')
    .option('--no-preprocessing', 'export the bare model on encoded inputs, without the run\'s (or preprocessing.json\'s) preprocessing in front')
    .requiredOption('-o, --output <file>', 'ONNX file to write')
    .option('--json', 'deprecated: use --format json (a JSON summary: path, bytes, quantization, inputs/outputs, source)');
  withConnectionOptions(exp, 'for --run')
    .addHelpText(
      'after',
      `
Examples:
  fedge model export --run run-1a2b3c4d -o model.onnx
  fedge model export --run run-1a2b3c4d --version 12 --quantize int8 -o model.int8.onnx
  fedge model export --model .fedge/runs/run-1a2b3c4d/model/model.json --quantize int8 -o m.onnx
  fedge model export --model ./model --quantize int8 --activations static --calibration mnist -o m.onnx --format json
  fedge model export --run run-1a2b3c4d --coordinator grpcs://coord:7070 --tls-ca ca.pem --tls-cert me.pem --tls-key me.key -o m.onnx

A run with preprocessing (its record's data.preprocessing, or preprocessing.json beside --model) is exported with
it: the file takes raw columns (FP32 "numeric" with the numeric columns in order, NaN for missing; one string input
per categorical column) and encodes them like the agents did. --no-preprocessing exports the bare model.

Supported layers: Dense, Conv2D, MaxPooling2D, AveragePooling2D, Flatten, Reshape, Dropout, Activation/ReLU/Softmax
(relu, sigmoid, tanh, softmax), BatchNormalization (folded). Serve the file with
  fedge-agent serve --model model.int8.onnx --listen 127.0.0.1:8080`,
    )
    .action(async (o: ExportOpts) => {
      if (o.json) process.stderr.write('warning: fedge model export --json is deprecated; use --format json\n');
      const format: OutputFormat = o.json ? 'json' : o.format === 'onnx' ? 'table' : o.format;
      if ((o.run === undefined) === (o.model === undefined)) throw new ValidationError('give exactly one of --run ID or --model PATH');
      if (o.version !== undefined && o.run === undefined) throw new ValidationError('--version needs --run');
      if (o.activations === 'static' && o.quantize !== 'int8') throw new ValidationError('--activations static needs --quantize int8');
      if (o.activations === 'static' && !o.calibration) throw new ValidationError('--activations static needs --calibration DATA');
      const ml = await import('@fedge/ml');
      let blob: ModelBlob;
      let source: Record<string, unknown>;
      let meta: ExportMeta | undefined;
      if (o.run !== undefined) {
        const runId = o.run;
        const conn = { coordinator: o.coordinator, format, ...(o.tlsCa ? { tlsCa: o.tlsCa } : {}), ...(o.tlsCert ? { tlsCert: o.tlsCert } : {}), ...(o.tlsKey ? { tlsKey: o.tlsKey } : {}) };
        const { m, run } = await withClient(conn, async (c) => ({
          m: await c.fetchRunModel(runId, o.version ?? 0),
          run: o.preprocessing ? await c.getRun(runId) : undefined,
        }));
        blob = m;
        source = { run: runId, version: m.version, sha256: m.sha256 };
        meta = run === undefined ? undefined : runMeta(runId, run);
      } else {
        blob = await ml.loadModelDir(o.model!);
        source = { model: resolve(o.model!) };
        meta = o.preprocessing ? await ml.loadModelDirMeta(o.model!) : undefined;
      }
      const calibration = o.activations === 'static' ? await loadCalibration(o.calibration!, meta) : undefined;
      if (calibration) await ml.initBackend();
      const metadata: Record<string, string> = Object.fromEntries(Object.entries(source).map(([k, v]) => [`fedge.${k}`, String(v)]));
      const e = await ml.exportOnnxCalibrated(blob, {
        quantize: o.quantize,
        activations: o.activations,
        metadata,
        ...(typeof source['version'] === 'number' ? { modelVersion: source['version'] } : {}),
        ...(calibration ? { calibration } : {}),
        ...(meta?.preprocessing ? { preprocessing: meta.preprocessing } : {}),
        ...(meta?.task ? { task: meta.task } : {}),
      });
      const out = resolve(o.output);
      await mkdir(dirname(out), { recursive: true });
      const tmp = `${out}.tmp-${process.pid}`;
      await writeFile(tmp, e.bytes);
      await rename(tmp, out);
      const summary = {
        path: out, bytes: e.bytes.length, quantization: e.quantization, quantizedLayers: e.quantizedLayers, input: e.input, output: e.output,
        inputs: e.inputs, outputs: e.outputs, columns: e.columns, preprocessing: !!meta?.preprocessing, source,
      };
      const list = (ts: { name: string; datatype: string; shape: number[] }[]) => ts.map((t) => `${t.name} ${t.datatype} ${JSON.stringify(t.shape)}`).join(', ');
      if (format === 'json') printJson(summary);
      else process.stdout.write(`wrote ${out} (${(e.bytes.length / 1024).toFixed(1)} KiB, ${e.quantization}${meta?.preprocessing ? ', with preprocessing' : ''}; inputs ${list(e.inputs)}; outputs ${list(e.outputs)})\n`);
    });
  addRegistryCommands(model);
  addGcCommand(model);
  return model;
}
