/**
 * The fleet's preprocessing as ONNX nodes in front of the model, so a served model takes raw feature values.
 *
 * Graph inputs, chosen for KServe v2 (one tensor has one datatype, and clients build requests column by column):
 * - `numeric` FP32 [N, k]: every numeric column, in preprocessing order, raw. NaN (JSON null over HTTP) is a
 *   missing value and becomes the fleet mean first (IsNaN + Where), then (x - shift) / scale (Sub, Div: the same
 *   float ops as the agents' encoder, not a fused multiply-add, so fp32 results match). One tensor rather than one
 *   per column: a numeric row is one array, as a client holds it, and the graph stays small for wide tables.
 * - one BYTES (ONNX string) input [N, 1] per categorical column, named after the column: ai.onnx.ml LabelEncoder maps
 *   the value to its index in the vocabulary with default len(values), which is outside OneHot's range, so unknown
 *   and missing values encode as all zeros, as the contract says; OneHot (float on/off values) makes the block.
 * - one FP32 input [N, width] per raw block, named after it, passed through.
 * Everything is concatenated in preprocessing order into the model's input. Input names are column names made safe
 * (letters, digits, _; unique); `fedge.inputs` in the model metadata maps each input back to its column(s).
 *
 * A preprocessing that is one raw block (image pixels, MNIST) adds no node: the input stays `input` in the model's
 * own shape, so existing clients keep working.
 */
import { ValidationError, type Preprocessing } from '@fedge/proto';
import { DataType, type DataTypeCode } from './proto.js';
import { encodedWidth } from '../data/preprocess.js';
import type { GraphBuilder } from './graph.js';

export const ML_DOMAIN = 'ai.onnx.ml';
/** LabelEncoder with keys_strings/values_int64s is ai.onnx.ml opset 2. */
export const ML_OPSET = 2;
export const NUMERIC_INPUT = 'numeric';

/** What one graph input carries (ONNX metadata `fedge.inputs`, KServe metadata parameters). */
export interface OnnxInputColumns {
  name: string;
  kind: 'numeric' | 'categorical' | 'raw';
  /** Column names, in the order the tensor holds them (numeric: one per position of the second axis). */
  columns: string[];
  /** categorical: the vocabulary (anything else encodes as all zeros). */
  values?: string[];
}

export interface GraphInput { name: string; elemType: DataTypeCode; shape: number[]; datatype: 'FP32' | 'BYTES' }

export interface BuiltPreprocessing {
  inputs: GraphInput[];
  columns: OnnxInputColumns[];
  /** Tensor [N, inputWidth] of encoded features. */
  encoded: string;
}

/** A column name as a tensor name: letters, digits and _ only, not starting with a digit, at most 64 characters. */
export function sanitizeTensorName(s: string): string {
  let n = s.replace(/[^A-Za-z0-9_]/g, '_').slice(0, 64);
  if (n === '' || /^_*$/.test(n)) n = 'column';
  if (/^[0-9]/.test(n)) n = `c_${n}`;
  return n;
}

/** True when preprocessing adds nothing to the graph (a single raw block). */
export function isIdentity(p: Preprocessing): boolean {
  return p.features.length === 1 && p.features[0]!.kind === 'raw';
}

/** Checks the preprocessing against itself and the model's per-example input shape. */
export function checkPreprocessing(p: Preprocessing, modelInput: number[]): void {
  const width = encodedWidth(p.features);
  if (width !== p.inputWidth) throw new ValidationError(`onnx export: preprocessing.inputWidth is ${p.inputWidth} but its features encode to ${width} values; the preprocessing is inconsistent (re-create it)`);
  const size = modelInput.reduce((a, b) => a * b, 1);
  if (width !== size)
    throw new ValidationError(`onnx export: preprocessing encodes ${width} values per example but the model's input has shape ${JSON.stringify(modelInput)} (${size}); export with the preprocessing the model was trained with`);
  const names = new Set<string>();
  for (const [i, f] of p.features.entries()) {
    if (names.has(f.name)) throw new ValidationError(`onnx export: preprocessing.features[${i}].name "${f.name}" appears twice; column names must be unique`);
    names.add(f.name);
  }
}

/**
 * Input names are registered before any node so they keep their sanitized names. `numeric` is reserved first, then
 * the caller's outputs (so `output` stays `output`), then one name per categorical/raw column.
 */
export function planInputs(g: GraphBuilder, p: Preprocessing, reserveOutputs: () => void): { inputs: GraphInput[]; columns: OnnxInputColumns[]; names: string[] } {
  const numeric = p.features.filter((f) => f.kind === 'numeric');
  const inputs: GraphInput[] = [];
  const columns: OnnxInputColumns[] = [];
  if (numeric.length > 0) {
    const name = g.unique(NUMERIC_INPUT);
    inputs.push({ name, elemType: DataType.FLOAT, shape: [numeric.length], datatype: 'FP32' });
    columns.push({ name, kind: 'numeric', columns: numeric.map((f) => f.name) });
  }
  reserveOutputs();
  // names[i]: the input feature i reads from (the shared numeric input for numeric columns).
  const names = p.features.map((f) => {
    if (f.kind === 'numeric') return inputs[0]!.name;
    const name = g.unique(sanitizeTensorName(f.name));
    if (f.kind === 'categorical') {
      inputs.push({ name, elemType: DataType.STRING, shape: [1], datatype: 'BYTES' });
      columns.push({ name, kind: 'categorical', columns: [f.name], values: [...f.values] });
    } else {
      inputs.push({ name, elemType: DataType.FLOAT, shape: [f.width], datatype: 'FP32' });
      columns.push({ name, kind: 'raw', columns: [f.name] });
    }
    return name;
  });
  return { inputs, columns, names };
}

/** Adds the encoding nodes; returns the inputs and the encoded [N, inputWidth] tensor. */
export function buildPreprocessing(g: GraphBuilder, p: Preprocessing, reserveOutputs: () => void): BuiltPreprocessing {
  const { inputs, columns, names } = planInputs(g, p, reserveOutputs);
  const numeric = p.features.flatMap((f) => (f.kind === 'numeric' ? [f] : []));
  let normalized: string | undefined;
  if (numeric.length > 0) {
    const x = names[p.features.findIndex((f) => f.kind === 'numeric')]!;
    const k = numeric.length;
    const nan = g.op('IsNaN', 'numeric', [x]);
    const filled = g.op('Where', 'numeric', [nan, g.f32('numeric/mean', [k], numeric.map((f) => f.mean)), x]);
    const centered = g.op('Sub', 'numeric', [filled, g.f32('numeric/shift', [k], numeric.map((f) => f.shift))]);
    normalized = g.op('Div', 'numeric', [centered, g.f32('numeric/scale', [k], numeric.map((f) => f.scale))]);
  }

  const pieces: string[] = [];
  let j = 0; // next numeric column
  for (let i = 0; i < p.features.length; ) {
    const f = p.features[i]!;
    if (f.kind === 'numeric') {
      // A run of consecutive numeric columns is one Slice of the normalized tensor (none when it is all of it).
      let end = i;
      while (end < p.features.length && p.features[end]!.kind === 'numeric') end++;
      const len = end - i;
      pieces.push(len === numeric.length ? normalized! : g.op('Slice', `numeric/${j}`, [normalized!, g.i64('numeric/starts', [j]), g.i64('numeric/ends', [j + len]), g.i64('numeric/axes', [1])]));
      j += len;
      i = end;
      continue;
    }
    const x = names[i]!;
    if (f.kind === 'categorical') {
      // A repeated value takes its last position, as the agents' encoder (data/encode.ts, a Map over values) does.
      const index = new Map(f.values.map((v, n) => [v, n]));
      const depth = f.values.length;
      const code = g.node('LabelEncoder', x, [x], { keys_strings: [...index.keys()], values_int64s: [...index.values()], default_int64: depth }, 1, ML_DOMAIN)[0]!;
      const hot = g.op('OneHot', x, [code, g.i64(`${x}/depth`, [depth], []), g.f32(`${x}/off_on`, [2], [0, 1])], { axis: -1 });
      pieces.push(g.op('Reshape', x, [hot, g.i64(`${x}/shape`, [0, depth])]));
    } else pieces.push(x);
    i++;
  }
  const encoded = pieces.length === 1 ? pieces[0]! : g.op('Concat', 'preprocessing', pieces, { axis: 1 });
  return { inputs, columns, encoded };
}
