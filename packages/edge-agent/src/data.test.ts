/** loadLocalData partitions every format, splits a holdout and profiles the training split; encodeLegacy keeps mnist as it was. */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dataProfileSchema } from '@fedge/proto';
import { encodeLegacy, loadLocalData } from './data.js';

let dir: string;
beforeAll(async () => void (dir = await mkdtemp(join(tmpdir(), 'fedge-agent-data-'))));
afterAll(() => rm(dir, { recursive: true, force: true }));

const base = { partition: 'iid' as const, numPartitions: 1, partitionId: 0, seed: 42, holdoutFraction: 0.25 };

describe('loadLocalData', () => {
  it('partitions a csv across agents without overlap, holds out, profiles the training split', async () => {
    const rows = Array.from({ length: 40 }, (_, i) => `${i},${i % 3 === 0 ? 'a' : 'b'},${(i * 1.5).toFixed(1)}`);
    await writeFile(join(dir, 'h.csv'), `id,kind,price\n${rows.join('\n')}\n`);
    const parts = await Promise.all([0, 1].map((p) => loadLocalData({ ...base, spec: `csv:${join(dir, 'h.csv')}`, target: ['price'], numPartitions: 2, partitionId: p })));
    const ids = parts.flatMap((d) => [d.train, d.holdout].flatMap((t) => Array.from(t.columns[0]!.values as Float64Array)));
    expect(ids.sort((a, b) => a - b)).toEqual(Array.from({ length: 40 }, (_, i) => i));
    for (const d of parts) {
      expect(d.train.n).toBe(15);
      expect(d.holdout.n).toBe(5);
      expect(dataProfileSchema.parse(d.profile)).toEqual(d.profile);
      expect(d.profile).toMatchObject({ format: 'csv', n: 15, targets: ['price'], fingerprint: d.train.fingerprint });
    }
    expect(parts[0]!.profile.fingerprint).not.toBe(parts[1]!.profile.fingerprint);
    expect(parts[0]!.description).toMatch(/iid partition 0\/2/);
  });

  it('lists category values seen only in the held-out rows (count 0), so the fleet vocabulary covers them; statistics stay the training rows\'', async () => {
    const rows = Array.from({ length: 20 }, (_, i) => `${i},${i === 7 ? 'rare' : 'common'}`);
    await writeFile(join(dir, 'rare.csv'), `x,label\n${rows.join('\n')}\n`);
    // Find a seed whose holdout takes row 7 (the only "rare").
    for (let seed = 0; seed < 50; seed++) {
      const d = await loadLocalData({ ...base, seed, spec: `csv:${join(dir, 'rare.csv')}`, target: ['label'] });
      const held = (d.holdout.columns[1]!.values as (string | null)[]).includes('rare');
      if (!held) continue;
      const label = d.profile.columns[1]!;
      expect(label).toMatchObject({ type: 'categorical', count: d.train.n, values: { common: d.train.n, rare: 0 } });
      expect(dataProfileSchema.parse(d.profile)).toEqual(d.profile);
      return;
    }
    throw new Error('no seed put the rare row in the holdout');
  });

  it('mnist: the legacy encoding is 10 classes of pixels in [0, 1]', async () => {
    const d = await loadLocalData({ ...base, spec: 'mnist', partition: 'shards', numPartitions: 50, partitionId: 3, holdoutFraction: 0.1 });
    expect(d.description).toBe('mnist shards partition 3/50 (seed 42)');
    const { train, holdout } = await encodeLegacy(d);
    expect(train).toMatchObject({ n: d.train.n, features: 784, numClasses: 10 });
    expect(holdout.n).toBe(d.holdout.n);
    expect(train.y).toBeInstanceOf(Int32Array);
    expect(new Set(train.y).size).toBeLessThanOrEqual(2);
  });

  it('bad data fails with the file named', async () => {
    await writeFile(join(dir, 'bad.csv'), 'a,b\n1,2\n3,NaN\n');
    await expect(loadLocalData({ ...base, spec: 'csv:' + join(dir, 'bad.csv') })).rejects.toThrow(/bad\.csv:3:2 \(b\): 'NaN' is not a finite number/);
    await expect(loadLocalData({ ...base, spec: 'mnist', partitionId: 1 })).rejects.toThrow(/--partition-id: 1 is outside 0\.\.0/);
  });
});
