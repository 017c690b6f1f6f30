/** Every kind of bad update is rejected with a reason, charged to its agent, and the round still completes. */
import { afterAll, describe, expect, it } from 'vitest';
import { fedge, killAll, lastJson, startAgent, startCoordinator } from './harness.js';
import { startRogue, type Fault, type Rogue } from './rogue.js';

afterAll(() => killAll());

const EXPECTED: Partial<Record<Fault, { reply: RegExp; recorded: RegExp }>> = {
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

/** Faults of compressed runs, each in the run whose codec it abuses. */
const COMPRESSED: Record<'int8' | 'topk:0.1', Partial<Record<Fault, RegExp>>> = {
  int8: { 'int8-nan-scale': /^non_finite: int8-delta: block 2 has scale NaN/, uncompressed: /^bad_encoding: encoding: this run's compression.codec is int8/ },
  'topk:0.1': {
    'topk-bad-index': /^bad_index: topk-delta: record 3 has index/,
    'topk-inf': /^non_finite: topk-delta: value at index \d+ is Infinity/,
    'topk-count': /^size_mismatch: topk-delta: count/,
    uncompressed: /^bad_encoding/,
  },
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
        expect(p.reason, r.name).toMatch(EXPECTED[r.fault]!.recorded);
      }
      for (const name of ['good-0', 'good-1']) expect(round.participants.find((x) => x.name === name)!.outcome).toBe('completed');
    }
    for (const r of rogues) {
      expect(r.replies.length, r.name).toBeGreaterThanOrEqual(2);
      expect(r.replies[0]!.accepted).toBe(false);
      expect(r.replies[0]!.reason, `${r.name}: ${r.replies[0]!.message}`).toMatch(EXPECTED[r.fault]!.reply);
      expect(r.replies[0]!.message.length).toBeGreaterThan(5);
      r.stop();
    }
    // The coordinator is still up and answering.
    const list = await fedge(['run', 'list', '--coordinator', coord.address, '--format', 'json']);
    expect(list.code).toBe(0);
    expect(coord.child.exitCode).toBeNull();
  }, 240_000);

  for (const [codec, faults] of Object.entries(COMPRESSED)) {
    it(`--compression ${codec}: real agents' compressed updates train the model; malformed ones are rejected`, async () => {
      const coord = await startCoordinator();
      const real = [0, 1].map((i) =>
        startAgent(coord.address, ['--name', `good-${i}`, '--num-partitions', '2', '--partition-id', String(i), '--seed', '3']),
      );
      await Promise.all(real.map((a) => a.waitFor(/joined coordinator/)));
      const rogues = await Promise.all(Object.keys(faults).map((f) => startRogue(coord.address, `rogue-${f}`, f as Fault)));
      const res = await fedge(['run', 'start', '--coordinator', coord.address, '--model', 'mnist-mlp', '--rounds', '3', '--compression', codec,
        '--min-agents', String(2 + rogues.length), '--min-results', '2', '--deadline', '120', '--lr', '0.1', '--watch', '--format', 'json']);
      expect(res.code, res.stderr).toBe(0);
      const run = lastJson<{
        status: string;
        metrics: { completed: number; bytesReceived: number; centralAccuracy?: number }[];
        roundsDetail: { participants: { name: string; outcome: string; reason?: string }[] }[];
      }>(res.stdout);
      expect(run.status).toBe('completed');
      // mnist-mlp has 199,210 params: int8 sends 199,210 + 4 x 195 bytes, top-k 10% sends 4 + 8 x 19,921.
      const perUpdate = codec === 'int8' ? 199_210 + 4 * 195 : 4 + 8 * 19_921;
      for (const m of run.metrics) {
        expect(m.completed).toBe(2);
        expect(m.bytesReceived).toBe(2 * perUpdate);
      }
      expect(run.metrics.at(-1)!.centralAccuracy!).toBeGreaterThan(0.85);
      expect(run.metrics.at(-1)!.centralAccuracy!).toBeGreaterThan(run.metrics[0]!.centralAccuracy!);
      for (const round of run.roundsDetail)
        for (const r of rogues) {
          const p = round.participants.find((x) => x.name === r.name)!;
          expect(p.outcome, r.name).toBe('rejected');
          expect(p.reason, r.name).toMatch(faults[r.fault]!);
        }
      for (const r of rogues) r.stop();
      expect(coord.child.exitCode).toBeNull();
    }, 240_000);
  }
});
