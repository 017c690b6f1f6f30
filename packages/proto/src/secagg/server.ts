/** The coordinator's side of one secure-aggregation round: routes boxes it cannot read, sums masked inputs, unmasks. */
import { createHash, randomBytes } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { SecAggError, ValidationError } from '../errors.js';
import { parseOrThrow } from '../schemas.js';
import { pairSign } from './client.js';
import { neighborGraph } from './graph.js';
import { maskSeed, x25519Private, x25519PublicOf } from './keys.js';
import {
  secaggAdvertiseSchema,
  secaggMaskedInputSchema,
  secaggShareKeysSchema,
  secaggUnmaskSchema,
  type SecAggAdvertise,
  type SecAggCiphertext,
  type SecAggMaskedInput,
  type SecAggResult,
  type SecAggRoutedShares,
  type SecAggShareKeys,
  type SecAggShareKeysRequest,
  type SecAggUnmask,
  type SecAggUnmaskRequest,
} from './messages.js';
import { checkParams, type SecAggParams } from './params.js';
import { applyMasks, applyMasksAsync } from './mask.js';
import { ringMask, type MaskTerm } from './prg.js';
import { dequantizeSum } from './quantize.js';
import { shamirCombine, type ShamirShare } from './shamir.js';

type Stage = 'advertise' | 'share' | 'masked' | 'unmask' | 'done';

/** A stage that could not close: too few agents left. Data, not an exception: the round fails and the run goes on. */
export interface SecAggFailure {
  ok: false;
  reason: string;
}

export interface SecAggServerOptions {
  /** Number of model parameters m (masked vectors have m + 1 slots). */
  length: number;
  /** Seed of the neighbor graph; random when absent. A number is hashed (JSON-friendly configs). */
  graphSeed?: Uint8Array | number;
  /** Threads for removing masks in finalize (the PRG expansion dominates); default min(4, available cores). */
  threads?: number;
}

/**
 * One round at the coordinator. Stages: collectAdvertise* -> closeAdvertise -> collectShares* -> routeShares ->
 * addMaskedInput* -> closeMaskedInput -> collectUnmask* -> finalize. Memory is one running sum of m + 1 uint32
 * (each masked input is added on arrival and not kept) plus O(agents x neighbors) small shares.
 * Calls out of order throw SecAggError; malformed input from an agent throws ValidationError naming it.
 */
export class SecAggServer {
  readonly params: SecAggParams;
  readonly length: number;
  readonly graphSeed: Uint8Array | number;
  private readonly threads: number;
  private stage: Stage = 'advertise';
  private readonly keys = new Map<string, SecAggAdvertise>();
  private x = new Map<string, number>();
  private graph = new Map<string, string[]>();
  /** Ciphertexts by recipient, then sender. */
  private readonly inbox = new Map<string, Map<string, SecAggCiphertext>>();
  /** Agents that sent their shares (U2) and, once routed, each one's mask partners. */
  private readonly sharers = new Set<string>();
  private readonly partners = new Map<string, string[]>();
  private sum: Uint32Array | undefined;
  private readonly added = new Set<string>();
  /** Reported by a neighbor for a ciphertext that did not open, before their own input arrived: never added. */
  private readonly excluded = new Set<string>();
  /** Every sender some neighbor reported for a box that did not open (excluded or, if already summed, kept). */
  private readonly reported = new Set<string>();
  private survivors: string[] = [];
  private dropped: string[] = [];
  private requests = new Map<string, SecAggUnmaskRequest>();
  private readonly bShares = new Map<string, ShamirShare[]>();
  private readonly sShares = new Map<string, ShamirShare[]>();
  private readonly answered = new Set<string>();

  constructor(params: SecAggParams, opts: SecAggServerOptions) {
    checkParams(params);
    if (!Number.isInteger(opts.length) || opts.length < 1) throw new ValidationError(`secagg length: need a whole number >= 1, got ${opts.length}`);
    this.params = params;
    this.length = opts.length;
    this.graphSeed = opts.graphSeed ?? new Uint8Array(randomBytes(32));
    this.threads = opts.threads ?? Math.min(4, availableParallelism());
  }

  private expect(stage: Stage, what: string): void {
    if (this.stage !== stage) throw new SecAggError(`secagg round: ${what} needs stage '${stage}', the round is at '${this.stage}'`);
  }

  /** Which stage the round is at. */
  get currentStage(): Stage {
    return this.stage;
  }

  /** Stage 0: an agent's public keys. */
  collectAdvertise(id: string, msg: SecAggAdvertise): void {
    this.expect('advertise', `advertise from ${id}`);
    const m = parseOrThrow(secaggAdvertiseSchema, msg, `secagg advertise from ${id}`);
    if (this.keys.has(id)) throw new SecAggError(`secagg round: ${id} already advertised`, 'duplicate');
    if (this.keys.size >= this.params.nAgents) throw new SecAggError(`secagg round: ${id} would be agent ${this.keys.size + 1}, params allow nAgents = ${this.params.nAgents}`, 'not_in_round');
    this.keys.set(id, m);
  }

  /**
   * Closes advertising: fixes the roster (x = 1-based index in id order), draws the neighbor graph and returns each
   * agent's share-keys request (its x and its neighbors' keys). Fails when fewer than threshold agents advertised.
   */
  closeAdvertise(): { ok: true; requests: Map<string, SecAggShareKeysRequest> } | SecAggFailure {
    this.expect('advertise', 'closeAdvertise');
    const ids = [...this.keys.keys()].sort();
    if (ids.length < this.params.threshold) return this.fail(`${ids.length} agents advertised keys, threshold is ${this.params.threshold}`);
    this.x = new Map(ids.map((id, i) => [id, i + 1]));
    this.graph = neighborGraph(this.graphSeed, ids, this.params.neighbors);
    const requests = new Map<string, SecAggShareKeysRequest>();
    for (const id of ids) {
      const neighbors = this.graph.get(id)!.map((n) => ({ id: n, x: this.x.get(n)!, cPk: this.keys.get(n)!.cPk, sPk: this.keys.get(n)!.sPk }));
      requests.set(id, { x: this.x.get(id)!, neighbors });
    }
    this.stage = 'share';
    return { ok: true, requests };
  }

  /** Stage 1: an agent's boxed shares, one for every neighbor (the coordinator cannot open them). */
  collectShares(id: string, msg: SecAggShareKeys): void {
    this.expect('share', `shares from ${id}`);
    const m = parseOrThrow(secaggShareKeysSchema, msg, `secagg shares from ${id}`);
    const nb = this.graph.get(id);
    if (!nb) throw new SecAggError(`secagg round: ${id} is not in this round's roster (it did not advertise in time)`, 'not_in_round');
    if (this.sharers.has(id)) throw new SecAggError(`secagg round: ${id} already sent its shares`, 'duplicate');
    const to = new Set(m.shares.map((s) => s.to));
    const missing = nb.filter((n) => !to.has(n));
    if (to.size !== m.shares.length || missing.length > 0 || to.size !== nb.length)
      throw new ValidationError(`secagg shares from ${id}: need exactly one ciphertext per neighbor (${nb.length}); missing ${missing.join(', ') || 'none'}, got ${m.shares.length}`);
    for (const s of m.shares) {
      if (!this.inbox.has(s.to)) this.inbox.set(s.to, new Map());
      this.inbox.get(s.to)!.set(id, { nonce: s.nonce, ciphertext: s.ciphertext });
    }
    this.sharers.add(id);
  }

  /**
   * Closes share collection: each agent that sent its shares gets the ciphertexts of the neighbors that also did.
   * Those neighbors are its mask partners (symmetric by construction). Fails below threshold.
   */
  routeShares(): { ok: true; routed: Map<string, SecAggRoutedShares> } | SecAggFailure {
    this.expect('share', 'routeShares');
    if (this.sharers.size < this.params.threshold) return this.fail(`${this.sharers.size} agents sent their shares, threshold is ${this.params.threshold}`);
    const routed = new Map<string, SecAggRoutedShares>();
    for (const id of [...this.sharers].sort()) {
      const box = this.inbox.get(id) ?? new Map<string, SecAggCiphertext>();
      const from = this.graph.get(id)!.filter((n) => this.sharers.has(n));
      this.partners.set(id, from);
      routed.set(id, { shares: from.map((f) => ({ from: f, ...box.get(f)! })) });
    }
    this.inbox.clear();
    // Shared memory: finalize's worker threads remove masks in place.
    this.sum = new Uint32Array(new SharedArrayBuffer(4 * (this.length + 1)));
    this.stage = 'masked';
    return { ok: true, routed };
  }

  /**
   * Stage 2: adds an agent's masked vector into the one running sum (mod 2^32; reduced to 2^bits at the end).
   * Senders it reports as rejected (their box did not open) are excluded if their own input has not been added yet;
   * one already in the sum stays (the sum remains exact either way: masks do not depend on the boxes' contents).
   */
  addMaskedInput(id: string, msg: SecAggMaskedInput): void {
    this.expect('masked', `masked input from ${id}`);
    const m = parseOrThrow(secaggMaskedInputSchema, msg, `secagg masked input from ${id}`);
    if (!this.partners.has(id)) throw new SecAggError(`secagg round: ${id} sent no shares this round, so its masked input cannot be unmasked`, 'dropped');
    if (this.added.has(id)) throw new SecAggError(`secagg round: ${id} already sent its masked input`, 'duplicate');
    if (this.excluded.has(id)) throw new SecAggError(`secagg round: ${id} is dropped (a neighbor could not open its share box)`, 'dropped');
    const y = m.y;
    if (y.length !== this.length + 1) throw new ValidationError(`secagg masked input from ${id}: ${y.length} values, need model length + 1 = ${this.length + 1}`);
    const sum = this.sum!;
    if (this.params.bits < 32) {
      const mask = ringMask(this.params.bits);
      for (let i = 0; i < y.length; i++)
        if (y[i]! > mask) throw new ValidationError(`secagg masked input from ${id}: value ${y[i]} at ${i} is outside Z_2^${this.params.bits}`);
    }
    for (let i = 0; i < y.length; i++) sum[i] += y[i]!;
    this.added.add(id);
    this.markRejected(id, m.rejected);
  }

  /**
   * An agent's report of neighbors whose share box did not open (sent as soon as it opened them, before its masked
   * input): those not yet in the sum are dropped from the round. Only its own mask partners count.
   */
  reportRejected(id: string, rejected: readonly string[]): void {
    this.expect('masked', `rejection report from ${id}`);
    if (!this.partners.has(id)) throw new SecAggError(`secagg round: ${id} sent no shares this round, so it holds no boxes to report`, 'not_in_round');
    this.markRejected(id, rejected);
  }

  private markRejected(id: string, rejected: readonly string[]): void {
    const mine = new Set(this.partners.get(id));
    for (const r of rejected) {
      if (!mine.has(r)) continue;
      this.reported.add(r);
      if (!this.added.has(r)) this.excluded.add(r);
    }
  }

  /** Was this agent reported for a share box that did not open before its own input arrived (so it is out of the sum)? */
  isExcluded(id: string): boolean {
    return this.excluded.has(id);
  }

  /**
   * Who got how far, for the round's record: advertised keys, sent shares, input in the sum (survivors once the
   * masked-input stage closed), sent shares but no input in the sum (dropped), reported for a share box that did not
   * open, and of those the ones excluded (reported before their own input arrived).
   */
  stats(): { advertised: string[]; shared: string[]; survivors: string[]; dropped: string[]; reported: string[]; excluded: string[] } {
    const inSum = [...this.added].sort();
    return {
      advertised: [...this.keys.keys()].sort(),
      shared: [...this.sharers].sort(),
      survivors: inSum,
      dropped: [...this.sharers].filter((a) => !this.added.has(a)).sort(),
      reported: [...this.reported].sort(),
      excluded: [...this.excluded].sort(),
    };
  }

  /**
   * Closes the masked-input stage. Survivors: agents whose input is in the sum. Dropped: agents that sent shares but
   * whose input is not (their pairwise masks with survivors must be removed). Each holder is asked, about the owners
   * it holds shares of, for b-shares of survivors and s-key shares of dropped agents. Fails below threshold.
   */
  closeMaskedInput(): { ok: true; requests: Map<string, SecAggUnmaskRequest> } | SecAggFailure {
    this.expect('masked', 'closeMaskedInput');
    this.survivors = [...this.added].sort();
    const surv = new Set(this.survivors);
    this.dropped = [...this.sharers].filter((a) => !surv.has(a)).sort();
    if (this.survivors.length < this.params.threshold)
      return this.fail(`${this.survivors.length} masked inputs arrived, threshold is ${this.params.threshold}`);
    const needS = new Set(this.dropped.filter((d) => this.partners.get(d)!.some((p) => surv.has(p))));
    for (const h of this.sharers) {
      const owners = [h, ...this.partners.get(h)!];
      this.requests.set(h, { survivors: owners.filter((o) => surv.has(o)), dropped: owners.filter((o) => needS.has(o)) });
    }
    this.stage = 'unmask';
    return { ok: true, requests: new Map(this.requests) };
  }

  /** Stage 3: a holder's revealed shares; only the ones asked of it are taken. */
  collectUnmask(id: string, msg: SecAggUnmask): void {
    this.expect('unmask', `unmask from ${id}`);
    const m = parseOrThrow(secaggUnmaskSchema, msg, `secagg unmask from ${id}`);
    const req = this.requests.get(id);
    if (!req) throw new SecAggError(`secagg round: nothing was asked of ${id} in the unmask stage`, 'not_in_round');
    if (this.answered.has(id)) throw new SecAggError(`secagg round: ${id} already sent its unmask shares`, 'duplicate');
    const askB = new Set(req.survivors);
    const askS = new Set(req.dropped);
    for (const s of m.bShares) if (!askB.has(s.owner)) throw new ValidationError(`secagg unmask from ${id}: b-share of ${s.owner} was not asked for`);
    for (const s of m.sShares) if (!askS.has(s.owner)) throw new ValidationError(`secagg unmask from ${id}: s-key share of ${s.owner} was not asked for`);
    if (new Set(m.bShares.map((s) => s.owner)).size !== m.bShares.length || new Set(m.sShares.map((s) => s.owner)).size !== m.sShares.length)
      throw new ValidationError(`secagg unmask from ${id}: an owner appears twice`);
    const x = this.x.get(id)!;
    for (const s of m.bShares) push(this.bShares, s.owner, { x, y: s.share });
    for (const s of m.sShares) push(this.sShares, s.owner, { x, y: s.share });
    this.answered.add(id);
  }

  /**
   * Rebuilds each survivor's self-mask seed and each needed dropped agent's masking key from t shares, removes those
   * masks from the running sum, and decodes it. Fails (as data) when some secret has fewer than t shares or a
   * rebuilt key does not match the key that agent advertised.
   */
  finalize(): SecAggResult {
    const terms = this.unmaskTerms();
    if (!Array.isArray(terms)) return terms;
    applyMasks(this.sum!, terms, { threads: this.threads });
    return this.decode();
  }

  /**
   * finalize with the mask removal (seconds of PRG work at 100 agents) on worker threads: the caller's event loop
   * keeps serving while it runs. Same result. Only the share combining and key agreements (well under a second at
   * 100 agents) run on the caller's thread.
   */
  async finalizeAsync(): Promise<SecAggResult> {
    const terms = this.unmaskTerms();
    if (!Array.isArray(terms)) return terms;
    this.stage = 'done'; // no second finalize while the workers run
    await applyMasksAsync(this.sum!, terms, { threads: this.threads });
    return this.decode();
  }

  /** The masks to take out of the sum, or the failure (fewer than t shares, or a rebuilt key that does not match). */
  private unmaskTerms(): MaskTerm[] | (SecAggResult & SecAggFailure) {
    this.expect('unmask', 'finalize');
    const t = this.params.threshold;
    const terms: MaskTerm[] = [];
    for (const u of this.survivors) {
      const shares = this.bShares.get(u) ?? [];
      if (shares.length < t) return this.fail(`self mask of ${u} cannot be removed: ${shares.length} shares arrived, threshold is ${t}`);
      const commit = this.keys.get(u)!.bCommit;
      const b = rebuild(shares, t, commit ? (s) => equalBytes(sha256(s), commit) : () => true);
      if (!b) return this.fail(`the self-mask shares of ${u} do not rebuild the seed it committed to (wrong shares from its holders)`);
      terms.push({ seed: b, sign: -1 });
    }
    const surv = new Set(this.survivors);
    for (const v of this.dropped) {
      const live = this.partners.get(v)!.filter((p) => surv.has(p));
      if (live.length === 0) continue;
      const shares = this.sShares.get(v) ?? [];
      if (shares.length < t) return this.fail(`pairwise masks of dropped ${v} cannot be removed: ${shares.length} key shares arrived, threshold is ${t}`);
      const sk = rebuild(shares, t, (s) => equalBytes(x25519PublicOf(s), this.keys.get(v)!.sPk));
      if (!sk) return this.fail(`the key shares of dropped ${v} do not rebuild the key it advertised (wrong shares from its holders)`);
      const priv = x25519Private(sk);
      // Survivor u added pairSign(u, v) * PRG(s_uv); take it out.
      for (const u of live) terms.push({ seed: maskSeed(priv, this.keys.get(u)!.sPk), sign: pairSign(u, v) > 0 ? -1 : 1 });
    }
    return terms;
  }

  /** Reduces the unmasked sum mod 2^bits and decodes it. */
  private decode(): SecAggResult {
    const sum = this.sum!;
    if (this.params.bits < 32) {
      const m = ringMask(this.params.bits);
      for (let i = 0; i < sum.length; i++) sum[i] = sum[i]! & m;
    }
    const d = dequantizeSum(sum, this.survivors.length, this.params);
    this.sum = undefined;
    this.stage = 'done';
    return { ok: true, mean: d.mean, weightedSum: d.weightedSum, weightSum: d.weightSum, survivors: this.survivors, dropped: this.dropped };
  }

  private fail(reason: string): SecAggResult & SecAggFailure {
    this.stage = 'done';
    this.sum = undefined;
    return { ok: false, reason, survivors: this.survivors, dropped: this.dropped };
  }
}

/**
 * The secret from t of the shares that passes `check` (its public key or commitment). The first t usually do; when
 * a holder sent a wrong share, the windows shares[i..i+t) (cyclic) are tried in turn, so with more than t shares one
 * wrong share is always stepped over. undefined when none passes.
 */
function rebuild(shares: ShamirShare[], t: number, check: (secret: Uint8Array) => boolean): Uint8Array | undefined {
  const tries = shares.length > t ? shares.length : 1;
  for (let i = 0; i < tries; i++) {
    const pick = Array.from({ length: t }, (_, j) => shares[(i + j) % shares.length]!);
    const s = shamirCombine(pick, t);
    if (check(s)) return s;
  }
  return undefined;
}

function sha256(b: Uint8Array): Uint8Array {
  return new Uint8Array(createHash('sha256').update(b).digest());
}

function push<T>(m: Map<string, T[]>, k: string, v: T): void {
  const a = m.get(k);
  if (a) a.push(v);
  else m.set(k, [v]);
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}
