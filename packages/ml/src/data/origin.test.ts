/** A label the task cannot take is named where the user can find it: the file line, the image file or the loader's row. */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pngjs from 'pngjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadTable } from './load.js';
import { profileTable } from './profile.js';
import { buildPreprocessing } from './preprocess.js';
import { encodeTable } from './encode.js';
import { partitionTable, splitTable, type RawTable } from './table.js';

let dir: string;
beforeAll(async () => void (dir = await mkdtemp(join(tmpdir(), 'fedge-origin-'))));
afterAll(() => rm(dir, { recursive: true, force: true }));

/** Every partition's training and holdout split of `t`: one of them holds any given row. */
function pieces(t: RawTable): RawTable[] {
  return [0, 1, 2].flatMap((partitionId) => {
    const { train, holdout } = splitTable(partitionTable(t, { kind: 'iid', numPartitions: 3, partitionId, seed: 5 }), 0.2, 5);
    return [train, holdout];
  });
}

/** The first error encoding the pieces of `bad` with the preprocessing of `good` (the fleet's), for `outputs` classes. */
function encodeError(good: RawTable, bad: RawTable, type: 'classification' | 'binary', outputs: number): string {
  const pre = buildPreprocessing(profileTable(good).columns, { targets: good.targets, normalization: 'none', taskType: type });
  const errors = pieces(bad).flatMap((p) => {
    try {
      encodeTable(p, pre, { type, outputs });
      return [];
    } catch (e) {
      return [(e as Error).message];
    }
  });
  expect(errors).toHaveLength(1);
  return errors[0]!;
}

describe('a label the task cannot take names its origin', () => {
  it('csv: file:line through --missing drop, partition and holdout', async () => {
    const rows = Array.from({ length: 12 }, (_, i) => `${i},${i % 2 ? 'yes' : 'no'}`);
    rows[1] = ',yes'; // line 3: dropped by --missing drop, so the rows after it shift by one
    await writeFile(join(dir, 'good.csv'), ['x,y', ...rows].join('\n') + '\n');
    rows[8] = '8,maybe'; // line 10
    await writeFile(join(dir, 'bad.csv'), ['x,y', ...rows].join('\n') + '\n');
    const o = { baseDir: dir, target: ['y'], missing: 'drop' as const };
    const message = encodeError(await loadTable('csv:good.csv', o), await loadTable('csv:bad.csv', o), 'binary', 1);
    expect(message).toMatch(/^bad\.csv:10, target 'y': 'maybe' is not one of the fleet's classes \(no, yes\); fix the label or drop the example$/);
  });

  it('csv: an integer class beyond the model\'s outputs names its line', async () => {
    await writeFile(join(dir, 'cls.csv'), ['x,k', ...Array.from({ length: 9 }, (_, i) => `${i},${i === 6 ? 4 : i % 3}`)].join('\n') + '\n');
    const t = await loadTable('csv:cls.csv', { baseDir: dir, target: ['k'] });
    expect(encodeError(t, t, 'classification', 3)).toMatch(/^cls\.csv:8, target 'k': class 4 is outside 0\.\.2/);
  });

  it('images: the file of a class the fleet does not know', async () => {
    const p = new pngjs.PNG({ width: 2, height: 2 });
    const bytes = pngjs.PNG.sync.write(p);
    for (const rel of ['good/cat/a.png', 'good/cat/b.png', 'good/dog/c.png', 'bad/cat/a.png', 'bad/dog/c.png', 'bad/emu/z.png']) {
      await mkdir(join(dir, rel, '..'), { recursive: true });
      await writeFile(join(dir, rel), bytes);
    }
    const o = { baseDir: dir };
    const message = encodeError(await loadTable('images:good', o), await loadTable('images:bad', o), 'classification', 2);
    expect(message).toMatch(/^bad\/emu\/z\.png, target 'label': 'emu' is not one of the fleet's classes \(cat, dog\)/);
  });

  it('a loader module: the row of its output', async () => {
    await writeFile(join(dir, 'load.mjs'), 'export default async () => ({ features: [[1], [2], [3], [4], [5], [6]], targets: [0, 1, 0, 7, 1, 0] });\n');
    const t = await loadTable('module:load.mjs', { baseDir: dir });
    expect(encodeError(t, t, 'classification', 2)).toMatch(/^module:load\.mjs: row 3, target 'y': class 7 is outside 0\.\.1/);
  });
});
