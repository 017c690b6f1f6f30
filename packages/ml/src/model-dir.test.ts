/** preprocessing.json beside a saved model: written atomically with it, validated and checksummed on load. */
import { afterAll, describe, expect, it } from 'vitest';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ValidationError, type ModelBlob, type Preprocessing, type ResolvedTask } from '@fedge/proto';
import { loadModelDir, loadModelDirMeta, saveModelDir, PREPROCESSING_JSON } from './model-dir.js';

const blob: ModelBlob = {
  topology: { class_name: 'Sequential', config: { name: 'm', layers: [] } },
  tensors: [{ name: 'out/kernel', shape: [2, 1], dtype: 'float32' }],
  weights: Float32Array.of(0.5, -1),
};
const preprocessing: Preprocessing = {
  normalization: 'zscore',
  features: [{ name: 'x', kind: 'numeric', shift: 1, scale: 2, mean: 1.5 }, { name: 'c', kind: 'categorical', values: ['a'] }],
  targets: [{ name: 'y', kind: 'numeric' }],
  inputWidth: 2,
};
const task: ResolvedTask = { type: 'regression', loss: 'mse', huberDelta: 1, optimizer: { name: 'sgd', learningRate: 0.1 }, metrics: ['rmse'], outputs: 1 };

const dirs: string[] = [];
async function tmp(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'fedge-model-dir-'));
  dirs.push(d);
  return d;
}
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

describe('saveModelDir / loadModelDirMeta', () => {
  it('writes preprocessing.json beside model.json and reads it back by dir or model.json path', async () => {
    const dir = await tmp();
    const path = await saveModelDir(blob, dir, { task, preprocessing });
    expect((await readdir(dir)).sort()).toEqual(['model.json', PREPROCESSING_JSON, 'weights.bin']);
    for (const p of [dir, path]) expect(await loadModelDirMeta(p)).toEqual({ task, preprocessing });
    const loaded = await loadModelDir(dir);
    expect(Array.from(loaded.weights)).toEqual([0.5, -1]);
    // Preprocessing alone is fine too.
    await saveModelDir(blob, dir, { preprocessing });
    expect(await loadModelDirMeta(dir)).toEqual({ preprocessing });
  });

  it('has no meta without it, and saving without meta removes a stale preprocessing.json', async () => {
    const dir = await tmp();
    await saveModelDir(blob, dir);
    expect(await loadModelDirMeta(dir)).toBeUndefined();
    await saveModelDir(blob, dir, { task, preprocessing });
    await saveModelDir(blob, dir, {});
    expect(await readdir(dir)).not.toContain(PREPROCESSING_JSON);
    expect(await loadModelDirMeta(dir)).toBeUndefined();
  });

  it('refuses to write meta that would not load', async () => {
    const dir = await tmp();
    const bad = { ...preprocessing, features: [{ name: 'x', kind: 'numeric' as const, shift: 0, scale: 0, mean: 0 }] };
    await expect(saveModelDir(blob, dir, { preprocessing: bad })).rejects.toThrow(/preprocessing.json: preprocessing.features.0.scale: scale must not be 0/);
  });

  it('names the file and the field when preprocessing.json is corrupt, and detects a torn overwrite', async () => {
    const dir = await tmp();
    await saveModelDir(blob, dir, { task, preprocessing });
    const file = join(dir, PREPROCESSING_JSON);
    await writeFile(file, '{"task": ');
    await expect(loadModelDirMeta(dir)).rejects.toThrow(ValidationError);
    await expect(loadModelDirMeta(dir)).rejects.toThrow(new RegExp(`${file.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: not valid JSON`));
    await writeFile(file, JSON.stringify({ preprocessing: { ...preprocessing, inputWidth: 0 } }));
    await expect(loadModelDirMeta(dir)).rejects.toThrow(/preprocessing.json: preprocessing.inputWidth: /);
    await writeFile(file, JSON.stringify({ task, extra: 1 }));
    await expect(loadModelDirMeta(dir)).rejects.toThrow(/unknown key "extra"/);
    // Valid, but not what model.json was saved with: an overwrite in progress.
    await writeFile(file, JSON.stringify({ task: { ...task, outputs: 2 } }));
    await expect(loadModelDirMeta(dir)).rejects.toThrow(/checksum mismatch/);
  });

  it('accepts a hand-written preprocessing.json beside a tfjs model that has no fedge checksum', async () => {
    const dir = await tmp();
    await saveModelDir(blob, dir);
    const modelJson = JSON.parse(await readFile(join(dir, 'model.json'), 'utf8')) as Record<string, unknown>;
    delete modelJson['fedge'];
    await writeFile(join(dir, 'model.json'), JSON.stringify(modelJson));
    await writeFile(join(dir, PREPROCESSING_JSON), JSON.stringify({ preprocessing }));
    expect(await loadModelDirMeta(join(dir, 'model.json'))).toEqual({ preprocessing });
  });
});
