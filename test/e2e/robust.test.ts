/**
 * Robust aggregation end to end with real processes: 10 agents on MNIST, 3 of them sign-flip:10. FedAvg is ruined;
 * trimmed mean (beta 0.3 trims the 3 attackers at each end) and Multi-Krum (f = 3) reach 90% held-out accuracy, and
 * Krum learns despite the attackers. Krum's new model is one honest agent's, trained on its ~810 digits: it hovers at
 * 0.88-0.90 (measured: 0.880 0.899 0.894 0.896 0.899 0.901), so asserting 90% for it would be a coin toss in CI.
 */
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { fedge, killAll, lastJson } from './harness.js';

const dirs: string[] = [];
afterAll(() => {
  killAll();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

interface DemoJson {
  status: string;
  finalAccuracy: number | null;
  versions: number;
  reached: boolean | null;
  attackers?: number;
  attack?: string;
  strategy?: { name: string };
  metrics: { round: number; centralAccuracy?: number; participants?: unknown }[];
}

async function demo(extra: string[]): Promise<{ result: DemoJson; dataDir: string; seconds: number }> {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'fedge-robust-'));
  dirs.push(dataDir);
  const t0 = performance.now();
  const res = await fedge(['demo', '--agents', '10', '--attackers', '0.3', '--attack', 'sign-flip:10', ...extra, '--data-dir', dataDir, '--format', 'json']);
  expect(res.code, res.stderr).toBe(0);
  return { result: lastJson<DemoJson>(res.stdout), dataDir, seconds: (performance.now() - t0) / 1000 };
}

const curve = (r: DemoJson): string => r.metrics.map((m) => m.centralAccuracy?.toFixed(3)).join(' ');

describe('robust aggregation against 3 of 10 sign-flip:10 attackers (MNIST)', () => {
  it('fedavg fails to learn', async () => {
    // Three agents sending -10x their update make the mean about -2.3x an honest step: chance level from round 1.
    const { result, seconds } = await demo(['--rounds', '3']);
    expect(result).toMatchObject({ status: 'completed', attackers: 3, attack: 'sign-flip:10' });
    expect(result.finalAccuracy!).toBeLessThan(0.5);
    console.log(`fedavg: ${curve(result)} (${seconds.toFixed(1)} s)`);
  }, 90_000);

  it('--strategy krum:f=3 learns despite them (one honest agent\'s model per round)', async () => {
    const { result, seconds } = await demo(['--strategy', 'krum:f=3', '--rounds', '2', '--epochs', '5']);
    console.log(`krum:f=3: ${curve(result)} (${seconds.toFixed(1)} s)`);
    expect(result.status).toBe('completed');
    expect(result.strategy?.name).toBe('krum');
    expect(result.finalAccuracy!).toBeGreaterThan(0.85);
  }, 120_000);

  it.each([
    ['trimmed-mean:beta=0.3', 'trimmed-mean'],
    ['multi-krum:f=3', 'multi-krum'],
  ])('--strategy %s reaches 90%% held-out accuracy', async (spec, name) => {
    // 5 local epochs, as for Krum above; the run stops when it crosses 90% (trimmed mean does in 2 rounds).
    const { result, dataDir, seconds } = await demo(['--strategy', spec, '--rounds', '15', '--epochs', '5', '--target-accuracy', '0.9']);
    console.log(`${spec}: ${curve(result)} (${result.versions} rounds, ${seconds.toFixed(1)} s)`);
    expect(result.status).toBe('completed');
    expect(result.strategy?.name).toBe(name);
    expect(result.reached).toBe(true);
    expect(result.finalAccuracy!).toBeGreaterThanOrEqual(0.9);
    // A demo's store is not durable: every round's updates were kept in a scratch directory, removed after the run.
    const scratch = path.join(dataDir, 'tmp');
    expect(existsSync(scratch) ? readdirSync(scratch) : []).toEqual([]);
  }, 240_000);
});
