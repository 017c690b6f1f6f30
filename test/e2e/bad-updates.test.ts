/** Every kind of bad update is rejected with a reason, charged to its agent, and the round still completes. */
import { afterAll, describe, expect, it } from 'vitest';
import { fedge, killAll, lastJson, startAgent, startCoordinator } from './harness.js';
import { startRogue, type Fault, type Rogue } from './rogue.js';

afterAll(() => killAll());

const EXPECTED: Record<Fault, { reply: RegExp; recorded: RegExp }> = {
  nan: { reply: /^non_finite$/, recorded: /^non_finite/ },
  inf: { reply: /^non_finite$/, recorded: /^non_finite/ },
  shape: { reply: /^wrong_shape$/, recorded: /^wrong_shape: .*shape/ },
  dtype: { reply: /^malformed$/, recorded: /^malformed: .*dtype/ },
  version: { reply: /^wrong_model_version$/, recorded: /^wrong_model_version/ },
  size: { reply: /^size_mismatch$/, recorded: /^size_mismatch/ },
  oversized: { reply: /^oversized$/, recorded: /^oversized/ },
  truncated: { reply: /^truncated$/, recorded: /^truncated/ },
  'bad-offset': { reply: /^bad_offset$/, recorded: /^bad_offset/ },
  'wrong-run': { reply: /^unknown_run$/, recorded: /^non_finite/ },
  'stale-round': { reply: /^stale_round$/, recorded: /^non_finite/ },
  'unknown-agent': { reply: /^unknown_agent$/, recorded: /^non_finite/ },
};

describe('bad updates', () => {
  it('rejects each kind, records it against the agent, and completes every round', async () => {
    const coord = await startCoordinator();
    const real = [0, 1].map((i) =>
      startAgent(coord.address, ['--name', `good-${i}`, '--num-partitions', '2', '--partition-id', String(i), '--seed', '3']),
    );
    await Promise.all(real.map((a) => a.waitFor(/joined coordinator/)));
    const faults = Object.keys(EXPECTED) as Fault[];
    const rogues: Rogue[] = await Promise.all(faults.map((f) => startRogue(coord.address, `rogue-${f}`, f)));

    const res = await fedge(['run', 'start', '--coordinator', coord.address, '--model', 'mnist-mlp', '--rounds', '2',
      '--min-agents', String(2 + faults.length), '--min-results', '2', '--deadline', '120', '--watch', '--format', 'json']);
    expect(res.code, res.stderr).toBe(0);
    const run = lastJson<{
      status: string;
      metrics: { completed: number; seconds: number; centralAccuracy?: number }[];
      roundsDetail: { participants: { name: string; outcome: string; reason?: string }[] }[];
    }>(res.stdout);
    expect(run.status).toBe('completed');
    for (const [i, m] of run.metrics.entries()) {
      expect(m.completed, `round ${i + 1}`).toBe(2);
      expect(m.seconds).toBeLessThan(60); // closed on results, not on the deadline
      expect(m.centralAccuracy).toBeGreaterThan(0.5); // nothing poisoned the model
    }
    for (const round of run.roundsDetail) {
      for (const r of rogues) {
        const p = round.participants.find((x) => x.name === r.name)!;
        expect(p.outcome, r.name).toBe('rejected');
        expect(p.reason, r.name).toMatch(EXPECTED[r.fault].recorded);
      }
      for (const name of ['good-0', 'good-1']) expect(round.participants.find((x) => x.name === name)!.outcome).toBe('completed');
    }
    for (const r of rogues) {
      expect(r.replies.length, r.name).toBeGreaterThanOrEqual(2);
      expect(r.replies[0]!.accepted).toBe(false);
      expect(r.replies[0]!.reason, `${r.name}: ${r.replies[0]!.message}`).toMatch(EXPECTED[r.fault].reply);
      expect(r.replies[0]!.message.length).toBeGreaterThan(5);
      r.stop();
    }
    // The coordinator is still up and answering.
    const list = await fedge(['run', 'list', '--coordinator', coord.address, '--format', 'json']);
    expect(list.code).toBe(0);
    expect(coord.child.exitCode).toBeNull();
  }, 240_000);
});
