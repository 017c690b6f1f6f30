/** `images:DIR`: one subfolder per class of PNG/JPEG files, decoded by pure-JS libraries (pngjs, jpeg-js) and resized bilinearly. */
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import pngjs from 'pngjs';
import jpeg from 'jpeg-js';
import { ValidationError } from '@fedge/proto';
import type { LoadTableOptions, LoadedColumns } from './schema.js';

const IMAGE_EXT = /\.(png|jpe?g)$/i;

/** An image as RGB floats in [0, 1], row-major HWC. */
export interface RgbImage {
  height: number;
  width: number;
  rgb: Float32Array;
  color: boolean;
}

/**
 * Decodes a PNG or JPEG (sniffed from the bytes, not the extension) to RGB in [0, 1]. Alpha is multiplied in
 * (transparent pixels become black); 16-bit PNGs are rescaled to 8 bits by pngjs.
 */
export function decodeImage(bytes: Buffer, file: string): RgbImage {
  let w: number, h: number, rgba: Uint8Array;
  try {
    if (bytes.length >= 8 && bytes.readUInt32BE(0) === 0x89504e47) {
      const png = pngjs.PNG.sync.read(bytes);
      ({ width: w, height: h } = png);
      rgba = png.data;
    } else if (bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) {
      const img = jpeg.decode(bytes, { useTArray: true, formatAsRGBA: true });
      ({ width: w, height: h } = img);
      rgba = img.data;
    } else throw new Error('neither a PNG nor a JPEG (unknown signature)');
  } catch (e) {
    throw new ValidationError(`${file}: the image does not decode: ${(e as Error).message}; fix or remove the file`, { cause: e });
  }
  if (!(w > 0 && h > 0) || rgba.length < w * h * 4) throw new ValidationError(`${file}: the image does not decode: ${w}x${h} with ${rgba.length} bytes of pixels`);
  const rgb = new Float32Array(w * h * 3);
  let color = false;
  for (let p = 0; p < w * h; p++) {
    const a = rgba[p * 4 + 3]! / 255;
    const r = rgba[p * 4]!, g = rgba[p * 4 + 1]!, b = rgba[p * 4 + 2]!;
    if (r !== g || g !== b) color = true;
    rgb[p * 3] = (r / 255) * a;
    rgb[p * 3 + 1] = (g / 255) * a;
    rgb[p * 3 + 2] = (b / 255) * a;
  }
  return { height: h, width: w, rgb, color };
}

/**
 * Bilinear resize of a row-major HWC image with half-pixel centres (tf.image.resizeBilinear with
 * halfPixelCenters, PIL's bilinear without antialiasing). Returns `src` itself when the size does not change.
 */
export function resizeBilinear(src: Float32Array, h: number, w: number, c: number, nh: number, nw: number): Float32Array {
  if (h === nh && w === nw) return src;
  const out = new Float32Array(nh * nw * c);
  const sy = h / nh, sx = w / nw;
  for (let y = 0; y < nh; y++) {
    const fy = Math.min(Math.max((y + 0.5) * sy - 0.5, 0), h - 1);
    const y0 = Math.floor(fy), y1 = Math.min(y0 + 1, h - 1), dy = fy - y0;
    for (let x = 0; x < nw; x++) {
      const fx = Math.min(Math.max((x + 0.5) * sx - 0.5, 0), w - 1);
      const x0 = Math.floor(fx), x1 = Math.min(x0 + 1, w - 1), dx = fx - x0;
      for (let k = 0; k < c; k++) {
        const top = src[(y0 * w + x0) * c + k]! * (1 - dx) + src[(y0 * w + x1) * c + k]! * dx;
        const bottom = src[(y1 * w + x0) * c + k]! * (1 - dx) + src[(y1 * w + x1) * c + k]! * dx;
        out[(y * nw + x) * c + k] = top * (1 - dy) + bottom * dy;
      }
    }
  }
  return out;
}

/** ITU-R BT.601 luma: grey images (r = g = b) keep their exact values. */
function toGrey(rgb: Float32Array): Float32Array {
  const out = new Float32Array(rgb.length / 3);
  for (let p = 0; p < out.length; p++) out[p] = 0.299 * rgb[p * 3]! + 0.587 * rgb[p * 3 + 1]! + 0.114 * rgb[p * 3 + 2]!;
  return out;
}

function listDir(dir: string, shown: string): string[] {
  try {
    return readdirSync(dir).filter((f) => !f.startsWith('.')).sort();
  } catch (e) {
    throw new ValidationError(`${shown}: cannot read the folder (${(e as Error).message})`, { cause: e });
  }
}

/**
 * Classes are the subfolders of `dir` (sorted), examples their .png/.jpg/.jpeg files (sorted; other files are
 * ignored). Produces block `pixels` (h*w*c values in [0, 1]) and categorical target `label` (the folder name).
 */
export function readImageColumns(dir: string, shown: string, o: LoadTableOptions): LoadedColumns {
  const files: { path: string; rel: string; label: string }[] = [];
  for (const cls of listDir(dir, shown)) {
    if (!statSync(join(dir, cls)).isDirectory()) continue;
    for (const f of listDir(join(dir, cls), `${shown}/${cls}`)) if (IMAGE_EXT.test(f)) files.push({ path: join(dir, cls, f), rel: `${cls}/${f}`, label: cls });
  }
  if (files.length === 0) throw new ValidationError(`${shown}: no images; expected one subfolder per class holding .png/.jpg files (${shown}/cat/1.png, ${shown}/dog/2.jpg)`);
  const hash = createHash('sha256').update('images\0');
  const decoded: Float32Array[] = [];
  let size = o.imageSize, color = false;
  for (const f of files) {
    const bytes = readFileSync(f.path);
    hash.update(f.rel).update('\0').update(bytes).update('\0');
    const img = decodeImage(bytes, `${shown}/${f.rel}`);
    size ??= [img.height, img.width];
    color ||= img.color;
    decoded.push(resizeBilinear(img.rgb, img.height, img.width, 3, size[0], size[1]));
  }
  const [h, w] = size!;
  const c = o.channels ?? (color ? 3 : 1);
  const width = h * w * c;
  const pixels = new Float32Array(files.length * width);
  decoded.forEach((rgb, i) => pixels.set(c === 3 ? rgb : toGrey(rgb), i * width));
  return {
    columns: [
      { name: 'pixels', type: 'block', width, values: pixels },
      { name: 'label', type: 'categorical', values: files.map((f) => f.label) },
    ],
    defaultTargets: ['label'],
    where: (row, col) => `${shown}/${files[row]!.rel}${col === 1 ? ' (label)' : ''}`,
    files: files.map((f) => f.rel),
    imageShape: [h, w, c],
    format: 'images',
    source: shown,
    hash,
  };
}
