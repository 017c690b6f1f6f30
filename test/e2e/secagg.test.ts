/**
 * Secure aggregation end to end with real processes, over gRPC and over MQTT: 8 agents of which 3 (the nearest to 30%
 * that drops every round) drop out after their masked input was accepted. Rounds complete at the threshold (5 of 8
 * unmask) and accuracy rises; with the threshold above the survivors the round fails as data and the run goes on.
 * Then int8 quantization (an 12-bit ring for 9 agents) with a ninth agent that corrupts a share box every round: its
 * neighbor's MAC check catches it, it is dropped, and the int8 run matches the 32-bit run's accuracy.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FEDGE, fedge, freePort, killAll, lastJson, startAgent, startCoordinator, startProcess, type Proc } from './harness.js';

interface SecAggStats {
  bits: number;
  quantization: string;
  survivors: number;
  droppedBeforeInput: number;
  droppedAfterInput: number;
  tampered: string[];
  tamperedExcluded: string[];
  refusedInputs: number;
  unmaskSeconds?: number;
}

interface RunJson {
  id: string;
  status: string;
  statusMessage?: string;
  initialAccuracy?: number;
  metrics: { status: string; completed: number; centralAccuracy?: number }[];
  roundsDetail: { status?: string; reason?: string; bytesReceived: number; bytesReceivedDense?: number; secagg?: SecAggStats; participants: { name: string; outcome: string; reason?: string }[] }[];
}

afterAll(() => killAll());

const N = 8;
const DROPPING = 3;

/** A run config file: secure aggregation with a short unmask stage (the dropouts never answer it). */
function configFile(extra: Record<string, unknown> = {}): string {
  const file = path.join(mkdtempSync(path.join(tmpdir(), 'fedge-secagg-e2e-')), 'run.json');
  writeFileSync(file, JSON.stringify({ secureAggregation: { unmaskSeconds: 4, ...extra } }));
  return file;
}

/** 8 agents on `url`; the first DROPPING drop out after every masked input. */
async function startFleet(url: string, tag: string): Promise<Proc[]> {
  const agents = Array.from({ length: N }, (_, i) =>
    startAgent(url, ['--name', `${tag}-${i}${i < DROPPING ? '-drop' : ''}`, '--num-partitions', String(N), '--partition-id', String(i), '--seed', '1',
      ...(i < DROPPING ? ['--secagg-dropout', '1'] : [])]),
  );
  // Eight processes loading tfjs and MNIST at once: slow on a busy 2-core machine.
  await Promise.all(agents.map((a) => a.waitFor(/joined coordinator/, 180_000)));
  return agents;
}

async function runSecagg(address: string, rounds: number, config: string, agents = N, results = agents): Promise<RunJson> {
  const res = await fedge(['run', 'start', '--coordinator', address, '--secagg', '--config', config, '--model', 'mnist-mlp', '--rounds', String(rounds),
    '--min-agents', String(agents), '--min-results', String(results), '--epochs', '1', '--lr', '0.1', '--deadline', '60', '--watch', '--format', 'json']);
  expect(res.code, res.stderr).toBe(0);
  return lastJson<RunJson>(res.stdout);
}

/** Every round completed with all 8 masked inputs in the sum, and the model learned. */
function expectLearned(run: RunJson, rounds: number): void {
  expect(run.status).toBe('completed');
  expect(run.metrics.map((m) => [m.status, m.completed]), JSON.stringify(run.roundsDetail.map((r) => r.reason))).toEqual(Array.from({ length: rounds }, () => ['completed', N]));
  const acc = run.metrics.map((m) => m.centralAccuracy!);
  expect(run.initialAccuracy!).toBeLessThan(0.3);
  expect(acc[0]!).toBeGreaterThan(run.initialAccuracy! + 0.3);
  expect(acc.at(-1)!).toBeGreaterThan(0.85);
}

function dropouts(agents: Proc[]): number {
  return agents.reduce((n, a) => n + (a.output().match(/simulated secagg dropout/g)?.length ?? 0), 0);
}

describe('secure aggregation end to end', () => {
  it('gRPC: 8 agents, 3 dropping after their masked input: rounds complete at the threshold and accuracy rises; above it the round fails as data and the run goes on', async () => {
    const coord = await startCoordinator();
    const agents = await startFleet(`grpc://${coord.address}`, 'g');
    const run = await runSecagg(coord.address, 2, configFile());
    expectLearned(run, 2);
    expect(dropouts(agents)).toBe(2 * DROPPING);
    // Survivors sent their unmask shares; the coordinator never asked a dropout twice.
    expect(agents[DROPPING]!.output()).toMatch(/secagg: unmask shares sent/);

    // Threshold 6 of 8 with 3 dropouts: the self masks cannot be removed. Both rounds fail, recorded, and the run ends
    // normally (not as a failed run), its model untouched.
    const failing = await runSecagg(coord.address, 2, configFile({ threshold: 6 }));
    expect(failing.status).toBe('completed');
    expect(failing.metrics.map((m) => m.status)).toEqual(['failed', 'failed']);
    for (const r of failing.roundsDetail) expect(r.reason).toMatch(/secure aggregation: .*threshold is 6/);
    expect(failing.statusMessage).toMatch(/completed 0 of 2 rounds/);

    // The dropouts are in the record: 8 inputs in the sum, 3 survivors silent in the unmask stage (at least: it closes
    // once every secret has its threshold of shares), no tampering; the text view has the table.
    for (const r of run.roundsDetail) expect(r.secagg).toMatchObject({ bits: 32, quantization: 'ring', survivors: N, droppedBeforeInput: 0, tampered: [], refusedInputs: 0 });
    for (const r of run.roundsDetail) expect(r.secagg!.droppedAfterInput).toBeGreaterThanOrEqual(DROPPING);

    // int8 with a ninth agent that corrupts one share box per round. The neighbor that cannot open the box reports it
    // at once (the report stage, while everyone trains; the tamperer also trains 4x slower, on partition 0 again), so
    // it is dropped before its masked input arrives, that input is refused at its header, and the sum is that of the
    // same 8 agents as the 32-bit run above.
    const t8 = Date.now();
    const tamperer = startAgent(`grpc://${coord.address}`, ['--name', 'g-8-tamper', '--num-partitions', String(N), '--partition-id', '0', '--seed', '1', '--slowdown', '4', '--secagg-tamper']);
    await tamperer.waitFor(/joined coordinator/, 180_000);
    const int8 = await runSecagg(coord.address, 2, configFile({ quantization: 'int8', threshold: 4 }), N + 1, N);
    expect(int8.status).toBe('completed');
    expect(int8.metrics.map((m) => [m.status, m.completed]), JSON.stringify(int8.roundsDetail.map((r) => r.reason))).toEqual([['completed', N], ['completed', N]]);
    for (const r of int8.roundsDetail) {
      // 9 agents x 255 levels: a 12-bit ring, packed at 1.5 bytes a value (0.375x float32).
      expect(r.secagg).toMatchObject({ bits: 12, quantization: 'int8', survivors: N, droppedBeforeInput: 1, tampered: ['g-8-tamper'], tamperedExcluded: ['g-8-tamper'], refusedInputs: 1 });
      expect(r.secagg!.unmaskSeconds).toBeGreaterThan(0);
      expect(r.participants.find((p) => p.name === 'g-8-tamper')).toMatchObject({ outcome: 'rejected', reason: expect.stringMatching(/could not open its share box/) });
      expect(r.bytesReceived / r.bytesReceivedDense!).toBeGreaterThan(0.37);
      expect(r.bytesReceived / r.bytesReceivedDense!).toBeLessThan(0.38);
    }
    expect(tamperer.output()).toMatch(/simulated secagg tamper: one share ciphertext corrupted/);
    expect(agents.some((a) => /share boxes that did not open/.test(a.output()))).toBe(true);
    // Accuracy parity with the 32-bit ring (itself the plaintext weighted mean to ~1e-8): the same 8 agents' data.
    expect(int8.initialAccuracy).toBeCloseTo(run.initialAccuracy!, 6);
    expect(Math.abs(int8.metrics.at(-1)!.centralAccuracy! - run.metrics.at(-1)!.centralAccuracy!)).toBeLessThan(0.02);
    // The figures for the README (accuracy vs the 32-bit ring, bytes vs float32, this part's wall time).
    console.log(`secagg e2e int8: central accuracy ${int8.metrics.map((m) => m.centralAccuracy).join(' ')} vs 32-bit ${run.metrics.map((m) => m.centralAccuracy).join(' ')}; bytes/float32 ${int8.roundsDetail.map((r) => (r.bytesReceived / r.bytesReceivedDense!).toFixed(4)).join(' ')}; unmask ${int8.roundsDetail.map((r) => r.secagg!.unmaskSeconds).join(' ')} s; ${((Date.now() - t8) / 1000).toFixed(1)} s with the tamperer's start`);
    const shown = await fedge(['run', 'show', int8.id, '--coordinator', coord.address]);
    expect(shown.stdout).toMatch(/secure aggregation/);
    expect(shown.stdout).toMatch(/12 bits \(int8\)[^\n]*g-8-tamper \(dropped\)/);
    tamperer.child.kill('SIGTERM');
    coord.child.kill('SIGTERM');
    expect(await coord.exited).toBe(0);
    for (const a of agents) a.child.kill('SIGTERM');
  }, 300_000);

  it('a coordinator killed mid-round restarts that round from the start with new keys, and the run completes', async () => {
    const dataDir = mkdtempSync(path.join(tmpdir(), 'fedge-secagg-restart-'));
    const address = `127.0.0.1:${await freePort()}`;
    const serve = (): Proc => startProcess(FEDGE, ['serve', '--listen', address, '--data-dir', dataDir, '--no-mqtt']);
    let coord = serve();
    await coord.waitFor(/coordinator ready on/);
    // Slower training (the math is unchanged) so the kill lands while round 2's agents train, keys already exchanged.
    const agents = Array.from({ length: 4 }, (_, i) =>
      startAgent(address, ['--name', `r-${i}`, '--num-partitions', '4', '--partition-id', String(i), '--seed', '3', '--slowdown', '3']));
    await Promise.all(agents.map((a) => a.waitFor(/joined coordinator/, 180_000)));
    const started = await fedge(['run', 'start', '--coordinator', address, '--secagg', '--config', configFile(), '--model', 'mnist-mlp', '--rounds', '3',
      '--min-agents', '4', '--epochs', '1', '--lr', '0.1', '--format', 'json']);
    expect(started.code, started.stderr).toBe(0);
    const id = lastJson<{ id: string }>(started.stdout).id;
    await coord.waitFor(/"round":2,[^\n]*"msg":"round started"/, 180_000);
    await Promise.all(agents.map((a) => a.waitFor(/"round":2,[^\n]*"msg":"task received"/, 60_000)));
    await new Promise((r) => setTimeout(r, 500));
    coord.child.kill('SIGKILL');
    await coord.exited;
    coord = serve();
    await coord.waitFor(/coordinator ready on/);
    let run: RunJson & { round?: number } = { id, status: 'running', metrics: [], roundsDetail: [] };
    for (let i = 0; i < 900 && !['completed', 'failed'].includes(run.status); i++) {
      await new Promise((r) => setTimeout(r, 200));
      const r = await fedge(['run', 'show', id, '--coordinator', address, '--format', 'json']);
      if (r.code === 0) run = lastJson(r.stdout);
    }
    expect(run.status).toBe('completed');
    // Round 2 is recorded once, completed with all four masked inputs: the interrupted attempt left nothing behind.
    expect(run.metrics.map((m) => [m.status, m.completed]), JSON.stringify(run.roundsDetail.map((r) => r.reason))).toEqual([['completed', 4], ['completed', 4], ['completed', 4]]);
    // Each agent got round 2 twice: a new task, so a new SecAggClient with fresh keys and seeds (no mask reused).
    for (const a of agents) expect(a.output().match(/"round":2,[^\n]*"kind":"train"[^\n]*"msg":"task received"/g)?.length ?? 0).toBeGreaterThanOrEqual(2);
    coord.child.kill('SIGTERM');
    await coord.exited;
    for (const a of agents) a.child.kill('SIGTERM');
  }, 400_000);

  it('MQTT: the same fleet over the embedded broker completes its rounds with 3 dropouts', async () => {
    const coord = await startCoordinator(['--mqtt-listen', '127.0.0.1:0']);
    const agents = await startFleet(coord.mqttUrl!, 'm');
    const run = await runSecagg(coord.address, 2, configFile());
    expectLearned(run, 2);
    expect(dropouts(agents)).toBe(2 * DROPPING);
    coord.child.kill('SIGTERM');
    expect(await coord.exited).toBe(0);
    for (const a of agents) a.child.kill('SIGTERM');
  }, 300_000);
});
