import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ValidationError } from '@fedge/proto';
import { loadTable } from './load.js';
import type { RawColumn } from './table.js';

let dir: string;
beforeAll(async () => void (dir = await mkdtemp(join(tmpdir(), 'fedge-csv-'))));
afterAll(() => rm(dir, { recursive: true, force: true }));

async function csv(name: string, text: string): Promise<string> {
  await writeFile(join(dir, name), text);
  return `csv:${name}`;
}
const values = (c: RawColumn | undefined): unknown[] => Array.from(c!.values as ArrayLike<unknown>);

describe('loadTable csv', () => {
  it('reads a header, quoted fields, categorical columns and any finite number', async () => {
    const spec = await csv('houses.csv', '\ufeffsize,"city, state",price,note\r\n120.5,"Springfield, IL",-3e2,"say ""hi"""\r\n80,Shelbyville,1e-3,\n\n95,"Springfield, IL",42,x\n');
    const t = await loadTable(spec, { baseDir: dir, target: ['price'], missing: 'mean' });
    expect(t.n).toBe(3);
    expect(t.format).toBe('csv');
    expect(t.targets).toEqual(['price']);
    expect(t.columns.map((c) => [c.name, c.type])).toEqual([['size', 'numeric'], ['city, state', 'categorical'], ['price', 'numeric'], ['note', 'categorical']]);
    expect(values(t.columns[0])).toEqual([120.5, 80, 95]);
    expect(values(t.columns[1])).toEqual(['Springfield, IL', 'Shelbyville', 'Springfield, IL']);
    expect(values(t.columns[2])).toEqual([-300, 0.001, 42]);
    expect(values(t.columns[3])).toEqual(['say "hi"', null, 'x']);
    expect(t.fingerprint).toMatch(/^[0-9a-f]{64}$/);
  });

  it('selects --features, forces --categorical, targets by index, scales features only', async () => {
    const spec = await csv('sel.csv', 'a,b,zip,y\n1,10,1234,0\n2,20,5678,1\n');
    const t = await loadTable(spec, { baseDir: dir, target: ['3'], features: ['a', 'zip'], categorical: ['zip'], scale: 2 });
    expect(t.columns.map((c) => [c.name, c.type])).toEqual([['a', 'numeric'], ['zip', 'categorical'], ['y', 'numeric']]);
    expect(values(t.columns[0])).toEqual([0.5, 1]);
    expect(values(t.columns[1])).toEqual(['1234', '5678']);
    expect(values(t.columns[2])).toEqual([0, 1]);
  });

  it('without a header names columns c0.. and keeps the legacy layout: the first column is the label', async () => {
    const t = await loadTable(await csv('legacy.csv', '3,0,255\n1,128,0\n'), { baseDir: dir });
    expect(t.targets).toEqual(['c0']);
    expect(t.columns.map((c) => c.name)).toEqual(['c0', 'c1', 'c2']);
    expect(values(t.columns[1])).toEqual([0, 128]); // no implicit /255
    // With a header and no --target there is no target: the run's task.target names it.
    expect((await loadTable(await csv('nt.csv', 'x,y\n1,2\n'), { baseDir: dir })).targets).toEqual([]);
  });

  it('missing values: error names file:line:column, drop removes the row, mean keeps NaN / null', async () => {
    const spec = await csv('miss.csv', 'a,b,y\n1,u,0\n,v,1\n3,,0\n');
    await expect(loadTable(spec, { baseDir: dir, target: ['y'] })).rejects.toThrow(/miss\.csv:3:1 \(a\): missing value; .*--missing drop/);
    const dropped = await loadTable(spec, { baseDir: dir, target: ['y'], missing: 'drop' });
    expect(dropped.n).toBe(1);
    const mean = await loadTable(spec, { baseDir: dir, target: ['y'], missing: 'mean' });
    expect(values(mean.columns[0])).toEqual([1, NaN, 3]);
    expect(values(mean.columns[1])).toEqual(['u', 'v', null]);
    await expect(loadTable(await csv('missy.csv', 'a,y\n1,0\n2,\n'), { baseDir: dir, target: ['y'], missing: 'mean' })).rejects.toThrow(/missy\.csv:3:2 \(y\): missing target value/);
  });

  const bad: [string, string, Parameters<typeof loadTable>[1], RegExp][] = [
    ['wrong column name', 'a,b\n1,2\n', { target: ['price'] }, /--target 'price': .* has no such column; its columns are: a, b/],
    ['non-numeric cell in a numeric column', 'a,b\n1,2\n3,4\nx7,5\n', {}, /bad\.csv:4:1 \(a\): 'x7' is not a number, but 2 of the column's 3 values are; .*--categorical a/],
    ['NaN text', 'a,b\n1,2\nNaN,4\n', {}, /bad\.csv:3:1 \(a\): 'NaN' is not a finite number/],
    ['-inf text', 'a,b\n1,2\n3,-inf\n', {}, /bad\.csv:3:2 \(b\): '-inf' is not a finite number/],
    ['an overflowing number', 'a,b\n1,2\n1e999,4\n', {}, /bad\.csv:3:1 \(a\): Infinity is not a finite number/],
    ['ragged rows', 'a,b\n1,2\n3\n', {}, /bad\.csv: not a valid CSV file: .*line 3/],
    ['a feature that is also a target', 'a,b\n1,2\n', { target: ['a'], features: ['a'] }, /--features 'a' is also a --target/],
  ];
  it.each(bad)('%s is a ValidationError naming where', async (_what, text, opts, pattern) => {
    const spec = await csv('bad.csv', text);
    const p = loadTable(spec, { baseDir: dir, ...opts });
    await expect(p).rejects.toThrow(pattern);
    await expect(loadTable(spec, { baseDir: dir, ...opts })).rejects.toBeInstanceOf(ValidationError);
  });

  it('a mixed column that is not used is no error', async () => {
    const t = await loadTable(await csv('unused.csv', 'a,notes,y\n1,2,0\n2,3,1\n3,n/a,0\n'), { baseDir: dir, target: ['y'], features: ['a'] });
    expect(t.columns.map((c) => c.name)).toEqual(['a', 'y']);
  });

  it('the fingerprint follows the bytes and the schema', async () => {
    const a = await loadTable(await csv('f1.csv', 'a,y\n1,0\n'), { baseDir: dir, target: ['y'] });
    const same = await loadTable('csv:' + join(dir, 'f1.csv'), { target: ['y'] });
    const other = await loadTable(await csv('f2.csv', 'a,y\n2,0\n'), { baseDir: dir, target: ['y'] });
    const schema = await loadTable('csv:f1.csv', { baseDir: dir, target: ['y'], categorical: ['a'] });
    expect(same.fingerprint).toBe(a.fingerprint);
    expect(other.fingerprint).not.toBe(a.fingerprint);
    expect(schema.fingerprint).not.toBe(a.fingerprint);
  });

  it('rejects options of other formats and unknown specs', async () => {
    await expect(loadTable('csv:x.csv', { imageSize: [8, 8] })).rejects.toThrow(/--image-size applies to images/);
    await expect(loadTable('parquet:x', {})).rejects.toThrow(/not a data spec; use mnist \| csv:PATH/);
    await expect(loadTable('csv:nope.csv', { baseDir: dir })).rejects.toThrow(/nope\.csv: cannot read the file/);
  });
});
