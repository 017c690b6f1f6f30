/** `mnist` (the bundled digits' training split) and `idx:IMAGES,LABELS` as tables: block `pixels` in [0, 1] plus integer target `label`. */
import { createHash } from 'node:crypto';
import { ValidationError } from '@fedge/proto';
import { loadMnist } from '../mnist.js';
import { readIdx } from '../loaders.js';
import type { LoadedColumns } from './schema.js';

function digitColumns(x: Float32Array, y: ArrayLike<number>, side: [number, number], where: (row: number, col: number) => string, format: string, source: string, hash: ReturnType<typeof createHash>): LoadedColumns {
  return {
    columns: [
      { name: 'pixels', type: 'block', width: side[0] * side[1], values: x },
      { name: 'label', type: 'numeric', values: Float64Array.from(y) },
    ],
    defaultTargets: ['label'],
    where,
    imageShape: [side[0], side[1], 1],
    format,
    source,
    hash,
  };
}

/** The training split of loadMnist() (the coordinator keeps the test split). Pixels alias loadMnist's cache: do not mutate. */
export function readMnistColumns(): LoadedColumns {
  const { train } = loadMnist();
  const hash = createHash('sha256').update('mnist\0').update(new Uint8Array(train.x.buffer, train.x.byteOffset, train.x.byteLength)).update(new Uint8Array(train.y.buffer, train.y.byteOffset, train.y.byteLength));
  return digitColumns(train.x, train.y, [28, 28], (row) => `mnist: example ${row}`, 'mnist', 'mnist', hash);
}

/** MNIST IDX files (optionally gzipped): images (n, rows, cols) of bytes scaled by 1/255, labels (n). */
export function readIdxColumns(images: string, labels: string, shown: [string, string], source: string): LoadedColumns {
  const img = readIdx(images, 3);
  const lab = readIdx(labels, 1);
  const [n, rows, cols] = img.shape as [number, number, number];
  if (lab.shape[0] !== n) throw new ValidationError(`${shown[1]}: ${lab.shape[0]} labels for ${n} images in ${shown[0]}`);
  const x = new Float32Array(img.data.length);
  for (let i = 0; i < x.length; i++) x[i] = img.data[i]! / 255;
  const hash = createHash('sha256').update('idx\0').update(img.data).update('\0').update(lab.data);
  return digitColumns(x, lab.data, [rows, cols], (row, col) => `${shown[col === 0 ? 0 : 1]}: example ${row}`, 'idx', source, hash);
}
