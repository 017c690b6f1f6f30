/** loadTable: an agent's `--data` spec (csv:, npy:, images:, module:, mnist, idx:) to a RawTable. */
import { isAbsolute, resolve } from 'node:path';
import { ValidationError } from '@fedge/proto';
import type { RawTable } from './table.js';
import { finishTable, type LoadTableOptions, type LoadedColumns } from './schema.js';
import { readCsvColumns } from './csv.js';
import { readNpyColumns } from './npy.js';
import { readImageColumns } from './images.js';
import { readModuleColumns } from './module.js';
import { readIdxColumns, readMnistColumns } from './builtin.js';

export const DATA_SPECS = 'mnist | csv:PATH | npy:FEATURES.npy,TARGETS.npy | images:DIR | module:PATH.mjs | idx:IMAGES,LABELS';

function checkOptions(format: string, o: LoadTableOptions): void {
  if (o.missing !== undefined && !['error', 'drop', 'mean'].includes(o.missing)) throw new ValidationError(`--missing: use error, drop or mean, got '${String(o.missing)}'`);
  if (o.scale !== undefined && !(o.scale > 0 && Number.isFinite(o.scale))) throw new ValidationError(`--scale: expected a positive number, got ${o.scale}`);
  if (o.scale !== undefined && ['images', 'mnist', 'idx'].includes(format)) throw new ValidationError(`--scale: ${format} pixels are already scaled to [0, 1]; drop --scale`);
  if (o.imageSize !== undefined) {
    if (format !== 'images') throw new ValidationError(`--image-size applies to images:DIR data, not ${format}`);
    if (o.imageSize.length !== 2 || o.imageSize.some((v) => !Number.isInteger(v) || v < 1 || v > 4096)) throw new ValidationError(`--image-size: expected HxW, two integers in 1..4096, got ${o.imageSize.join('x')}`);
  }
  if (o.channels !== undefined) {
    if (format !== 'images') throw new ValidationError(`--channels applies to images:DIR data, not ${format}`);
    if (o.channels !== 1 && o.channels !== 3) throw new ValidationError(`--channels: use 1 or 3, got ${String(o.channels)}`);
  }
}

/**
 * Loads the data an agent trains on, unencoded: typed columns, the targets, a fingerprint. Throws ValidationError
 * naming the file (and line:column, row or image) and the fix for anything unusable.
 */
export async function loadTable(spec: string, opts: LoadTableOptions = {}): Promise<RawTable> {
  const at = (p: string): string => (isAbsolute(p) ? p : resolve(opts.baseDir ?? process.cwd(), p));
  const colon = spec.indexOf(':');
  const format = colon < 0 ? spec : spec.slice(0, colon);
  const rest = colon < 0 ? '' : spec.slice(colon + 1);
  const pair = (what: string): [string, string] => {
    const parts = rest.split(',');
    if (parts.length !== 2 || !parts[0] || !parts[1]) throw new ValidationError(`--data: use ${format}:${what}, got '${spec}'`);
    return [parts[0], parts[1]];
  };
  const path = (): string => {
    if (!rest) throw new ValidationError(`--data: '${spec}' names no path; use ${format}:PATH`);
    return rest;
  };
  checkOptions(format, opts);
  let loaded: LoadedColumns;
  switch (format) {
    case 'mnist':
      if (rest) throw new ValidationError(`--data: use 'mnist' alone, got '${spec}'`);
      loaded = readMnistColumns();
      break;
    case 'csv':
      loaded = readCsvColumns(at(path()), path(), opts);
      break;
    case 'npy': {
      const [f, t] = pair('FEATURES.npy,TARGETS.npy');
      loaded = readNpyColumns([at(f), at(t)], [f, t], spec);
      break;
    }
    case 'images':
      loaded = readImageColumns(at(path()), path().replace(/\/+$/, ''), opts);
      break;
    case 'module':
      loaded = await readModuleColumns(at(path()), spec);
      break;
    case 'idx': {
      const [i, l] = pair('IMAGES,LABELS');
      loaded = readIdxColumns(at(i), at(l), [i, l], spec);
      break;
    }
    default:
      throw new ValidationError(`--data: '${spec}' is not a data spec; use ${DATA_SPECS}`);
  }
  return finishTable(loaded, opts);
}
