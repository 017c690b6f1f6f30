/** Stragglers never stall a run: 6 real agent processes, 2 of them 10x slower, in sync (deadline) and async mode. */
import { afterAll, describe, expect, it } from 'vitest';
import { fedge, killAll, lastJson, startAgent, startCoordinator } from './harness.js';

afterAll(() => killAll());

interface Participant { name: string; outcome: string; reason?: string; staleness?: number; weight?: number; speedFactor?: number; numExamples?: number; baseVersion?: number }
interface RunJson {
  status: string;
  metrics: { round: number; completed: number; seconds: number; status: string }[];
  roundsDetail: { round: number; version?: number; endedAt: string; participants: Participant[] }[];
}

describe('stragglers', () => {
  it('sync rounds close at the deadline without them; async keeps producing versions and folds their stale updates', async () => {
    const coord = await startCoordinator();
    const agents = [0, 1, 2, 3, 4, 5].map((i) =>
      startAgent(coord.address, ['--name', i >= 4 ? `slow-${i}` : `fast-${i}`, '--num-partitions', '6', '--partition-id', String(i), '--seed', '5',
        ...(i >= 4 ? ['--slowdown', '10'] : [])]),
    );
    await Promise.all(agents.map((a) => a.waitFor(/joined coordinator/)));

    // Sync: 4 results needed and a 10 s deadline. 5 epochs take a fast agent ~2.5 s and a slow one ~25 s here
    // (wide margins both ways for a loaded machine), so the slow agents are invited, come late, and are cancelled.
    const deadline = 10;
    const sync = await fedge(['run', 'start', '--coordinator', coord.address, '--model', 'mnist-mlp', '--rounds', '3', '--min-agents', '4',
      '--epochs', '5', '--deadline', String(deadline), '--watch', '--format', 'json']);
    expect(sync.code, sync.stderr).toBe(0);
    const s = lastJson<RunJson>(sync.stdout);
    expect(s.status).toBe('completed');
    for (const [i, r] of s.roundsDetail.entries()) {
      expect(s.metrics[i]!.status).toBe('completed');
      expect(s.metrics[i]!.seconds).toBeLessThan(deadline + 3);
      for (const p of r.participants.filter((x) => x.name.startsWith('fast'))) expect(p.outcome).toBe('completed');
      for (const p of r.participants.filter((x) => x.name.startsWith('slow'))) expect(p).toMatchObject({ outcome: 'late' });
    }

    // Async: K = 3 per version; fast agents keep going while the slow ones train on old versions.
    const asyncRun = await fedge(['run', 'start', '--coordinator', coord.address, '--model', 'mnist-mlp', '--mode', 'async', '--rounds', '25',
      '--buffer-size', '3', '--max-staleness', '100', '--staleness', 'polynomial:0.5', '--epochs', '1', '--min-agents', '1', '--watch', '--format', 'json']);
    expect(asyncRun.code, asyncRun.stderr).toBe(0);
    const a = lastJson<RunJson>(asyncRun.stdout);
    expect(a.status).toBe('completed');
    expect(a.roundsDetail).toHaveLength(25);
    for (const r of a.roundsDetail) expect(r.participants.filter((p) => p.outcome === 'completed')).toHaveLength(3);
    const firstSlow = a.roundsDetail.findIndex((r) => r.participants.some((p) => p.name.startsWith('slow') && p.outcome === 'completed'));
    expect(firstSlow, 'a slow agent update was folded').toBeGreaterThanOrEqual(0);
    expect(firstSlow, 'versions were produced while the stragglers trained').toBeGreaterThanOrEqual(3);
    const slowUpdates = a.roundsDetail.flatMap((r) => r.participants.filter((p) => p.name.startsWith('slow') && p.outcome === 'completed'));
    // Weight: examples x the staleness discount (1 + tau)^-0.5 x async.speedWeighting's factor (its task time over
    // the median agent's, at least 1). A task's time includes download and worker overheads, which on a loaded
    // machine can outweigh one slowed epoch, so not every slow update need carry a factor; at least one must.
    for (const p of slowUpdates) {
      const speed = p.speedFactor ?? 1;
      expect(p.staleness!).toBeGreaterThanOrEqual(1);
      expect(speed).toBeGreaterThanOrEqual(1);
      expect(p.weight!).toBeCloseTo(p.numExamples! * (1 + p.staleness!) ** -0.5 * speed, 6);
    }
    expect(Math.max(...slowUpdates.map((p) => p.speedFactor ?? 1)), 'a 10x slower agent update is weighted up').toBeGreaterThan(1);
  }, 300_000);
});
