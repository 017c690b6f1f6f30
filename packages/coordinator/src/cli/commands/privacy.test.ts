import { afterEach, describe, expect, it, vi } from 'vitest';
import { privacyCommand } from './privacy.js';

async function run(args: string[]): Promise<string> {
  let out = '';
  const w = vi.spyOn(process.stdout, 'write').mockImplementation((s: string | Uint8Array) => ((out += String(s)), true));
  const l = vi.spyOn(console, 'log').mockImplementation((s: unknown) => void (out += `${String(s)}\n`));
  try {
    await privacyCommand().exitOverride().parseAsync(args, { from: 'user' });
  } finally {
    w.mockRestore();
    l.mockRestore();
  }
  return out;
}

afterEach(() => vi.restoreAllMocks());

describe('fedge privacy', () => {
  it('epsilon --format json prints one object with epsilon and order', async () => {
    const out = await run(['epsilon', '--sampling-rate', '0.0025', '--noise-multiplier', '1.3', '--steps', '6000', '--delta', '1e-5', '--format', 'json']);
    const j = JSON.parse(out) as { epsilon: number; order: number };
    expect(Object.keys(j).sort()).toEqual(['epsilon', 'order']);
    expect(j.epsilon).toBeCloseTo(0.7242234026109595, 8); // TensorFlow Privacy compute_dp_sgd_privacy_test Test0
    expect(j.order).toBe(19);
  });

  it('--orders reproduces another accountant exactly (TensorFlow Privacy Test1: 1.4154988495444842 at order 13)', async () => {
    const orders = [1.25, 1.5, 1.75, 2, 2.25, 2.5, 3, 3.5, 4, 4.5, ...Array.from({ length: 59 }, (_, i) => i + 5), 128, 256, 512].join(',');
    const out = await run(['epsilon', '--sampling-rate', '0.001', '--noise-multiplier', '1', '--steps', '30000', '--delta', '1e-7', '--orders', orders, '--format', 'json']);
    expect(JSON.parse(out)).toEqual({ epsilon: expect.closeTo(1.4154988495444842, 9) as number, order: 13 });
  });

  it('noise --format json prints the smallest noise multiplier meeting the target', async () => {
    const out = await run(['noise', '--target-epsilon', '8', '--sampling-rate', '0.04', '--steps', '2000', '--delta', '1e-5', '--format', 'json']);
    const j = JSON.parse(out) as { noiseMultiplier: number };
    expect(Object.keys(j)).toEqual(['noiseMultiplier']);
    expect(j.noiseMultiplier).toBeGreaterThan(1.35);
    expect(j.noiseMultiplier).toBeLessThan(1.3562);
  });

  it('table output names epsilon, delta and the order', async () => {
    const out = await run(['epsilon', '--sampling-rate', '0.1', '--noise-multiplier', '1.1', '--steps', '100', '--delta', '1e-5']);
    expect(out).toMatch(/^epsilon \d+\.\d+ at delta 0\.00001 \(optimal RDP order [\d.]+\)/);
  });

  it.each([
    [['--sampling-rate', '0'], /--sampling-rate: sampling rate must be in \(0, 1\], got 0/],
    [['--sampling-rate', '1.01'], /--sampling-rate/],
    [['--noise-multiplier', '-1'], /--noise-multiplier: noise multiplier must be greater than 0/],
    [['--delta', '0'], /--delta: delta must be in \(0, 1\)/],
    [['--delta', '1'], /--delta/],
    [['--steps', '0'], /--steps: steps must be an integer of at least 1/],
    [['--steps', 'x'], /--steps: expected a number/],
    [['--orders', '0.5,2'], /--orders: every order must be a number greater than 1/],
  ])('rejects %j with a clear error', async (bad, re) => {
    const base: Record<string, string> = { '--sampling-rate': '0.1', '--noise-multiplier': '1', '--steps': '10', '--delta': '1e-5' };
    for (let i = 0; i < bad.length; i += 2) base[bad[i]!] = bad[i + 1]!;
    await expect(run(['epsilon', ...Object.entries(base).flat()])).rejects.toThrow(re);
  });
});
