/** `module:PATH.mjs`: the user's own loader module, the escape hatch for custom pipelines. */
import { createHash } from 'node:crypto';
import { pathToFileURL } from 'node:url';
import { ValidationError } from '@fedge/proto';
import type { RawColumn } from './table.js';
import type { LoadedColumns } from './schema.js';
import { MAX_NAMED_FEATURES } from './npy.js';

/** What the module's default export (or `load`) resolves to. */
export interface ModuleData {
  /** One row per example, or all rows concatenated (then `shape` or `targets` gives the row count). */
  features: number[][] | Float32Array | Float64Array;
  /** Class indices or values, one row of values per example (multi-output), or class names. */
  targets: number[] | number[][] | string[];
  /** Per-example shape ([h, w, c] for images) or with the example count first. */
  shape?: number[];
  featureNames?: string[];
  targetNames?: string[];
}

/** Imports `path` and runs its loader; features become x0.. (or block `x`, or featureNames), targets y / y0.. (or targetNames). */
export async function readModuleColumns(path: string, shown: string): Promise<LoadedColumns> {
  const fail = (msg: string): never => {
    throw new ValidationError(`${shown}: ${msg}`);
  };
  let mod: Record<string, unknown>;
  try {
    mod = (await import(pathToFileURL(path).href)) as Record<string, unknown>;
  } catch (e) {
    throw new ValidationError(`${shown}: cannot import the module: ${(e as Error).message}`, { cause: e });
  }
  const load = typeof mod['default'] === 'function' ? mod['default'] : mod['load'];
  if (typeof load !== 'function') fail('the module exports no loader; export default (or export) async function load() returning { features, targets }');
  let out: unknown;
  try {
    out = await (load as () => unknown)();
  } catch (e) {
    throw new ValidationError(`${shown}: loader threw: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  }
  if (typeof out !== 'object' || out === null) return fail(`the loader returned ${out === null ? 'null' : typeof out}; return { features, targets }`);
  const r = out as Partial<ModuleData>;
  if (!Array.isArray(r.targets)) return fail('the loader\'s result has no targets array');
  const targets = r.targets;
  const n = targets.length;
  if (n === 0) fail('the loader returned no examples');

  let x: Float32Array | Float64Array;
  let d: number;
  if (Array.isArray(r.features)) {
    if (r.features.length !== n) fail(`${r.features.length} feature rows for ${n} targets`);
    d = Array.isArray(r.features[0]) ? r.features[0].length : -1;
    x = new Float64Array(n * Math.max(d, 0));
    r.features.forEach((row, i) => {
      if (!Array.isArray(row) || row.length !== d) fail(`features[${i}] is not an array of ${d} numbers (like features[0])`);
      row.forEach((v, j) => {
        if (typeof v !== 'number') fail(`features[${i}][${j}] is ${JSON.stringify(v)}, not a number`);
        x[i * d + j] = v;
      });
    });
  } else if (r.features instanceof Float32Array || r.features instanceof Float64Array) {
    x = r.features;
    d = x.length / n;
    if (!Number.isInteger(d)) fail(`${x.length} feature values are not a whole number of rows for ${n} targets`);
  } else return fail('features must be an array of rows (number[][]) or a Float32Array');
  if (d < 1) fail('features have no columns');
  let shape = r.shape;
  if (shape !== undefined) {
    if (!Array.isArray(shape) || shape.some((s) => !Number.isInteger(s) || s < 1)) fail(`shape ${JSON.stringify(shape)} must be positive integers`);
    if (shape.length > 1 && shape[0] === n && shape.slice(1).reduce((a, b) => a * b, 1) === d) shape = shape.slice(1);
    if (shape.reduce((a, b) => a * b, 1) !== d) fail(`shape [${shape.join(', ')}] does not hold ${d} features per example`);
  }
  const imageShape = shape?.length === 3 ? (shape as [number, number, number]) : shape?.length === 2 ? ([shape[0]!, shape[1]!, 1] as [number, number, number]) : undefined;
  const names = r.featureNames;
  if (names !== undefined && (!Array.isArray(names) || names.length !== d || names.some((s) => typeof s !== 'string')))
    fail(`featureNames must be ${d} strings, one per feature`);

  const columns: RawColumn[] = [];
  if (names || (!imageShape && d <= MAX_NAMED_FEATURES)) {
    for (let j = 0; j < d; j++) columns.push({ name: names?.[j] ?? `x${j}`, type: 'numeric', values: Float64Array.from({ length: n }, (_, i) => x[i * d + j]!) });
  } else columns.push({ name: 'x', type: 'block', width: d, values: x instanceof Float32Array ? x : Float32Array.from(x) });
  const nf = columns.length;

  const k = Array.isArray(targets[0]) ? (targets[0] as number[]).length : 1;
  const tNames = r.targetNames ?? (k === 1 ? ['y'] : Array.from({ length: k }, (_, j) => `y${j}`));
  if (!Array.isArray(tNames) || tNames.length !== k) fail(`targetNames must be ${k} strings, one per target`);
  if (typeof targets[0] === 'string') {
    targets.forEach((v, i) => typeof v !== 'string' && fail(`targets[${i}] is ${JSON.stringify(v)}; targets must be all strings or all numbers`));
    columns.push({ name: tNames[0]!, type: 'categorical', values: targets as string[] });
  } else {
    const t = new Float64Array(n * k);
    targets.forEach((row, i) => {
      const vals = k > 1 || Array.isArray(row) ? row : [row];
      if (!Array.isArray(vals) || vals.length !== k) fail(`targets[${i}] is not ${k === 1 ? 'a number' : `an array of ${k} numbers`} (like targets[0])`);
      (vals as unknown[]).forEach((v, j) => (typeof v === 'number' ? (t[i * k + j] = v) : fail(`targets[${i}]${k > 1 ? `[${j}]` : ''} is ${JSON.stringify(v)}, not a number`)));
    });
    for (let j = 0; j < k; j++) columns.push({ name: tNames[j]!, type: 'numeric', values: Float64Array.from({ length: n }, (_, i) => t[i * k + j]!) });
  }
  const where = (row: number, col: number): string =>
    col < nf ? `${shown}: features[${row}]${nf > 1 ? `[${col}] (${columns[col]!.name})` : ''}` : `${shown}: targets[${row}]${k > 1 ? `[${col - nf}]` : ''} (${columns[col]!.name})`;
  // The loader's output is the data: hash it as the agent will use it.
  const hash = createHash('sha256').update('module\0').update(new Uint8Array(Float64Array.from(x).buffer)).update('\0').update(JSON.stringify(targets));
  return { columns, defaultTargets: columns.slice(nf).map((c) => c.name), where, format: 'module', source: shown, hash, ...(imageShape ? { imageShape } : {}) };
}
