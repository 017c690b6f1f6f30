/** `npy:FEATURES.npy,TARGETS.npy`: NumPy .npy arrays (format v1-v3, numeric dtypes, C order), the common export of Python pipelines. */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { ValidationError } from '@fedge/proto';
import type { RawColumn } from './table.js';
import type { LoadedColumns } from './schema.js';

export interface NpyArray {
  shape: number[];
  /** The values as doubles (int64 beyond 2^53 loses precision, as in any float pipeline). */
  data: Float64Array;
  dtype: string;
}

/** Above this many features per example, one block column `x` instead of x0..x{d-1} (keeps profiles small). */
export const MAX_NAMED_FEATURES = 256;

const MAGIC = Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]); // \x93NUMPY
const READERS: Record<string, [bytes: number, read: (v: DataView, off: number, le: boolean) => number]> = {
  f4: [4, (v, o, le) => v.getFloat32(o, le)],
  f8: [8, (v, o, le) => v.getFloat64(o, le)],
  i1: [1, (v, o) => v.getInt8(o)],
  i2: [2, (v, o, le) => v.getInt16(o, le)],
  i4: [4, (v, o, le) => v.getInt32(o, le)],
  i8: [8, (v, o, le) => Number(v.getBigInt64(o, le))],
  u1: [1, (v, o) => v.getUint8(o)],
  u2: [2, (v, o, le) => v.getUint16(o, le)],
  u4: [4, (v, o, le) => v.getUint32(o, le)],
  b1: [1, (v, o) => (v.getUint8(o) ? 1 : 0)],
};

/**
 * Parses a .npy file: magic, version (1.x: 2-byte header length; 2.x/3.x: 4-byte), a Python dict literal header
 * {'descr': '<f4', 'fortran_order': False, 'shape': (n, d), }, then the raw data.
 */
export function parseNpy(buf: Buffer, file: string): NpyArray {
  if (buf.length < 10 || !buf.subarray(0, 6).equals(MAGIC)) throw new ValidationError(`${file}: not a NumPy .npy file (no \\x93NUMPY magic)`);
  const major = buf[6]!;
  if (major < 1 || major > 3) throw new ValidationError(`${file}: .npy format version ${major}.${buf[7]} is not supported (1, 2 or 3)`);
  const headerLen = major === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
  const start = major === 1 ? 10 : 12;
  if (buf.length < start + headerLen) throw new ValidationError(`${file}: truncated .npy header`);
  const header = buf.toString(major === 3 ? 'utf8' : 'latin1', start, start + headerLen);
  const descr = /'descr'\s*:\s*'([^']*)'/.exec(header)?.[1];
  const fortran = /'fortran_order'\s*:\s*(True|False)/.exec(header)?.[1];
  const shapeText = /'shape'\s*:\s*\(([^)]*)\)/.exec(header)?.[1];
  if (descr === undefined || fortran === undefined || shapeText === undefined) throw new ValidationError(`${file}: cannot read the .npy header ${JSON.stringify(header.trim())}`);
  if (fortran === 'True') throw new ValidationError(`${file}: the array is in Fortran (column-major) order; save it in C order: np.save(path, np.ascontiguousarray(a))`);
  const shape = shapeText.split(',').map((s) => s.trim()).filter((s) => s !== '').map(Number);
  if (shape.some((d) => !Number.isInteger(d) || d < 0)) throw new ValidationError(`${file}: bad shape (${shapeText}) in the .npy header`);
  const m = /^([<>|=])([a-z])(\d+)$/.exec(descr);
  const reader = m ? READERS[`${m[2]}${m[3]}`] : undefined;
  if (!m || !reader)
    throw new ValidationError(`${file}: dtype '${descr}' is not supported; use float32, float64, int8-int64, uint8-uint32 or bool (e.g. a.astype(np.float32))`);
  const [size, read] = reader;
  const le = m[1] !== '>'; // '=' is native order, and every platform numpy writes on is little-endian
  const count = shape.reduce((a, b) => a * b, 1);
  const off = start + headerLen;
  if (buf.length - off < count * size) throw new ValidationError(`${file}: shape (${shape.join(', ')}) needs ${count * size} bytes of data, the file has ${buf.length - off}`);
  const view = new DataView(buf.buffer, buf.byteOffset + off, count * size);
  const data = new Float64Array(count);
  for (let i = 0; i < count; i++) data[i] = read(view, i * size, le);
  return { shape, data, dtype: descr };
}

function readNpy(path: string, shown: string): { arr: NpyArray; bytes: Buffer } {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    throw new ValidationError(`${shown}: cannot read the file (${(e as Error).message})`, { cause: e });
  }
  return { arr: parseNpy(bytes, shown), bytes };
}

/**
 * Features: shape (n) or (n, d) -> numeric columns x0..x{d-1} (one block column `x` above MAX_NAMED_FEATURES);
 * (n, h, w) or (n, h, w, c) -> flattened into block `x`, remembered as an image shape. Targets: (n) -> `y`,
 * (n, k) -> y0..y{k-1} (or `y` when k is 1).
 */
export function readNpyColumns(paths: [string, string], shown: [string, string], source: string): LoadedColumns {
  const f = readNpy(paths[0], shown[0]);
  const t = readNpy(paths[1], shown[1]);
  const [n, ...rest] = f.arr.shape;
  if (n === undefined) throw new ValidationError(`${shown[0]}: a 0-d array; features need one row per example`);
  if (t.arr.shape[0] !== n || t.arr.shape.length > 2)
    throw new ValidationError(`${shown[1]}: targets of shape (${t.arr.shape.join(', ')}) do not match ${n} examples in ${shown[0]}; expected (${n}) or (${n}, k)`);
  const d = rest.reduce((a, b) => a * b, 1);
  const k = t.arr.shape[1] ?? 1;
  const imageShape = rest.length === 2 ? ([rest[0]!, rest[1]!, 1] as [number, number, number]) : rest.length === 3 ? (rest as [number, number, number]) : undefined;
  if (rest.length > 3) throw new ValidationError(`${shown[0]}: features of shape (${f.arr.shape.join(', ')}); use (n, d), (n, h, w) or (n, h, w, c)`);
  const columns: RawColumn[] = [];
  if (rest.length <= 1 && d <= MAX_NAMED_FEATURES) {
    for (let j = 0; j < d; j++) columns.push({ name: `x${j}`, type: 'numeric', values: Float64Array.from({ length: n }, (_, i) => f.arr.data[i * d + j]!) });
  } else columns.push({ name: 'x', type: 'block', width: d, values: Float32Array.from(f.arr.data) });
  const nf = columns.length;
  for (let j = 0; j < k; j++) columns.push({ name: k === 1 ? 'y' : `y${j}`, type: 'numeric', values: Float64Array.from({ length: n }, (_, i) => t.arr.data[i * k + j]!) });
  const where = (row: number, col: number): string =>
    col < nf ? `${shown[0]}: row ${row}${nf > 1 ? `, column ${col} (${columns[col]!.name})` : ''}` : `${shown[1]}: row ${row}${k > 1 ? `, column ${col - nf}` : ''} (${columns[col]!.name})`;
  const hash = createHash('sha256').update('npy\0').update(f.bytes).update('\0').update(t.bytes);
  return { columns, defaultTargets: columns.slice(nf).map((c) => c.name), where, format: 'npy', source, hash, ...(imageShape ? { imageShape } : {}) };
}
