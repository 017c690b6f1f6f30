/**
 * Legacy dataset files straight to an encoded Dataset: MNIST IDX (optionally gzipped) and a labelled CSV of 0-1 or
 * 0-255 values. Agents and `fedge model export --calibration` load data through data/load.ts (loadTable) instead;
 * readIdx is shared with data/builtin.ts.
 */
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { ValidationError } from '@fedge/proto';
import type { Dataset } from './dataset.js';

export interface LoadOptions {
  /** Output classes of the model; default max label + 1 (a client's shard may lack the top classes, so pass 10 for MNIST). */
  numClasses?: number;
}

function classes(y: Int32Array, opts: LoadOptions | undefined, where: string): number {
  let max = -1;
  for (const v of y) if (v > max) max = v;
  const k = opts?.numClasses ?? max + 1;
  if (max >= k) throw new ValidationError(`${where}: label ${max} is not below numClasses ${k}`);
  return k;
}

function readMaybeGz(path: string): Buffer {
  const raw = readFileSync(path);
  return raw[0] === 0x1f && raw[1] === 0x8b ? gunzipSync(raw) : raw; // sniff rather than trust the extension
}

/** IDX: big-endian magic 0x0000080N (N = dims, unsigned bytes), then N int32 sizes, then data. */
export function readIdx(path: string, dims: number): { shape: number[]; data: Uint8Array } {
  const buf = readMaybeGz(path);
  if (buf.length < 4 + 4 * dims || buf.readUInt32BE(0) !== 0x800 + dims)
    throw new ValidationError(`${path}: not an IDX file of unsigned bytes with ${dims} dimension(s) (magic ${buf.length >= 4 ? '0x' + buf.readUInt32BE(0).toString(16) : 'missing'})`);
  const shape = Array.from({ length: dims }, (_, i) => buf.readUInt32BE(4 + 4 * i));
  const size = shape.reduce((a, b) => a * b, 1);
  const off = 4 + 4 * dims;
  if (buf.length - off !== size) throw new ValidationError(`${path}: header promises ${size} bytes of data, file has ${buf.length - off}`);
  return { shape, data: buf.subarray(off) };
}

export function loadIdx(imagesPath: string, labelsPath: string, opts?: LoadOptions): Dataset {
  const img = readIdx(imagesPath, 3);
  const lab = readIdx(labelsPath, 1);
  const [n, rows, cols] = img.shape as [number, number, number];
  if (lab.shape[0] !== n) throw new ValidationError(`${labelsPath}: ${lab.shape[0]} labels for ${n} images in ${imagesPath}`);
  const x = new Float32Array(img.data.length);
  for (let i = 0; i < x.length; i++) x[i] = img.data[i]! / 255;
  const y = Int32Array.from(lab.data);
  return { x, y, n, features: rows * cols, numClasses: classes(y, opts, labelsPath) };
}

/**
 * CSV format: comma-separated, one example per line; optional header (detected when the first field of the
 * first line is not a number); column 1 = integer label >= 0, remaining columns = features. Features are
 * taken as-is when all lie in [0,1], or divided by 255 when any exceeds 1 (0-255 pixel values).
 * Blank lines are skipped; every row must have the same number of columns.
 */
export function loadCsv(path: string, opts?: LoadOptions): Dataset {
  const lines = readFileSync(path, 'utf8').split(/\r?\n/);
  let header: string[] | undefined;
  const labels: number[] = [];
  const values: number[] = [];
  let width = -1;
  for (let ln = 0; ln < lines.length; ln++) {
    const line = lines[ln]!.trim();
    if (line === '') continue;
    const cells = line.split(',').map((c) => c.trim());
    const where = (col: number) => `${path}:${ln + 1}: column ${col + 1}${header?.[col] ? ` (${header[col]})` : ''}`;
    if (width < 0 && header === undefined && labels.length === 0 && !/^[-+]?\d/.test(cells[0]!)) {
      header = cells;
      continue;
    }
    if (width < 0) width = cells.length;
    if (width < 2) throw new ValidationError(`${path}:${ln + 1}: need a label column and at least one feature column`);
    if (cells.length !== width) throw new ValidationError(`${path}:${ln + 1}: expected ${width} columns, got ${cells.length}`);
    const label = Number(cells[0]);
    if (cells[0] === '' || !Number.isInteger(label) || label < 0) throw new ValidationError(`${where(0)}: label "${cells[0]}" is not a non-negative integer`);
    labels.push(label);
    for (let c = 1; c < width; c++) {
      const v = Number(cells[c]);
      if (cells[c] === '' || !Number.isFinite(v)) throw new ValidationError(`${where(c)}: "${cells[c]}" is not a number`);
      if (v < 0 || v > 255) throw new ValidationError(`${where(c)}: ${v} is outside [0,1] (or 0-255 pixels)`);
      values.push(v);
    }
  }
  if (labels.length === 0) throw new ValidationError(`${path}: no data rows`);
  const x = Float32Array.from(values);
  if (x.some((v) => v > 1)) for (let i = 0; i < x.length; i++) x[i]! /= 255;
  const y = Int32Array.from(labels);
  return { x, y, n: y.length, features: width - 1, numClasses: classes(y, opts, path) };
}
