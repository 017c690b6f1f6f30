import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadTable } from './load.js';

let dir: string;
beforeAll(async () => void (dir = await mkdtemp(join(tmpdir(), 'fedge-module-'))));
afterAll(() => rm(dir, { recursive: true, force: true }));

async function mod(name: string, body: string): Promise<string> {
  await writeFile(join(dir, name), body);
  return `module:${name}`;
}

describe('loadTable module', () => {
  it('a default export returning rows and class names', async () => {
    const spec = await mod('rows.mjs', `export default async () => ({ features: [[1, 2], [3, 4], [5, 6]], targets: ['no', 'yes', 'no'], featureNames: ['age', 'bmi'], targetNames: ['sick'] });`);
    const t = await loadTable(spec, { baseDir: dir });
    expect(t.format).toBe('module');
    expect(t.columns.map((c) => [c.name, c.type])).toEqual([['age', 'numeric'], ['bmi', 'numeric'], ['sick', 'categorical']]);
    expect(Array.from(t.columns[1]!.values as Float64Array)).toEqual([2, 4, 6]);
    expect(t.targets).toEqual(['sick']);
    expect(t.fingerprint).toBe((await loadTable(spec, { baseDir: dir })).fingerprint);
  });

  it('a named `load` returning a Float32Array with an image shape and multi-output targets', async () => {
    const spec = await mod('flat.mjs', `export async function load() { return { features: new Float32Array(2 * 12).fill(0.5), shape: [2, 2, 3], targets: [[1, 0], [0, 1]] }; }`);
    const t = await loadTable(spec, { baseDir: dir });
    expect(t.imageShape).toEqual([2, 2, 3]);
    expect(t.columns.map((c) => c.name)).toEqual(['x', 'y0', 'y1']);
    expect(t.columns[0]).toMatchObject({ type: 'block', width: 12 });
  });

  const bad: [string, string, RegExp][] = [
    ['a loader that throws', `export default async () => { throw new Error('database is down'); };`, /^module:m\d\.mjs: loader threw: database is down$/],
    ['no loader', `export const x = 1;`, /exports no loader/],
    ['ragged rows', `export default () => ({ features: [[1, 2], [3]], targets: [0, 1] });`, /features\[1\] is not an array of 2 numbers/],
    ['a non-number', `export default () => ({ features: [[1], ['a']], targets: [0, 1] });`, /features\[1\]\[0\] is "a", not a number/],
    ['length mismatch', `export default () => ({ features: [[1], [2], [3]], targets: [0, 1] });`, /3 feature rows for 2 targets/],
    ['Infinity', `export default () => ({ features: [[1], [Infinity]], targets: [0, 1] });`, /features\[1\]: Infinity is not a finite number/],
    ['a syntax error', `export default () => {`, /cannot import the module/],
  ];
  it.each(bad.map((b, i) => [...b, i] as const))('%s is a ValidationError naming the module', async (_what, body, pattern, i) => {
    const spec = await mod(`m${i}.mjs`, body);
    await expect(loadTable(spec, { baseDir: dir })).rejects.toThrow(pattern);
  });
});
