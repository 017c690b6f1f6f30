/**
 * Whole rounds in one process: the unmasked result equals plaintext weighted FedAvg within the quantization bound,
 * with dropouts at every stage; below threshold the round fails as data; tampered boxes drop their sender; the
 * privacy rule holds; masked inputs look uniform to the coordinator.
 */
import { describe, expect, it } from 'vitest';
import { SecAggClient } from './client.js';
import {
  secaggMaskedInputSchema,
  secaggRoutedSharesSchema,
  secaggShareKeysRequestSchema,
  secaggShareKeysSchema,
  secaggAdvertiseSchema,
  secaggToJson,
  secaggUnmaskRequestSchema,
  secaggUnmaskSchema,
  type SecAggResult,
  type SecAggRoutedShares,
  type SecAggUnmask,
} from './messages.js';
import { secaggParams, type SecAggParams } from './params.js';
import { quantizationBound } from './quantize.js';
import { SecAggServer } from './server.js';
import { maskedFromBytes, maskedToBytes } from './wire.js';

interface Plan {
  n: number;
  m?: number;
  params?: SecAggParams;
  /** Agents that stop before advertising, before sending shares, before the masked input, before unmask. */
  noAdvertise?: string[];
  noShares?: string[];
  noMasked?: string[];
  noUnmask?: string[];
  /** Change what the coordinator routes (a broker tampering with a box). */
  tamper?: (routed: Map<string, SecAggRoutedShares>) => void;
  /** Order of masked inputs (default: id order). */
  maskedOrder?: (ids: string[]) => string[];
  /** Send every stage message through JSON text and the zod schemas, as the transports do. */
  viaJson?: boolean;
  /** Observe each masked input as the coordinator receives it. */
  onMasked?: (id: string, y: Uint32Array) => void;
  update?: (agent: number, m: number) => Float32Array;
  /** Change a holder's unmask answer before the coordinator sees it. */
  onUnmask?: (holder: string, m: SecAggUnmask) => void;
}

const id = (i: number) => `agent-${String(i).padStart(2, '0')}`;
const wire = <T>(on: boolean | undefined, v: T, schema: { parse(x: unknown): unknown }): T => (on ? (schema.parse(JSON.parse(secaggToJson(v))) as T) : v);

function runRound(plan: Plan) {
  const m = plan.m ?? 500;
  const params = plan.params ?? secaggParams(plan.n, { clipRange: 1, maxWeight: 1000 });
  const server = new SecAggServer(params, { length: m, graphSeed: 7 });
  const clients = new Map(Array.from({ length: plan.n }, (_, i) => [id(i), new SecAggClient(id(i), params)]));
  const updates = new Map(Array.from({ length: plan.n }, (_, i) => [id(i), plan.update?.(i, m) ?? Float32Array.from({ length: m }, (_, j) => Math.sin(i * 13 + j) * 0.8)]));
  const weights = new Map(Array.from({ length: plan.n }, (_, i) => [id(i), 20 + 17 * i]));
  const skip = (list: string[] | undefined, a: string) => list?.includes(a) ?? false;
  const fail = (r: { ok: false; reason: string }) => ({ result: { ok: false, reason: r.reason, survivors: [], dropped: [] } as SecAggResult, updates, weights, params, refused: [] as string[] });

  for (const [a, c] of clients) if (!skip(plan.noAdvertise, a)) server.collectAdvertise(a, wire(plan.viaJson, c.advertise(), secaggAdvertiseSchema));
  const adv = server.closeAdvertise();
  if (!adv.ok) return fail(adv);
  for (const [a, req] of adv.requests) {
    if (skip(plan.noShares, a)) continue;
    const sk = clients.get(a)!.shareKeys(wire(plan.viaJson, req, secaggShareKeysRequestSchema));
    server.collectShares(a, wire(plan.viaJson, sk, secaggShareKeysSchema));
  }
  const routed = server.routeShares();
  if (!routed.ok) return fail(routed);
  plan.tamper?.(routed.routed);
  const order = [...routed.routed.keys()];
  const refused: string[] = [];
  for (const a of order) clients.get(a)!.receiveShares(wire(plan.viaJson, routed.routed.get(a)!, secaggRoutedSharesSchema));
  for (const a of plan.maskedOrder?.(order) ?? order) {
    if (skip(plan.noMasked, a)) continue;
    const mi = clients.get(a)!.maskedInput(updates.get(a)!, weights.get(a)!);
    plan.onMasked?.(a, mi.y);
    // The vector goes as bytes, the rest as JSON (what the transports do).
    const y = plan.viaJson ? maskedFromBytes(maskedToBytes(mi.y, params.bits), params.bits, m + 1) : mi.y;
    const meta = wire(plan.viaJson, { rejected: mi.rejected }, { parse: (x) => x });
    try {
      server.addMaskedInput(a, secaggMaskedInputSchema.parse({ ...meta, y }));
    } catch (e) {
      if ((e as { code?: string }).code !== 'E_SECAGG') throw e;
      refused.push(a);
    }
  }
  const um = server.closeMaskedInput();
  if (!um.ok) return fail(um);
  for (const [a, req] of um.requests) {
    if (skip(plan.noUnmask, a) || skip(plan.noMasked, a)) continue;
    const ans = clients.get(a)!.unmask(wire(plan.viaJson, req, secaggUnmaskRequestSchema));
    plan.onUnmask?.(a, ans);
    server.collectUnmask(a, wire(plan.viaJson, ans, secaggUnmaskSchema));
  }
  return { result: server.finalize(), updates, weights, params, refused };
}

/** Plaintext weighted FedAvg of the given agents, with the same clipping the protocol applies. */
function expectFedAvg(r: ReturnType<typeof runRound>, members: string[]): void {
  expect(r.result.ok, r.result.ok ? '' : r.result.reason).toBe(true);
  if (!r.result.ok) return;
  expect(r.result.survivors).toEqual([...members].sort());
  const c = r.params.clipRange;
  const m = r.result.mean.length;
  const ws = new Float64Array(m);
  let wsum = 0;
  for (const a of members) {
    const w = r.weights.get(a)!;
    wsum += w;
    const x = r.updates.get(a)!;
    for (let i = 0; i < m; i++) ws[i] += w * Math.max(-c, Math.min(c, x[i]!));
  }
  const bound = quantizationBound(r.params, members.length);
  expect(Math.abs(r.result.weightSum - wsum)).toBeLessThanOrEqual(bound.weightSum);
  let worst = 0;
  for (let i = 0; i < m; i++) worst = Math.max(worst, Math.abs(r.result.weightedSum[i]! - ws[i]!), Math.abs(r.result.mean[i]! - ws[i]! / wsum) * wsum);
  expect(worst).toBeLessThanOrEqual(bound.weightedSum + (bound.weightSum + 1e-6) * c);
}

const all = (n: number) => Array.from({ length: n }, (_, i) => id(i));

describe('secure aggregation round', () => {
  it('masks cancel: with no dropouts the result is plaintext weighted FedAvg', () => {
    const r = runRound({ n: 6 });
    expectFedAvg(r, all(6));
    if (r.result.ok) expect(r.result.dropped).toEqual([]);
  });

  it('10 agents, 30% dropping after sending their masked input: their inputs are in the sum, their self masks rebuilt from neighbors', () => {
    const r = runRound({ n: 10, noUnmask: [id(1), id(4), id(8)] });
    expectFedAvg(r, all(10));
  });

  it('dropouts before the masked input (and before sharing keys): pairwise masks of the dropped are removed', () => {
    const r = runRound({ n: 10, noShares: [id(9)], noMasked: [id(2), id(5)] });
    expectFedAvg(r, all(10).filter((a) => ![id(9), id(2), id(5)].includes(a)));
    if (r.result.ok) expect(r.result.dropped).toEqual([id(2), id(5)]);
  });

  it('SecAgg+ neighborhoods (k < n - 1) with dropouts at every stage', () => {
    const params = secaggParams(30, { neighbors: 10, clipRange: 1, maxWeight: 1000 });
    expect(params.threshold).toBe(6);
    const r = runRound({ n: 30, params, noAdvertise: [id(0)], noShares: [id(3)], noMasked: [id(7), id(8), id(20)], noUnmask: [id(11), id(12)] });
    expectFedAvg(r, all(30).filter((a) => ![id(0), id(3), id(7), id(8), id(20)].includes(a)));
  });

  it('every stage message survives JSON text and the zod schemas; a 16-bit ring packs 2 bytes a value', () => {
    const params = secaggParams(8, { bits: 16, clipRange: 1, maxWeight: 1000 });
    expect(maskedToBytes(new Uint32Array(10), 16)).toHaveLength(20);
    expectFedAvg(runRound({ n: 8, params, viaJson: true, noMasked: [id(3)] }), all(8).filter((a) => a !== id(3)));
  });

  it('int8 mode: a 12-bit ring for 10 agents, packed at 1.5 bytes a value, unmasks to FedAvg within the int8 bound with dropouts', () => {
    const params = secaggParams(10, { quantization: 'int8', clipRange: 1, maxWeight: 200 });
    expect(params.bits).toBe(12);
    expect(maskedToBytes(new Uint32Array(1000), 12)).toHaveLength(1500);
    expectFedAvg(runRound({ n: 10, params, viaJson: true, noMasked: [id(2)], noUnmask: [id(5)] }), all(10).filter((a) => a !== id(2)));
  });

  it('below threshold the round fails as data at each stage, naming the counts', () => {
    const p = secaggParams(10, { threshold: 6 });
    const r1 = runRound({ n: 10, params: p, noAdvertise: all(5) });
    expect(r1.result).toMatchObject({ ok: false, reason: '5 agents advertised keys, threshold is 6' });
    const r2 = runRound({ n: 10, params: p, noShares: all(5) });
    expect(r2.result).toMatchObject({ ok: false, reason: '5 agents sent their shares, threshold is 6' });
    const r3 = runRound({ n: 10, params: p, noMasked: all(5) });
    expect(r3.result).toMatchObject({ ok: false, reason: '5 masked inputs arrived, threshold is 6' });
    // Enough inputs, too few holders answer the unmask: a self mask cannot be removed.
    const r4 = runRound({ n: 10, params: p, noUnmask: all(5) });
    expect(r4.result.ok).toBe(false);
    if (!r4.result.ok) expect(r4.result.reason).toMatch(/self mask of agent-\d+ cannot be removed: 5 shares arrived, threshold is 6/);
  });

  it('a tampered share box fails its MAC: the recipient rejects it and the sender is dropped', () => {
    const victim = id(3);
    const sender = id(6);
    const r = runRound({
      n: 10,
      tamper: (routed) => {
        const box = routed.get(victim)!.shares.find((s) => s.from === sender)!;
        box.ciphertext = Uint8Array.from(box.ciphertext, (b, i) => (i === 20 ? b ^ 1 : b));
      },
      // The victim's report reaches the coordinator before the sender's own masked input.
      maskedOrder: (ids) => [victim, ...ids.filter((a) => a !== victim)],
    });
    expect(r.refused).toEqual([sender]);
    expectFedAvg(r, all(10).filter((a) => a !== sender));
    if (r.result.ok) expect(r.result.dropped).toEqual([sender]);
  });

  it('a tampered box whose sender has its input in the sum already: the sender stays, the sum is still exact', () => {
    const victim = id(3);
    const sender = id(6);
    const r = runRound({
      n: 10,
      tamper: (routed) => {
        const box = routed.get(victim)!.shares.find((s) => s.from === sender)!;
        box.nonce = Uint8Array.from(box.nonce, (b, i) => (i === 0 ? b ^ 0x80 : b));
      },
      maskedOrder: (ids) => [sender, ...ids.filter((a) => a !== sender)],
      noUnmask: [id(1)],
    });
    expect(r.refused).toEqual([]);
    expectFedAvg(r, all(10));
  });

  it('each masked input the coordinator receives is indistinguishable from uniform bytes (chi-square), though the inputs are all zero', () => {
    const m = 20_000;
    const chi2 = (bytes: Uint8Array): number => {
      const counts = new Float64Array(256);
      for (const b of bytes) counts[b]++;
      const e = bytes.length / 256;
      return counts.reduce((a, c) => a + ((c - e) * (c - e)) / e, 0);
    };
    // 255 degrees of freedom: P[chi2 > 370] ~ 3e-6 (Wilson-Hilferty), so 9 uniform vectors fail together ~3e-5 of runs.
    const LIMIT = 370;
    const seen: number[] = [];
    const r = runRound({ n: 10, m, update: (_i, len) => new Float32Array(len), onMasked: (_a, y) => seen.push(chi2(new Uint8Array(y.buffer, y.byteOffset, y.byteLength))), noMasked: [id(4)] });
    expect(r.result.ok).toBe(true);
    expect(seen).toHaveLength(9);
    for (const c of seen) expect(c).toBeLessThan(LIMIT);
    // The test has power: the same inputs unmasked (a constant grid value per coordinate) fail it by far.
    const q = new Uint32Array(m + 1).fill(2 ** 31);
    expect(chi2(new Uint8Array(q.buffer))).toBeGreaterThan(100 * LIMIT);
  });

  it('maskedInputAsync and finalizeAsync (mask work on worker threads) give the same FedAvg', async () => {
    const n = 6;
    const m = 3000;
    const params = secaggParams(n, { clipRange: 1, maxWeight: 1000 });
    const server = new SecAggServer(params, { length: m, threads: 2 });
    const cs = all(n).map((a) => new SecAggClient(a, params));
    for (const c of cs) server.collectAdvertise(c.id, c.advertise());
    const adv = server.closeAdvertise();
    if (!adv.ok) throw new Error(adv.reason);
    for (const c of cs) server.collectShares(c.id, c.shareKeys(adv.requests.get(c.id)!));
    const routed = server.routeShares();
    if (!routed.ok) throw new Error(routed.reason);
    const updates = new Map(cs.map((c, i) => [c.id, Float32Array.from({ length: m }, (_, j) => Math.cos(i + j))]));
    const weights = new Map(cs.map((c, i) => [c.id, 10 + i]));
    for (const c of cs) c.receiveShares(routed.routed.get(c.id)!);
    for (const c of cs.slice(1)) server.addMaskedInput(c.id, await c.maskedInputAsync(updates.get(c.id)!, weights.get(c.id)!));
    const um = server.closeMaskedInput();
    if (!um.ok) throw new Error(um.reason);
    for (const c of cs) server.collectUnmask(c.id, c.unmask(um.requests.get(c.id)!));
    const result = await server.finalizeAsync();
    expectFedAvg({ result, updates, weights, params, refused: [] }, all(n).slice(1));
    await expect(server.finalizeAsync()).rejects.toThrow(/needs stage 'unmask'/);
  });

  it('a wrong b-share or key share in the unmask stage is stepped over when more than t arrived, else the round fails naming the owner', () => {
    const spoil = (m: { bShares: { owner: string; share: Uint8Array }[]; sShares: { owner: string; share: Uint8Array }[] }, kind: 'bShares' | 'sShares', owner: string) => {
      const s = m[kind].find((x) => x.owner === owner);
      if (s) s.share = Uint8Array.from(s.share, (v, i) => (i === 32 ? v ^ 1 : v));
    };
    // n = 10, t = 6: 10 holders answer, one of them lies about agent-02's b and agent-05's key.
    const r = runRound({ n: 10, noMasked: [id(5)], onUnmask: (holder, m) => holder === id(0) && (spoil(m, 'bShares', id(2)), spoil(m, 'sShares', id(5))) });
    expectFedAvg(r, all(10).filter((a) => a !== id(5)));
    // Exactly t answers for agent-02's b, one of them wrong: no window avoids it.
    const params = secaggParams(10, { threshold: 6 });
    const r2 = runRound({ n: 10, params, noUnmask: [id(6), id(7), id(8), id(9)], onUnmask: (holder, m) => holder === id(0) && spoil(m, 'bShares', id(2)) });
    expect(r2.result).toMatchObject({ ok: false, reason: 'the self-mask shares of agent-02 do not rebuild the seed it committed to (wrong shares from its holders)' });
  });

  it('unmask refuses to reveal both shares of one agent, and answers only once', () => {
    const params = secaggParams(4);
    const server = new SecAggServer(params, { length: 3 });
    const cs = all(4).map((a) => new SecAggClient(a, params));
    for (const c of cs) server.collectAdvertise(c.id, c.advertise());
    const adv = server.closeAdvertise();
    if (!adv.ok) throw new Error(adv.reason);
    for (const c of cs) server.collectShares(c.id, c.shareKeys(adv.requests.get(c.id)!));
    const routed = server.routeShares();
    if (!routed.ok) throw new Error(routed.reason);
    const c0 = cs[0]!;
    c0.receiveShares(routed.routed.get(c0.id)!);
    expect(() => c0.unmask({ survivors: [id(1), id(2)], dropped: [id(2)] })).toThrow(/agent-02 both survivor and dropped/);
    expect(() => c0.unmask({ survivors: [id(1)], dropped: [id(1)] })).toThrow(expect.objectContaining({ kind: 'privacy' }));
    const ans = c0.unmask({ survivors: [id(1)], dropped: [id(2)] });
    expect(ans.bShares.map((s) => s.owner)).toEqual([id(1)]);
    expect(ans.sShares.map((s) => s.owner)).toEqual([id(2)]);
    expect(() => c0.unmask({ survivors: [id(2)], dropped: [id(1)] })).toThrow(expect.objectContaining({ code: 'E_SECAGG' }));
    expect(() => c0.maskedInput(new Float32Array(3), 1)).toThrow(/cannot run at stage 'unmasked'/);
    expect(() => server.collectAdvertise('late', cs[1]!.advertise())).toThrow(expect.objectContaining({ code: 'E_SECAGG', kind: 'out_of_order' }));
  });
});
