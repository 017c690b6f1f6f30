import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ValidationError } from '@fedge/proto';
import { loadCsv, loadIdx } from './loaders.js';

let dir: string;
beforeAll(async () => void (dir = await mkdtemp(join(tmpdir(), 'fedge-loaders-'))));
afterAll(() => rm(dir, { recursive: true, force: true }));

function idx(dims: number[], data: number[]): Buffer {
  const head = Buffer.alloc(4 + 4 * dims.length);
  head.writeUInt32BE(0x800 + dims.length, 0);
  dims.forEach((d, i) => head.writeUInt32BE(d, 4 + 4 * i));
  return Buffer.concat([head, Buffer.from(data)]);
}

describe('loadIdx', () => {
  it('reads plain and gzipped MNIST IDX files, scaling pixels by 1/255', async () => {
    const pixels = [0, 255, 51, 102, 0, 0, 0, 255];
    await writeFile(join(dir, 'img.idx'), idx([2, 2, 2], pixels));
    await writeFile(join(dir, 'lab.idx.gz'), gzipSync(idx([2], [7, 3])));
    const ds = loadIdx(join(dir, 'img.idx'), join(dir, 'lab.idx.gz'));
    expect(ds.n).toBe(2);
    expect(ds.features).toBe(4);
    expect(Array.from(ds.y)).toEqual([7, 3]);
    expect(ds.numClasses).toBe(8);
    expect(loadIdx(join(dir, 'img.idx'), join(dir, 'lab.idx.gz'), { numClasses: 10 }).numClasses).toBe(10);
    expect(ds.x[1]).toBe(1);
    expect(ds.x[2]).toBeCloseTo(0.2);
  });

  it('rejects mismatched counts and wrong magic', async () => {
    await writeFile(join(dir, 'img2.idx'), idx([3, 1, 1], [1, 2, 3]));
    await writeFile(join(dir, 'lab2.idx'), idx([2], [1, 2]));
    expect(() => loadIdx(join(dir, 'img2.idx'), join(dir, 'lab2.idx'))).toThrow(/2 labels for 3 images/);
    expect(() => loadIdx(join(dir, 'lab2.idx'), join(dir, 'lab2.idx'))).toThrow(ValidationError);
  });
});

describe('loadCsv', () => {
  it('reads a headered 0-1 CSV as-is', async () => {
    await writeFile(join(dir, 'a.csv'), 'label,p0,p1\n1,0.5,0\n0,1,0.25\n\n');
    const ds = loadCsv(join(dir, 'a.csv'));
    expect(ds).toMatchObject({ n: 2, features: 2, numClasses: 2 });
    expect(Array.from(ds.x)).toEqual([0.5, 0, 1, 0.25]);
    expect(Array.from(ds.y)).toEqual([1, 0]);
  });

  it('scales 0-255 pixels and accepts no header', async () => {
    await writeFile(join(dir, 'b.csv'), '2,255,0,51\r\n9,0,0,0\r\n');
    const ds = loadCsv(join(dir, 'b.csv'));
    expect(ds.x[0]).toBe(1);
    expect(ds.x[2]).toBeCloseTo(0.2);
    expect(ds.numClasses).toBe(10);
  });

  it.each([
    ['label,a,b\n1,0.1,0.2\n1,0.1,x\n', /:3: column 3 \(b\): "x" is not a number/],
    ['label,a\n1,0.1\n1.5,0.2\n', /:3: column 1 \(label\): label "1.5"/],
    ['1,0.1,0.2\n1,0.3\n', /:2: expected 3 columns, got 2/],
    ['1,0.1\n2,-3\n', /:2: column 2: -3 is outside/],
    ['label,a\n', /no data rows/],
  ])('names the line and column of bad input: %j', async (text, pattern) => {
    const p = join(dir, 'bad.csv');
    await writeFile(p, text);
    expect(() => loadCsv(p)).toThrow(pattern);
    expect(() => loadCsv(p)).toThrow(ValidationError);
  });
});
