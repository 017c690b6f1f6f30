import { afterEach, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { backendInfo, initBackend } from './backend.js';

afterEach(() => void delete process.env['FEDGE_BACKEND']);

describe('initBackend', () => {
  it('auto falls back past the missing tfjs-node to wasm with SIMD, and is idempotent', async () => {
    const info = await initBackend();
    // tfjs-node is an optional dependency that is not installed in CI; if it ever is, native must win.
    let hasNode = true;
    try {
      await import('@tensorflow/tfjs-node' as string);
    } catch {
      hasNode = false;
    }
    if (hasNode) return expect(info.name).toMatch(/^tensorflow/);
    expect(info).toMatchObject({ name: 'wasm', simd: true });
    // Says why native was passed over and how to get it.
    expect(info.note).toMatch(/native backend not used \(@tensorflow\/tfjs-node (is not installed|is installed but does not load)/);
    expect(info.note).toMatch(/scripts\/install-native-backend\.sh/);
    expect(tf.getBackend()).toBe('wasm');
    expect(await initBackend('auto')).toBe(info);
    expect(backendInfo()).toBe(info);
  });

  it('honours FEDGE_BACKEND, explicit arguments and rejects unknown names', async () => {
    process.env['FEDGE_BACKEND'] = 'cpu';
    expect((await initBackend()).name).toBe('cpu');
    expect(tf.getBackend()).toBe('cpu');
    expect((await initBackend('wasm')).name).toBe('wasm');
    process.env['FEDGE_BACKEND'] = 'gpu-please';
    await expect(initBackend()).rejects.toMatchObject({ code: 'E_BACKEND' });
    delete process.env['FEDGE_BACKEND'];
    // Where tfjs-node loads, an explicit `tensorflow` gets it; elsewhere it is an error saying why and how to install
    // it. (Asking `auto` first proved nothing: after an explicit wasm, auto keeps wasm.)
    const r = await initBackend('tensorflow').then((i) => i.name, (e: Error & { code?: string }) => `${e.code}: ${e.message}`);
    if (r !== 'tensorflow') expect(r).toMatch(/^E_BACKEND: the native TensorFlow backend was asked for .*@tensorflow\/tfjs-node.*scripts\/install-native-backend\.sh/);
    else expect(tf.getBackend()).toBe('tensorflow');
  });
});
