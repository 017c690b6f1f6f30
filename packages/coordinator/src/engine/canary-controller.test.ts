import { afterEach, describe, expect, it, vi } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { RunRecord } from '../store/store.js';
import { SqliteStore } from '../store/sqlite-store.js';
import { planCanaryEnd, planPromotion } from './promotion.js';
import { CanaryController, REARM_GRACE_MS, healthReport } from './canary-controller.js';

const run = (): RunRecord =>
  ({
    id: 'run-c',
    config: { seed: 7 } as RunRecord['config'],
    status: 'completed',
    createdAt: '2026-01-01T00:00:00.000Z',
    round: 3,
    modelVersion: 3,
    rounds: [],
    versions: [0, 1, 2, 3].map((v) => ({ version: v, sha256: `sha${v}`, round: v, createdAt: '', federatedAccuracy: 0.8 })),
  }) as RunRecord;

const agents = [{ id: 'id-a', name: 'a' }, { id: 'id-b', name: 'b' }];
const healthy = { version: 3, requests: 50, errors: 0, p50Ms: 2, p99Ms: 5, predictionHistogram: [25, 25] };
const stable = { version: 2, requests: 200, errors: 0, p50Ms: 2, p99Ms: 5, predictionHistogram: [100, 100] };

afterEach(() => vi.useRealTimers());

describe('self-healing canary plan', () => {
  it('sends the candidate to every online agent as a request split beside the stable version, with a deadline', () => {
    const r = run();
    r.promotion = planPromotion(r, agents, { version: 2 }).state;
    const plan = planPromotion(r, agents, { version: 3, canary: 0.2, auto: { windowMs: 60_000, maxErrorRate: 0.1 }, at: '2026-01-01T00:00:00.000Z' });
    expect(plan.split).toEqual({ stable: 2, fraction: 0.2 });
    expect(plan.announceTo).toEqual(['id-a', 'id-b']);
    expect(plan.state.version).toBe(2);
    expect(plan.state.canary?.auto).toMatchObject({ stable: 2, windowMs: 60_000, deadline: '2026-01-01T00:01:00.000Z', thresholds: { maxErrorRate: 0.1, maxDrift: 0.25 } });
    r.promotion = plan.state;
    expect(() => planPromotion(r, agents, { version: 1, canary: 0.2, auto: { windowMs: 60_000 } })).toThrow(/already has a canary of version 3/);
    const back = planCanaryEnd(r, 'rolled-back', 'error rate 100% > max 10%');
    expect(back.version).toBe(2);
    expect(back.state.canary).toBeUndefined();
    expect(back.state.lastCanary).toMatchObject({ version: 3, outcome: 'rolled-back', reason: 'error rate 100% > max 10%' });
    expect(back.state.history.at(-1)).toMatchObject({ action: 'rollback', version: 2, from: 3, auto: true, reason: 'error rate 100% > max 10%' });
    const done = planCanaryEnd(r, 'completed', 'healthy');
    expect(done.state).toMatchObject({ version: 3, previous: 2, lastCanary: { outcome: 'completed' } });
  });

  it('needs a fraction and another stable version', () => {
    const r = run();
    expect(() => planPromotion(r, agents, { version: 3, auto: { windowMs: 1000 } })).toThrow(/--auto needs --canary F/);
    // First promotion: agents follow the latest (3), so 3 cannot be its own canary.
    expect(() => planPromotion(r, agents, { version: 3, canary: 0.5, auto: { windowMs: 1000 } })).toThrow(/already what serving agents/);
    expect(planPromotion(r, agents, { version: 2, canary: 0.5, auto: { windowMs: 1000 } }).split).toEqual({ stable: 3, fraction: 0.5 });
  });
});

describe('CanaryController', () => {
  it('rolls back at once on a failing report, naming the figure', async () => {
    const r = run();
    r.promotion = planPromotion(r, agents, { version: 2 }).state;
    r.promotion = planPromotion(r, agents, { version: 3, canary: 0.2, auto: { windowMs: 60_000, minRequests: 10 } }).state;
    const end = vi.fn(async () => {});
    const c = new CanaryController({ end });
    c.watch(r);
    c.onHealth({ id: 'id-a', name: 'a' }, healthReport({ runId: 'run-c', versions: [stable, { ...healthy, nan: 20, errors: 0 }] })!);
    await vi.waitFor(() => expect(end).toHaveBeenCalledTimes(1));
    expect(end.mock.calls[0]).toEqual(['run-c', 'rolled-back', expect.stringMatching(/^error rate 40\.0% > max 5\.0%/)]);
    c.close();
  });

  it('survives a restart: the canary state round-trips through the store and the timer is re-armed from its deadline', async () => {
    vi.useFakeTimers({ now: Date.parse('2026-01-01T00:00:00.000Z') });
    const dir = mkdtempSync(path.join(tmpdir(), 'fedge-canary-'));
    try {
      let store = SqliteStore.open(dir);
      const r = run();
      r.promotion = planPromotion(r, agents, { version: 2 }).state;
      r.promotion = planPromotion(r, agents, { version: 3, canary: 0.2, auto: { windowMs: 60_000 } }).state;
      await store.createRun(r);
      store.close();
      // 40 s later a new process opens the store: 20 s of the window are left.
      vi.setSystemTime(Date.parse('2026-01-01T00:00:40.000Z'));
      store = SqliteStore.open(dir);
      const back = (await store.getRun('run-c'))!;
      expect(back.promotion?.canary?.auto?.deadline).toBe('2026-01-01T00:01:00.000Z');
      const end = vi.fn(async () => {});
      const c = new CanaryController({ end });
      c.watch(back, true);
      c.onHealth({ id: 'id-a', name: 'a' }, healthReport({ runId: 'run-c', versions: [stable, healthy] })!);
      await vi.advanceTimersByTimeAsync(19_000);
      expect(end).not.toHaveBeenCalled();
      await vi.advanceTimersByTimeAsync(1_000);
      expect(end).toHaveBeenCalledWith('run-c', 'completed', expect.stringMatching(/^healthy for the 60 s window: 50 candidate \/ 200 stable requests on 1 agent\(s\), error rate 0\.0%/));
      // A window that ended while no coordinator ran is judged after a grace for agents to report.
      const late = vi.fn(async () => {});
      const c2 = new CanaryController({ end: late });
      vi.setSystemTime(Date.parse('2026-01-01T00:05:00.000Z'));
      c2.watch(back, true);
      await vi.advanceTimersByTimeAsync(REARM_GRACE_MS - 1);
      expect(late).not.toHaveBeenCalled();
      await vi.advanceTimersByTimeAsync(1);
      expect(late).toHaveBeenCalledWith('run-c', 'completed', expect.stringMatching(/little traffic/));
      store.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
