import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pngjs from 'pngjs';
import jpeg from 'jpeg-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ValidationError } from '@fedge/proto';
import { loadTable } from './load.js';
import { resizeBilinear } from './images.js';

let dir: string;
beforeAll(async () => void (dir = await mkdtemp(join(tmpdir(), 'fedge-images-'))));
afterAll(() => rm(dir, { recursive: true, force: true }));

/** A w x h image whose pixel (x, y) is rgb(x, y). */
function rgba(w: number, h: number, rgb: (x: number, y: number) => [number, number, number]): Buffer {
  const data = Buffer.alloc(w * h * 4);
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++) {
      const [r, g, b] = rgb(x, y);
      data.set([r, g, b, 255], (y * w + x) * 4);
    }
  return data;
}
function png(w: number, h: number, rgb: (x: number, y: number) => [number, number, number]): Buffer {
  const p = new pngjs.PNG({ width: w, height: h });
  rgba(w, h, rgb).copy(p.data);
  return pngjs.PNG.sync.write(p);
}
const jpg = (w: number, h: number, rgb: (x: number, y: number) => [number, number, number]): Buffer => jpeg.encode({ width: w, height: h, data: rgba(w, h, rgb) }, 100).data;

async function folder(name: string, files: Record<string, Buffer>): Promise<string> {
  for (const [rel, bytes] of Object.entries(files)) {
    await mkdir(join(dir, name, rel, '..'), { recursive: true });
    await writeFile(join(dir, name, rel), bytes);
  }
  return `images:${name}`;
}

describe('loadTable images', () => {
  it('grey PNGs: one class per folder, sorted, pixels in [0, 1], channels 1', async () => {
    const spec = await folder('grey', {
      'b/2.png': png(4, 4, () => [255, 255, 255]),
      'a/1.png': png(4, 4, (x) => [x * 85, x * 85, x * 85]),
      'a/notes.txt': Buffer.from('ignored'),
    });
    const t = await loadTable(spec, { baseDir: dir });
    expect(t.n).toBe(2);
    expect(t.imageShape).toEqual([4, 4, 1]);
    expect(t.targets).toEqual(['label']);
    expect(t.columns[1]!.values).toEqual(['a', 'b']);
    const px = t.columns[0]!.values as Float32Array;
    expect(Array.from(px.subarray(0, 4))).toEqual([0, 1 / 3, 2 / 3, 1].map((v) => Math.fround(v)));
    expect(px.subarray(16).every((v) => v === 1)).toBe(true);
  });

  it('colour JPEG + PNG: 3 channels, resized to --image-size (or --channels 1)', async () => {
    const spec = await folder('color', {
      'red/1.jpg': jpg(8, 8, () => [255, 0, 0]),
      'blue/1.png': png(2, 2, () => [0, 0, 255]),
    });
    const t = await loadTable(spec, { baseDir: dir, imageSize: [4, 4] });
    expect(t.imageShape).toEqual([4, 4, 3]);
    const px = t.columns[0]!.values as Float32Array;
    expect(Array.from(px.subarray(0, 3))).toEqual([0, 0, 1]); // blue (sorted first)
    expect(px[48]!).toBeGreaterThan(0.95); // red channel of the JPEG
    expect(px[49]!).toBeLessThan(0.05);
    const grey = await loadTable(spec, { baseDir: dir, imageSize: [4, 4], channels: 1 });
    expect(grey.imageShape).toEqual([4, 4, 1]);
    expect((grey.columns[0]!.values as Float32Array)[0]).toBeCloseTo(0.114, 5);
  });

  it('an image that does not decode is an error naming the file', async () => {
    const spec = await folder('broken', { 'a/ok.png': png(2, 2, () => [0, 0, 0]), 'b/bad.jpg': Buffer.from('not a jpeg at all') });
    await expect(loadTable(spec, { baseDir: dir })).rejects.toThrow(/broken\/b\/bad\.jpg: the image does not decode/);
    const trunc = await folder('trunc', { 'a/t.png': png(4, 4, () => [9, 9, 9]).subarray(0, 40) });
    await expect(loadTable(trunc, { baseDir: dir })).rejects.toThrow(ValidationError);
    await expect(loadTable(await folder('empty', { 'readme.md': Buffer.from('x') }), { baseDir: dir })).rejects.toThrow(/no images; expected one subfolder per class/);
    await expect(loadTable(spec, { baseDir: dir, scale: 255 })).rejects.toThrow(/already scaled/);
  });

  it('resizeBilinear keeps constants and averages neighbours with half-pixel centres', () => {
    expect(Array.from(resizeBilinear(Float32Array.of(0, 1), 1, 2, 1, 1, 1))).toEqual([0.5]);
    expect(Array.from(resizeBilinear(Float32Array.of(0, 1), 1, 2, 1, 1, 4))).toEqual([0, 0.25, 0.75, 1]);
    const c = new Float32Array(27).fill(0.5);
    expect(resizeBilinear(c, 3, 3, 3, 5, 2).every((v) => v === 0.5)).toBe(true);
  });
});
