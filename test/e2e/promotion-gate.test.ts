/**
 * End to end: the run config's promotion gate. A run whose best version misses promotion.minMetric raises the alert
 * (fedge run show, --format json, fedge_promotion_gate_failed{run} 1, the coordinator's log); a run that passes has
 * its best version promoted (through a self-healing canary unless serving agents already have it) and served; a run
 * whose agents were promoted to an early version mid-run has its best version canaried beside that one, then promoted.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fedge, freePort, killAll, lastJson, startAgent, startCoordinator } from './harness.js';

afterAll(() => killAll());

interface Gate { passed: boolean; version?: number; metric: string; value?: number; min: number; message: string }
interface Shown { id: string; status: string; promotionGate?: Gate; promotion?: { version?: number; lastCanary?: { outcome: string; reason: string } } }

describe('promotion gate in the run config', () => {
  it('alerts on a run below minMetric and promotes the best version of a run above it', async () => {
    const metricsPort = await freePort();
    const coord = await startCoordinator(['--metrics', `127.0.0.1:${metricsPort}`]);
    const ports = await Promise.all([0, 1].map(() => freePort()));
    const agents = [0, 1].map((i) => startAgent(coord.address, ['--name', `g-${i}`, '--num-partitions', '2', '--partition-id', String(i), '--seed', '3', '--serve', `127.0.0.1:${ports[i]}`, '--serve-name', 'mnist']));
    await Promise.all(agents.map((a) => a.waitFor(/inference server listening/)));
    const c = ['--coordinator', coord.address, '--format', 'json'];
    const dir = mkdtempSync(path.join(tmpdir(), 'fedge-gate-'));
    const start = async (promotion: Record<string, unknown>): Promise<Shown> => {
      const file = path.join(dir, `run-${String(promotion.minMetric)}.json`);
      writeFileSync(file, JSON.stringify({ model: 'mnist-mlp', rounds: 2, epochs: 1, learningRate: 0.1, promotion }));
      const r = await fedge(['run', 'start', '--config', file, '--min-agents', '2', '--watch', ...c]);
      expect(r.code, r.stderr).toBe(0);
      const run = lastJson<Shown>(r.stdout);
      expect(run.status).toBe('completed');
      // The gate runs as the run ends: its record follows within moments.
      const t0 = Date.now();
      for (;;) {
        const s = lastJson<Shown>((await fedge(['run', 'show', run.id, ...c])).stdout);
        if (s.promotionGate) return s;
        if (Date.now() - t0 > 20_000) throw new Error(`no promotion gate recorded for ${run.id}`);
        await new Promise((res) => setTimeout(res, 300));
      }
    };

    const failed = await start({ auto: true, minMetric: 0.999 });
    const g = failed.promotionGate!;
    expect(g).toMatchObject({ passed: false, metric: 'accuracy', min: 0.999 });
    expect(g.value).toBeGreaterThan(0.5);
    expect(g.message).toBe(`promotion gate failed: the best version (${g.version}) has accuracy ${Number(g.value!.toFixed(4))}, below promotion.minMetric 0.999`);
    expect(failed.promotion).toBeUndefined();
    const text = await fedge(['run', 'show', failed.id, '--coordinator', coord.address]);
    expect(text.stdout).toContain(`promotion: ALERT ${g.message}`);
    expect(coord.output()).toContain(g.message);

    const passed = await start({ auto: true, minMetric: 0.5, canary: 0.5, window: '3s' });
    const p = passed.promotionGate!;
    expect(p).toMatchObject({ passed: true, metric: 'accuracy', min: 0.5 });
    expect(p.message).toMatch(new RegExp(`^version ${p.version} passed the promotion gate: accuracy [0-9.]+ >= 0.5; (self-healing canary: 50% of requests for 3s|promoted without a canary)`));
    // Promoted (after its 3 s canary, if it had one) and served by both agents.
    const t0 = Date.now();
    let served: (string | null)[] = [];
    for (;;) {
      const s = lastJson<Shown>((await fedge(['run', 'show', passed.id, ...c])).stdout);
      served = await Promise.all(ports.map(async (port) => (await fetch(`http://127.0.0.1:${port}/v2/models/mnist`).then((r) => r.json() as Promise<{ version?: string; parameters?: { run?: string } }>))).map((x) => x.then((j) => (j.parameters?.run === passed.id ? j.version ?? null : null))));
      if (s.promotion?.version === p.version && !('canary' in (s.promotion ?? {})) && served.every((v) => v === String(p.version))) break;
      if (Date.now() - t0 > 30_000) throw new Error(`version ${p.version} not promoted and served: ${JSON.stringify({ promotion: s.promotion, served })}`);
      await new Promise((res) => setTimeout(res, 300));
    }
    // A run whose agents were promoted to an early version while it trained: its best version goes out through a
    // self-healing canary beside that one, then everyone serves it.
    const file = path.join(dir, 'run-canary.json');
    // 8 rounds: the early promote below must land while the run still trains (with 4, a fresh-clone CI run had
    // reached version 4 before it, and the evaluation gate refused version 1 as worse).
    writeFileSync(file, JSON.stringify({ model: 'mnist-mlp', rounds: 8, epochs: 1, learningRate: 0.1, promotion: { auto: true, minMetric: 0.5, canary: 0.5, window: '3s' } }));
    const st = await fedge(['run', 'start', '--config', file, '--min-agents', '2', ...c]);
    expect(st.code, st.stderr).toBe(0);
    const third = lastJson<Shown>(st.stdout).id;
    for (const t1 = Date.now(); ; ) {
      const s = lastJson<{ modelVersion: number; status: string }>((await fedge(['run', 'show', third, ...c])).stdout);
      if (s.modelVersion >= 1) break;
      if (Date.now() - t1 > 60_000) throw new Error('no version 1');
      await new Promise((res) => setTimeout(res, 200));
    }
    // --force: version 1 is promoted on purpose although later versions may already evaluate better.
    const early = await fedge(['model', 'promote', '1', '--run', third, '--force', ...c]);
    expect(early.code, early.stderr).toBe(0);
    let viaCanary: Shown | undefined;
    for (const t1 = Date.now(); ; ) {
      const s = lastJson<Shown>((await fedge(['run', 'show', third, ...c])).stdout);
      if (s.promotionGate && s.promotion?.lastCanary) {
        viaCanary = s;
        break;
      }
      if (Date.now() - t1 > 90_000) throw new Error(`no canary from the gate: ${JSON.stringify(s.promotionGate)}`);
      await new Promise((res) => setTimeout(res, 300));
    }
    const vg = viaCanary.promotionGate!;
    expect(vg.passed).toBe(true);
    expect(vg.version).toBeGreaterThan(1);
    expect(vg.message).toMatch(/; self-healing canary: 50% of requests for 3s$/);
    expect(viaCanary.promotion).toMatchObject({ version: vg.version, lastCanary: { outcome: 'completed' } });

    console.log(JSON.stringify({ failed: g.message, passed: p.message, viaCanary: vg.message, secondsToServed: (Date.now() - t0) / 1000 }));
    const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    expect(metrics).toContain(`fedge_promotion_gate_failed{run="${failed.id}"} 1`);
    expect(metrics).toContain(`fedge_promotion_gate_failed{run="${passed.id}"} 0`);
  }, 120_000);
});
