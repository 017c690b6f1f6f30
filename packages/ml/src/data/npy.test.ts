import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ValidationError } from '@fedge/proto';
import { loadTable } from './load.js';
import { parseNpy } from './npy.js';

let dir: string;
beforeAll(async () => void (dir = await mkdtemp(join(tmpdir(), 'fedge-npy-'))));
afterAll(() => rm(dir, { recursive: true, force: true }));

/** A .npy file as numpy writes it: magic, version, header dict padded with spaces to a 64-byte boundary, data. */
function npy(descr: string, shape: number[], data: ArrayBufferView, o: { version?: 1 | 2 | 3; fortran?: boolean } = {}): Buffer {
  const version = o.version ?? 1;
  const shapeText = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  let header = `{'descr': '${descr}', 'fortran_order': ${o.fortran ? 'True' : 'False'}, 'shape': ${shapeText}, }`;
  const pre = version === 1 ? 10 : 12;
  header += ' '.repeat(63 - ((pre + header.length) % 64)) + '\n';
  const head = Buffer.alloc(pre);
  Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, version, 0]).copy(head);
  if (version === 1) head.writeUInt16LE(header.length, 8);
  else head.writeUInt32LE(header.length, 8);
  return Buffer.concat([head, Buffer.from(header, 'latin1'), Buffer.from(data.buffer, data.byteOffset, data.byteLength)]);
}

async function files(name: string, x: Buffer, y: Buffer): Promise<string> {
  await writeFile(join(dir, `${name}-x.npy`), x);
  await writeFile(join(dir, `${name}-y.npy`), y);
  return `npy:${name}-x.npy,${name}-y.npy`;
}

describe('loadTable npy', () => {
  it('float32 features and int64 targets become x0.. and y', async () => {
    const spec = await files('f32', npy('<f4', [3, 2], Float32Array.of(1.5, -2, 3, 4e6, 0, 0.25)), npy('<i8', [3], BigInt64Array.of(0n, 2n, 1n)));
    const t = await loadTable(spec, { baseDir: dir });
    expect(t.format).toBe('npy');
    expect(t.columns.map((c) => [c.name, c.type])).toEqual([['x0', 'numeric'], ['x1', 'numeric'], ['y', 'numeric']]);
    expect(Array.from(t.columns[0]!.values as Float64Array)).toEqual([1.5, 3, 0]);
    expect(Array.from(t.columns[1]!.values as Float64Array)).toEqual([-2, 4e6, 0.25]);
    expect(Array.from(t.columns[2]!.values as Float64Array)).toEqual([0, 2, 1]);
    expect(t.targets).toEqual(['y']);
  });

  it('float64 (format v2, big-endian) features with 2-D targets become y0, y1', async () => {
    const x = Buffer.alloc(16);
    x.writeDoubleBE(0.1, 0);
    x.writeDoubleBE(-7, 8);
    const spec = await files('f64', npy('>f8', [2, 1], x, { version: 2 }), npy('<f8', [2, 2], Float64Array.of(1, 2, 3, 4), { version: 3 }));
    const t = await loadTable(spec, { baseDir: dir });
    expect(t.columns.map((c) => c.name)).toEqual(['x0', 'y0', 'y1']);
    expect(Array.from(t.columns[0]!.values as Float64Array)).toEqual([0.1, -7]);
    expect(Array.from(t.columns[2]!.values as Float64Array)).toEqual([2, 4]);
    expect(t.targets).toEqual(['y0', 'y1']);
  });

  it('N-D uint8 features (images) become one block with an image shape; --scale divides them', async () => {
    const px = Uint8Array.from({ length: 2 * 4 * 4 }, (_, i) => i * 8);
    const spec = await files('img', npy('|u1', [2, 4, 4], px), npy('|u1', [2], Uint8Array.of(1, 0)));
    const t = await loadTable(spec, { baseDir: dir, scale: 255 });
    expect(t.imageShape).toEqual([4, 4, 1]);
    expect(t.columns[0]).toMatchObject({ name: 'x', type: 'block', width: 16 });
    expect((t.columns[0]!.values as Float32Array)[1]).toBeCloseTo(8 / 255, 6);
    // Wide 2-D data is a block too, so its profile stays small.
    const wide = await files('wide', npy('<f4', [2, 300], new Float32Array(600)), npy('|b1', [2], Uint8Array.of(1, 0)));
    expect((await loadTable(wide, { baseDir: dir })).columns.map((c) => c.name)).toEqual(['x', 'y']);
  });

  it('NaN features follow --missing, Inf is an error naming the row', async () => {
    const spec = await files('nan', npy('<f4', [3, 1], Float32Array.of(1, NaN, 3)), npy('<i4', [3], Int32Array.of(0, 1, 0)));
    await expect(loadTable(spec, { baseDir: dir })).rejects.toThrow(/nan-x\.npy: row 1: missing value/);
    expect((await loadTable(spec, { baseDir: dir, missing: 'drop' })).n).toBe(2);
    const inf = await files('inf', npy('<f4', [2, 1], Float32Array.of(1, -Infinity)), npy('<i4', [2], Int32Array.of(0, 1)));
    await expect(loadTable(inf, { baseDir: dir })).rejects.toThrow(/inf-x\.npy: row 1: -Infinity is not a finite number/);
  });

  const bad: [string, () => Buffer, RegExp][] = [
    ['fortran order', () => npy('<f4', [2, 2], new Float32Array(4), { fortran: true }), /Fortran \(column-major\) order; .*np\.ascontiguousarray/],
    ['an unsupported dtype', () => npy('<f2', [2], new Uint16Array(2)), /dtype '<f2' is not supported/],
    ['a truncated file', () => npy('<f4', [4, 2], new Float32Array(3)), /needs 32 bytes of data, the file has 12/],
    ['not an npy file', () => Buffer.from('hello world, not numpy'), /not a NumPy \.npy file/],
  ];
  it.each(bad)('%s is a ValidationError', async (_what, make, pattern) => {
    const spec = await files('bad', make(), npy('<i4', [2], Int32Array.of(0, 1)));
    await expect(loadTable(spec, { baseDir: dir })).rejects.toThrow(pattern);
    expect(() => parseNpy(make(), 'bad.npy')).toThrow(ValidationError);
  });

  it('targets must match the examples', async () => {
    const spec = await files('len', npy('<f4', [3, 1], new Float32Array(3)), npy('<i4', [2], Int32Array.of(0, 1)));
    await expect(loadTable(spec, { baseDir: dir })).rejects.toThrow(/len-y\.npy: targets of shape \(2\) do not match 3 examples/);
    await expect(loadTable('npy:only-one.npy', { baseDir: dir })).rejects.toThrow(/use npy:FEATURES\.npy,TARGETS\.npy/);
  });
});
