/** Simulated attackers: `fedge demo --attackers 0.5 --attack sign-flip:10` ruins plain FedAvg (it has no defence). */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { fedge, killAll, lastJson } from './harness.js';

const dirs: string[] = [];
afterAll(() => {
  killAll();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

interface DemoJson { status: string; finalAccuracy: number | null; rounds: number; attackers?: number; attack?: string }

async function demo(extra: string[]): Promise<{ result: DemoJson; dataDir: string }> {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'fedge-attack-'));
  dirs.push(dataDir);
  const res = await fedge(['demo', '--agents', '4', '--rounds', '3', ...extra, '--data-dir', dataDir, '--format', 'json']);
  expect(res.code, res.stderr).toBe(0);
  return { result: lastJson<DemoJson>(res.stdout), dataDir };
}

describe('simulated attackers', () => {
  it('fedge demo --attackers 0.5 --attack sign-flip:10 completes, and FedAvg ends far below the same demo without attackers', async () => {
    const t0 = performance.now();
    const clean = await demo([]);
    const attacked = await demo(['--attackers', '0.5', '--attack', 'sign-flip:10']);
    const seconds = (performance.now() - t0) / 1000;

    expect(clean.result.status).toBe('completed');
    expect(attacked.result.status).toBe('completed');
    expect(attacked.result.rounds).toBe(3);
    expect(attacked.result).toMatchObject({ attackers: 2, attack: 'sign-flip:10' });
    expect(clean.result.attackers).toBeUndefined();

    // Without attackers, 3 rounds of mnist-mlp reach ~94%; two of four agents sending -10 x their update drive the
    // FedAvg mean to -4 x an honest step each round: chance level (~10%).
    const cleanAcc = clean.result.finalAccuracy!, attackedAcc = attacked.result.finalAccuracy!;
    expect(cleanAcc).toBeGreaterThan(0.85);
    expect(attackedAcc).toBeLessThan(0.5);
    expect(cleanAcc - attackedAcc).toBeGreaterThan(0.35);

    // The first round(0.5 x 4) agents attack, and say so at start.
    const log = (i: number): string => readFileSync(path.join(attacked.dataDir, 'demo', `agent-${i}.log`), 'utf8');
    for (const i of [0, 1]) expect(log(i)).toContain('simulated attacker: sign-flip:10');
    for (const i of [2, 3]) expect(log(i)).not.toContain('simulated attacker');
    console.log(`clean ${cleanAcc.toFixed(4)}, attacked ${attackedAcc.toFixed(4)}, both demos ${seconds.toFixed(1)} s`);
  }, 40_000);
});
