/** Join rate limits (token buckets per source address and per identity) and the shared token's registration cap. */
import { LimitError, ValidationError } from '@fedge/proto';

export interface JoinLimits {
  /** Agents that may be registered with the shared join token (enrolled devices are one each by name). */
  maxTokenAgents: number;
  /** Joins and challenges per second one source address may make on average, and the burst it may use at once. */
  sourceRate: number;
  sourceBurst: number;
  /** The same per enrolled identity (name). */
  identityRate: number;
  identityBurst: number;
}

/**
 * Defaults sized so a real fleet never meets them (100 agents starting behind one NAT all join within the burst)
 * while one device cannot grow the registry without bound or keep the coordinator busy verifying signatures.
 */
export const DEFAULT_JOIN_LIMITS: JoinLimits = { maxTokenAgents: 1000, sourceRate: 20, sourceBurst: 200, identityRate: 1, identityBurst: 10 };

/** Buckets kept at once; full (idle) ones are dropped first, so a spray of source addresses cannot grow memory. */
const MAX_BUCKETS = 10_000;

/** Token buckets keyed by a string; `take` refuses with E_RATE_LIMITED naming the key's kind and when to retry. */
export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(private readonly rate: number, private readonly burst: number, private readonly what: string, private readonly now: () => number = Date.now) {}

  take(key: string): void {
    const t = this.now();
    let b = this.buckets.get(key);
    if (b) b.tokens = Math.min(this.burst, b.tokens + ((t - b.at) / 1000) * this.rate);
    else {
      if (this.buckets.size >= MAX_BUCKETS) this.prune(t);
      b = { tokens: this.burst, at: t };
      this.buckets.set(key, b);
    }
    b.at = t;
    if (b.tokens < 1) {
      const wait = Math.ceil(((1 - b.tokens) / this.rate) * 1000);
      throw new LimitError('E_RATE_LIMITED', `${this.what}: more than ${this.burst} joins at once or ${this.rate}/s on average; retry in ${wait} ms`);
    }
    b.tokens -= 1;
  }

  private prune(t: number): void {
    for (const [k, b] of this.buckets) if (b.tokens + ((t - b.at) / 1000) * this.rate >= this.burst) this.buckets.delete(k);
    // Still full of active keys: forget the oldest (a forgotten key starts with a full bucket, never less allowance).
    while (this.buckets.size >= MAX_BUCKETS) this.buckets.delete(this.buckets.keys().next().value!);
  }
}

/** Parses the `fedge serve` limit flags; a bad value names its flag. */
export function parseJoinLimits(o: { maxTokenAgents?: string; joinRate?: string; joinBurst?: string }): JoinLimits {
  const num = (v: string | undefined, flag: string, def: number, int: boolean): number => {
    if (v === undefined) return def;
    const n = Number(v);
    if (!Number.isFinite(n) || n <= 0 || (int && !Number.isInteger(n))) throw new ValidationError(`${flag}: "${v}" is not a positive ${int ? 'integer' : 'number'}`);
    return n;
  };
  return {
    ...DEFAULT_JOIN_LIMITS,
    maxTokenAgents: num(o.maxTokenAgents, '--max-token-agents', DEFAULT_JOIN_LIMITS.maxTokenAgents, true),
    sourceRate: num(o.joinRate, '--join-rate', DEFAULT_JOIN_LIMITS.sourceRate, false),
    sourceBurst: num(o.joinBurst, '--join-burst', DEFAULT_JOIN_LIMITS.sourceBurst, true),
  };
}
