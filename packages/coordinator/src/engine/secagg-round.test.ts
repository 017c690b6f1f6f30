import { describe, expect, it } from 'vitest';
import { SecAggClient, secaggParams, secaggToJson, type SecAggReplyMsg, type SecAggRequestMsg, type SecAggStage } from '@fedge/proto';
import { moduleLogger } from '../log.js';
import { SecAggRound } from './secagg-round.js';

const M = 64;
const log = moduleLogger('test');

function setup(n: number, opts: { advertiseMs?: number; shareMs?: number; unmaskSeconds?: number; threshold?: number } = {}) {
  const ids = Array.from({ length: n }, (_, i) => `agent-${i}`);
  const params = secaggParams(n, { clipRange: 1, maxWeight: 1000, ...(opts.threshold !== undefined ? { threshold: opts.threshold, neighbors: n - 1 } : {}) });
  const now = Date.now();
  const round = new SecAggRound(params, M, new Set(ids), {
    advertiseBy: now + (opts.advertiseMs ?? 5000),
    shareBy: now + (opts.advertiseMs ?? 5000) + (opts.shareMs ?? 5000),
    maskedInputBy: now + 60_000,
    unmaskSeconds: opts.unmaskSeconds ?? 5,
  }, log);
  const clients = new Map(ids.map((id) => [id, new SecAggClient(id, params)]));
  const req = (id: string, stage: SecAggStage, payload: unknown): SecAggRequestMsg => ({ agentId: id, sessionToken: 's', runId: 'r', taskId: `t-${id}`, round: 1, stage, payloadJson: payload === undefined ? '' : secaggToJson(payload) });
  return { ids, params, round, clients, req };
}

const parse = (r: SecAggReplyMsg): unknown => {
  expect(r, r.message).toMatchObject({ accepted: true });
  return JSON.parse(r.payloadJson);
};

describe('SecAggRound (coordinator stage driver)', () => {
  it('closes each stage as soon as every agent answered, sums masked inputs and unmasks the weighted mean', async () => {
    const { ids, round, clients, req } = setup(4);
    const t0 = Date.now();
    const adv = await Promise.all(ids.map((id) => round.handle(req(id, 'advertise', clients.get(id)!.advertise()))));
    const routed = await Promise.all(ids.map((id, i) => round.handle(req(id, 'share', clients.get(id)!.shareKeys(parse(adv[i]!) as never)))));
    expect(Date.now() - t0).toBeLessThan(2000); // not the 5 s deadlines
    const updates = ids.map((_, i) => Float32Array.from({ length: M }, (_, k) => ((k % 7) - 3) * 0.01 * (i + 1)));
    const weights = [10, 20, 30, 40];
    ids.forEach((id, i) => {
      const c = clients.get(id)!;
      c.receiveShares(parse(routed[i]!) as never);
      const m = c.maskedInput(updates[i]!, weights[i]!, 'nearest');
      round.addMasked(id, m.y, m.rejected);
    });
    const done = round.finish();
    const asked = await Promise.all(ids.map((id) => round.handle(req(id, 'survivors', undefined))));
    const sent = await Promise.all(ids.map((id, i) => round.handle(req(id, 'unmask', clients.get(id)!.unmask(parse(asked[i]!) as never)))));
    for (const r of sent) expect(r).toMatchObject({ accepted: true });
    const res = await done;
    expect(res.ok).toBe(true);
    if (!res.ok) return;
    const W = weights.reduce((a, b) => a + b, 0);
    for (let k = 0; k < M; k++) {
      const want = updates.reduce((s, u, i) => s + weights[i]! * u[k]!, 0) / W;
      expect(Math.abs(res.mean[k]! - want)).toBeLessThan(1e-5);
    }
    expect(res.weightSum).toBeCloseTo(W, 3);
  });

  it('unmasking ends once every secret has its threshold of shares: survivors that dropped out are not waited for', async () => {
    const { ids, round, clients, req, params } = setup(5, { unmaskSeconds: 30 });
    expect(params.threshold).toBe(3);
    const adv = await Promise.all(ids.map((id) => round.handle(req(id, 'advertise', clients.get(id)!.advertise()))));
    const routed = await Promise.all(ids.map((id, i) => round.handle(req(id, 'share', clients.get(id)!.shareKeys(parse(adv[i]!) as never)))));
    const update = new Float32Array(M).fill(0.25);
    ids.forEach((id, i) => {
      clients.get(id)!.receiveShares(parse(routed[i]!) as never);
      const m = clients.get(id)!.maskedInput(update, 100, 'nearest');
      round.addMasked(id, m.y, m.rejected);
    });
    const t0 = Date.now();
    const done = round.finish();
    // Two of the five never send their unmask shares (they dropped after their masked input).
    const asked = await Promise.all(ids.slice(2).map((id) => round.handle(req(id, 'survivors', undefined))));
    await Promise.all(ids.slice(2).map((id, i) => round.handle(req(id, 'unmask', clients.get(id)!.unmask(parse(asked[i]!) as never)))));
    const res = await done;
    // Not the 30 s unmask deadline (finalize's worker threads take seconds to start on a loaded machine).
    expect(Date.now() - t0).toBeLessThan(15_000);
    expect(res.ok).toBe(true);
    if (res.ok) for (const v of res.mean) expect(v).toBeCloseTo(0.25, 5);
  });

  it('an agent that shared keys but sent no masked input (late) has its pairwise masks removed from its key shares', async () => {
    const { ids, round, clients, req } = setup(5);
    const adv = await Promise.all(ids.map((id) => round.handle(req(id, 'advertise', clients.get(id)!.advertise()))));
    const routed = await Promise.all(ids.map((id, i) => round.handle(req(id, 'share', clients.get(id)!.shareKeys(parse(adv[i]!) as never)))));
    const late = ids[4]!;
    const on = ids.slice(0, 4);
    const updates = on.map((_, i) => new Float32Array(M).fill(0.1 * (i + 1)));
    on.forEach((id, i) => {
      clients.get(id)!.receiveShares(parse(routed[i]!) as never);
      const m = clients.get(id)!.maskedInput(updates[i]!, 50, 'nearest');
      round.addMasked(id, m.y, m.rejected);
    });
    round.agentOut(late); // the round closed while it trained (SyncRounds' late handler)
    const done = round.finish();
    const asked = await Promise.all(on.map((id) => round.handle(req(id, 'survivors', undefined))));
    for (const a of asked) expect((parse(a) as { dropped: string[] }).dropped).toEqual([late]);
    await Promise.all(on.map((id, i) => round.handle(req(id, 'unmask', clients.get(id)!.unmask(parse(asked[i]!) as never)))));
    const res = await done;
    expect(res.ok).toBe(true);
    if (res.ok) {
      expect(res.dropped).toEqual([late]);
      for (const v of res.mean) expect(v).toBeCloseTo(0.25, 5); // mean of 0.1, 0.2, 0.3, 0.4 at equal weights
    }
  });

  it('refuses strangers, duplicates and bad JSON as replies with their reason; a late advertiser finds its stage closed', async () => {
    const { ids, round, clients, req } = setup(4, { advertiseMs: 300 });
    expect(await round.handle(req('intruder', 'advertise', new SecAggClient('intruder', clients.get(ids[0]!)!.params).advertise()))).toMatchObject({ accepted: false, reason: 'unknown_task' });
    expect(await round.handle({ ...req(ids[1]!, 'advertise', undefined), payloadJson: '{not json' })).toMatchObject({ accepted: false, reason: 'malformed' });
    expect(await round.handle(req(ids[1]!, 'advertise', { cPk: 'AAAA', sPk: 'AAAA' }))).toMatchObject({ accepted: false, reason: 'malformed' });
    // Three advertise; the fourth stays silent until the deadline closes the stage without it.
    const held = ids.slice(0, 3).map((id) => round.handle(req(id, 'advertise', clients.get(id)!.advertise())));
    expect(await round.handle(req(ids[0]!, 'advertise', new SecAggClient(ids[0]!, clients.get(ids[0]!)!.params).advertise()))).toMatchObject({ accepted: false, reason: 'duplicate' });
    const replies = await Promise.all(held);
    for (const r of replies) expect((parse(r) as { neighbors: unknown[] }).neighbors).toHaveLength(2);
    expect(await round.handle(req(ids[3]!, 'advertise', clients.get(ids[3]!)!.advertise()))).toMatchObject({ accepted: false, reason: 'stage_closed' });
    round.abort('test over');
  });

  it('an agent leaving the cohort does not hold a stage; below the threshold the round fails and held calls are answered round_failed', async () => {
    const { ids, round, clients, req } = setup(4); // threshold 3
    let failed: string | undefined;
    round.onFail = (reason) => (failed = reason);
    const held = round.handle(req(ids[0]!, 'advertise', clients.get(ids[0]!)!.advertise()));
    const held2 = round.handle(req(ids[1]!, 'advertise', clients.get(ids[1]!)!.advertise()));
    round.agentOut(ids[2]!);
    round.agentOut(ids[3]!); // two advertised, the others are gone: the stage closes now, below threshold 3
    expect(await held).toMatchObject({ accepted: false, reason: 'round_failed' });
    expect(await held2).toMatchObject({ accepted: false, reason: 'round_failed' });
    expect(failed).toMatch(/2 agents advertised keys, threshold is 3/);
    expect(await round.finish()).toMatchObject({ ok: false });
    expect(round.takesMaskedInput(ids[0]!)).toBe(false);
  });

  it('stats for the round record: no shares, dropped before the input, a tampered sender excluded, a survivor silent in unmask', async () => {
    const { ids, round, clients, req } = setup(8, { threshold: 3, unmaskSeconds: 30 });
    const [a0, a1, , , , a5, a6, a7] = ids as [string, string, string, string, string, string, string, string];
    const adv = await Promise.all(ids.map((id) => round.handle(req(id, 'advertise', clients.get(id)!.advertise()))));
    const sharing = ids.filter((id) => id !== a7);
    const routedP = sharing.map((id) => round.handle(req(id, 'share', clients.get(id)!.shareKeys(parse(adv[ids.indexOf(id)]!) as never))));
    round.agentOut(a7); // advertised, never shared
    const routed = new Map((await Promise.all(routedP)).map((r, i) => [sharing[i]!, parse(r) as { shares: { from: string; ciphertext: string }[] }]));
    // a1's box to a0 arrives with one byte flipped: a0's MAC check fails and it reports a1 with its masked input.
    const box = routed.get(a0)!.shares.find((x) => x.from === a1)!;
    const ct = Buffer.from(box.ciphertext, 'base64');
    ct[5] = ct[5]! ^ 1;
    box.ciphertext = ct.toString('base64');
    const update = new Float32Array(M).fill(0.2);
    for (const id of sharing) clients.get(id)!.receiveShares(routed.get(id) as never);
    // a0 reports a1 at once (the report stage), before any masked input: a1 is out whatever order inputs arrive in.
    expect(round.refuseEarly(a1)).toBeUndefined();
    expect(await round.handle(req(a0, 'report', { rejected: [a1] }))).toMatchObject({ accepted: true });
    expect(await round.handle(req(a0, 'report', { rejected: [] }))).toMatchObject({ accepted: false, reason: 'malformed' });
    for (const id of [a0, a1, ...ids.slice(2, 6)]) {
      const m = clients.get(id)!.maskedInput(update, 100, 'nearest');
      if (id === a1) {
        // Refused at its upload's header (before any byte is read) and, had it streamed anyway, when complete.
        expect(round.refuseEarly(id)).toMatch(/agent-1 is dropped \(a neighbor could not open its share box\)/);
        expect(() => round.addMasked(id, m.y, m.rejected)).toThrow(/a neighbor could not open its share box/);
      } else {
        expect(round.refuseEarly(id)).toBeUndefined();
        round.addMasked(id, m.y, m.rejected);
      }
    }
    round.agentOut(a6); // shared keys, no masked input (late)
    const done = round.finish();
    const answering = [a0, ...ids.slice(2, 5)]; // a5 is a survivor that never answers the unmask stage
    const asked = await Promise.all(answering.map((id) => round.handle(req(id, 'survivors', undefined))));
    await Promise.all(answering.map((id, i) => round.handle(req(id, 'unmask', clients.get(id)!.unmask(parse(asked[i]!) as never)))));
    const res = await done;
    expect(res.ok, res.ok ? '' : res.reason).toBe(true);
    if (res.ok) for (const v of res.mean) expect(v).toBeCloseTo(0.2, 5);
    const st = round.stats((id) => `name-${id}`);
    expect(st).toMatchObject({
      bits: 32, quantization: 'ring', threshold: 3, cohort: 8, advertised: 8, shared: 7, survivors: 5,
      droppedBeforeShares: 1, droppedBeforeInput: 2, droppedAfterInput: 1, tampered: [`name-${a1}`], tamperedExcluded: [`name-${a1}`], refusedInputs: 2, // a1's two refusals above
    });
    expect(st.unmaskSeconds).toBeGreaterThan(0);
    void a5;
  });
});
