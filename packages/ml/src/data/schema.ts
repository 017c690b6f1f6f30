/** What every loader shares after reading its files: column selection (--target/--features/--categorical), missing values, --scale, the fingerprint. */
import type { Hash } from 'node:crypto';
import { ValidationError } from '@fedge/proto';
import type { RawColumn, RawTable } from './table.js';

export type MissingPolicy = 'error' | 'drop' | 'mean';

export interface LoadTableOptions {
  /** Target columns, by name or 0-based index (as a string); several for multi-label / multi-output. */
  target?: string[];
  /** Feature columns (names or indices); default: every column that is not a target. */
  features?: string[];
  /** Columns to treat as categories even when their values are numbers (zip codes, class ids used as features). */
  categorical?: string[];
  /** Empty cells / NaN: error (default, naming where), drop the row, or mean (features only: the fleet's mean fills them). */
  missing?: MissingPolicy;
  /** Divide numeric features by this (e.g. 255 for 0-255 pixels); no implicit scaling otherwise. */
  scale?: number;
  /** images: [height, width] to resize to (default: the first image's size). */
  imageSize?: [number, number];
  /** images: 1 (grey) or 3 (RGB); default 3 if any image has colour, else 1. */
  channels?: 1 | 3;
  /** Relative paths in the spec are resolved against this (default: the working directory). */
  baseDir?: string;
}

/** A loader's output before selection: every column of the file(s). */
export interface LoadedColumns {
  columns: RawColumn[];
  /** Targets when no --target is given. */
  defaultTargets: string[];
  /** Where row `row` (0-based, of `columns`) of column `col` came from, for messages: "data.csv:12:3 (bmi)". */
  where(row: number, col: number): string;
  /** csv: the 1-based file line of each row, so later messages (a label the task cannot take) can name it too. */
  lines?: readonly number[];
  /** images: each row's file, relative to the folder. */
  files?: readonly string[];
  imageShape?: [number, number, number];
  format: string;
  source: string;
  /** Already fed with the data (file bytes or loader output); finishTable adds the schema. */
  hash: Hash;
}

/** The longest category value a profile can carry (dataProfileSchema). */
const MAX_VALUE_CHARS = 256;

function listNames(names: readonly string[]): string {
  return names.length <= 40 ? names.join(', ') : `${names.slice(0, 40).join(', ')} … (${names.length - 40} more)`;
}

/** Resolves a column reference (name first, then a 0-based index) to its position; the error lists the columns. */
export function resolveColumn(ref: string, names: readonly string[], flag: string, source: string): number {
  const byName = names.indexOf(ref);
  if (byName >= 0) return byName;
  if (/^\d+$/.test(ref) && Number(ref) < names.length) return Number(ref);
  throw new ValidationError(`${flag} '${ref}': ${source} has no such column; its columns are: ${listNames(names)} (or give a 0-based index below ${names.length})`);
}

/** Positions of the target and feature columns among `names` (--target, else the loader's default; --features, else the rest). */
export function selectColumns(names: readonly string[], o: LoadTableOptions, defaultTargets: readonly string[], source: string): { targets: number[]; features: number[] } {
  const targets = [...new Set(o.target?.length ? o.target.map((r) => resolveColumn(r, names, '--target', source)) : defaultTargets.map((t) => names.indexOf(t)))];
  const features = o.features?.length ? [...new Set(o.features.map((r) => resolveColumn(r, names, '--features', source)))] : names.map((_, i) => i).filter((i) => !targets.includes(i));
  for (const f of features) if (targets.includes(f)) throw new ValidationError(`--features '${names[f]}' is also a --target; a column is one or the other`);
  if (features.length === 0) throw new ValidationError(`${source}: no feature columns left (columns: ${listNames(names)}; targets: ${targets.map((t) => names[t]).join(', ')})`);
  return { targets, features };
}

/** Selects, checks and scales the loaded columns; the result is what the agent trains on and profiles. */
export function finishTable(l: LoadedColumns, o: LoadTableOptions): RawTable {
  const names = l.columns.map((c) => c.name);
  const dup = names.find((n, i) => names.indexOf(n) !== i);
  if (dup !== undefined) throw new ValidationError(`${l.source}: two columns are named '${dup}'; column names must be unique`);
  for (const n of names) if (n.length === 0 || n.length > 256) throw new ValidationError(`${l.source}: column name '${n.slice(0, 40)}…' must be 1-256 characters`);
  const { targets, features } = selectColumns(names, o, l.defaultTargets, l.source);
  const cols = l.columns.slice();
  for (const r of o.categorical ?? []) {
    const i = resolveColumn(r, names, '--categorical', l.source);
    const c = cols[i]!;
    if (c.type === 'block') throw new ValidationError(`--categorical '${c.name}': a block of ${c.width} values cannot be a category`);
    if (c.type === 'numeric') cols[i] = { name: c.name, type: 'categorical', values: Array.from(c.values, (v) => (Number.isNaN(v) ? null : String(v))) };
  }
  const keep = cols.map((_, i) => i).filter((i) => features.includes(i) || targets.includes(i));
  const missing = o.missing ?? 'error';
  const n = cols[0]?.type === 'block' ? cols[0].values.length / cols[0].width : cols[0]!.values.length;
  const drop = new Uint8Array(n);
  let dropped = 0;
  for (const i of keep) {
    const c = cols[i]!;
    const isTarget = targets.includes(i);
    const onMissing = (row: number): void => {
      if (missing === 'drop') {
        dropped += drop[row]! ^ 1;
        drop[row] = 1;
      } else if (missing === 'error')
        throw new ValidationError(`${l.where(row, i)}: missing value; fill it, or pass --missing drop (drop such rows)${isTarget ? '' : ' or --missing mean (use the fleet\'s mean)'}`);
      else if (isTarget) throw new ValidationError(`${l.where(row, i)}: missing target value; --missing mean only fills features: fill it or pass --missing drop`);
    };
    if (c.type === 'numeric') {
      c.values.forEach((v, row) => {
        if (Number.isNaN(v)) onMissing(row);
        else if (!Number.isFinite(v)) throw new ValidationError(`${l.where(row, i)}: ${v} is not a finite number; fix the value (or leave it empty for a missing value)`);
      });
    } else if (c.type === 'categorical') {
      c.values.forEach((v, row) => {
        if (v === null) onMissing(row);
        else if (v.length > MAX_VALUE_CHARS) throw new ValidationError(`${l.where(row, i)}: a ${v.length}-character value; categorical values must be at most ${MAX_VALUE_CHARS} characters (leave free text out with --features)`);
      });
    } else {
      for (let k = 0; k < c.values.length; k++)
        if (!Number.isFinite(c.values[k]!)) throw new ValidationError(`${l.where(Math.floor(k / c.width), i)}: value ${k % c.width} is ${c.values[k]}; array values must be finite numbers`);
    }
  }
  const rows = dropped > 0 ? Array.from({ length: n }, (_, r) => r).filter((r) => !drop[r]) : undefined;
  const scale = o.scale ?? 1;
  if (!(scale > 0 && Number.isFinite(scale))) throw new ValidationError(`--scale: expected a positive number, got ${o.scale}`);
  const columns = keep.map((i): RawColumn => {
    const c = cols[i]!;
    const s = features.includes(i) ? scale : 1;
    if (c.type === 'categorical') return rows ? { ...c, values: rows.map((r) => c.values[r]!) } : c;
    if (c.type === 'numeric') {
      const v = rows ? Float64Array.from(rows, (r) => c.values[r]!) : c.values;
      return { ...c, values: s === 1 ? v : v.map((x) => x / s) };
    }
    let v = c.values;
    if (rows) {
      v = new Float32Array(rows.length * c.width);
      rows.forEach((r, k) => v.set(c.values.subarray(r * c.width, (r + 1) * c.width), k * c.width));
    }
    return { ...c, values: s === 1 ? v : v.map((x) => x / s) };
  });
  const outN = rows ? rows.length : n;
  if (outN === 0) throw new ValidationError(`${l.source}: no examples${dropped ? ` left: --missing drop removed all ${dropped} rows (each has a missing value)` : ''}`);
  const schema = {
    format: l.format,
    columns: columns.map((c) => ({ name: c.name, type: c.type, ...(c.type === 'block' ? { width: c.width } : {}) })),
    targets: targets.map((t) => names[t]),
    imageShape: l.imageShape ?? null,
    scale,
    missing,
  };
  const fingerprint = l.hash.update('\0schema\0').update(JSON.stringify(schema)).digest('hex');
  return {
    n: outN,
    columns,
    targets: targets.map((t) => names[t]!),
    ...(l.imageShape ? { imageShape: l.imageShape } : {}),
    format: l.format,
    fingerprint,
    source: l.source,
    origin: {
      rows: rows ? Int32Array.from(rows) : Int32Array.from({ length: n }, (_, r) => r),
      ...(l.lines ? { lines: Int32Array.from(l.lines) } : {}),
      ...(l.files ? { files: [...l.files] } : {}),
    },
  };
}
