/** `fedge run participants`: the page as a table, and the line that says what was shown and where the next page starts. */
import { describe, expect, it } from 'vitest';
import { renderParticipants, withAllParticipants } from './run-participants.js';
import type { AdminClient } from '../admin-client.js';
import type { RunView } from '../../coordinator.js';

describe('fedge run participants', () => {
  it('prints a page with its place in the whole and the --offset of the next page', () => {
    const out = renderParticipants({
      run: 'run-1', query: { round: 2, status: 'failed', limit: 2, offset: 4 }, total: 7, nextOffset: 6,
      participants: [
        { round: 2, agentId: 'a', name: 'sim-4', outcome: 'late', reason: 'round deadline passed; folded into round 3 (staleness 1)' },
        { round: 2, agentId: 'b', name: 'sim-5', outcome: 'rejected', numExamples: 600, seconds: 1.234, reason: 'non_finite: update has NaN' },
      ],
    }).split('\n');
    expect(out[0]).toMatch(/^ROUND\s+AGENT\s+OUTCOME\s+EXAMPLES\s+SECONDS\s+STALENESS\s+REASON$/);
    expect(out[1]).toMatch(/^2\s+sim-4\s+late\s+-\s+-\s+-\s+round deadline passed; folded into round 3 \(staleness 1\)$/);
    expect(out[2]).toMatch(/^2\s+sim-5\s+rejected\s+600\s+1\.2\s+-\s+non_finite: update has NaN$/);
    expect(out[3]).toBe('participants 5-6 of 7; next page: --offset 6');
  });

  it('says so when a page is empty, and has no next page on the last one', () => {
    expect(renderParticipants({ run: 'run-1', query: { limit: 100, offset: 0 }, total: 0, participants: [] })).toBe('(none)\nparticipants none of 0');
    expect(renderParticipants({ run: 'run-1', query: { limit: 100, offset: 0 }, total: 1, participants: [{ round: 1, agentId: 'a', name: 'a', outcome: 'completed' }] }).split('\n').at(-1)).toBe('participants 1-1 of 1');
  });

  it('pages in every participant of a task run\'s rounds too large for run show (fedge run export --to mlflow lineage)', async () => {
    const asked: unknown[] = [];
    const all = Array.from({ length: 2500 }, (_, i) => ({ round: 2, agentId: `id-${i}`, name: `sim-${i}`, outcome: 'completed' as const }));
    const client = {
      listParticipants: async (run: string, q: { round: number; limit: number; offset: number }) => {
        asked.push([run, q]);
        const rows = all.slice(q.offset, q.offset + q.limit);
        return { run, query: q, total: all.length, participants: rows, ...(q.offset + rows.length < all.length ? { nextOffset: q.offset + rows.length } : {}) };
      },
    } as unknown as AdminClient;
    const small = { round: 1, version: 1, participants: [{ agentId: 'a', name: 'a', outcome: 'completed' as const }] };
    const big = { round: 2, version: 2, participantsNote: '2500 participants ...' };
    const failed = { round: 3, participantsNote: '2500 participants ...' };
    const run = { id: 'run-1', data: {}, rounds: [small, big, failed] } as unknown as RunView;
    const out = await withAllParticipants(client, run);
    expect(out.rounds[0]).toBe(small);
    expect(out.rounds[1]!.participants!.map((p) => p.name)).toEqual(all.map((p) => p.name));
    expect(out.rounds[1]).not.toHaveProperty('participantsNote');
    expect(out.rounds[2]).toBe(failed); // no version: not in the lineage
    expect(asked.map((a) => (a as [string, { offset: number }])[1].offset)).toEqual([0, 1000, 2000]);
  });
});
