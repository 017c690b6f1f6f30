/** Seeded generators of hostile values for the fuzz test: strings, ids, numbers, float payloads and raw protobuf bytes. */
import { createRng } from '@fedge/proto';

export class Gen {
  readonly next: () => number;
  constructor(readonly seed: number) {
    this.next = createRng(seed);
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)]!;
  }
  bytes(n: number): Buffer {
    const b = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i++) b[i] = this.int(256);
    return b;
  }
  hex(n: number): string {
    let s = '';
    for (let i = 0; i < n; i++) s += '0123456789abcdef'[this.int(16)];
    return s;
  }
  /** A length biased towards small values, now and then large. */
  len(max: number): number {
    return this.chance(0.8) ? this.int(64) : this.int(max);
  }

  /** Strings a field should refuse or survive: empty, huge, control characters, unicode, path tricks, JSON/SQL shards. */
  str(): string {
    switch (this.int(10)) {
      case 0: return '';
      case 1: return 'x'.repeat(this.pick([129, 257, 4097, 70_000]));
      case 2: return '\u0000\n\r\t\u001b[31m';
      case 3: return '\u{1F4A5}\uD800\uFFFE名前';
      case 4: return '../../../etc/passwd';
      case 5: return "'; DROP TABLE runs; --";
      case 6: return '{"__proto__":{"polluted":1}}';
      case 7: return 'fedge/v1/c/+/req#';
      case 8: return this.bytes(this.len(300)).toString('latin1');
      default: return `fz-${this.hex(8)}`;
    }
  }
  /** Numbers for integer and double fields: NaN, infinities, negatives, beyond 2^53, huge declared sizes. */
  num(): number {
    return this.pick([0, 1, -1, 2 ** 31, 2 ** 31 - 1, -(2 ** 31), 2 ** 53, 2 ** 62, -(2 ** 62), 1e300, NaN, Infinity, -Infinity, 0.5, Number.MAX_VALUE, Number.MIN_VALUE, this.int(1e6)]);
  }
  /** Float32 bytes of `n` values, all NaN, all Inf, mixed or denormal: what a poisoned update carries. */
  floats(n: number): Buffer {
    const f = new Float32Array(n);
    const mode = this.int(4);
    for (let i = 0; i < n; i++) f[i] = mode === 0 ? NaN : mode === 1 ? (i % 2 ? Infinity : -Infinity) : mode === 2 ? this.pick([NaN, 1e38, -1e38, 0]) : 1e-45;
    return Buffer.from(f.buffer);
  }

  /**
   * Protobuf-shaped bytes that break a message: fields 1-16 with random wire types (so a string field arrives as a
   * varint, an int64 as bytes), invalid wire types 3/4/6/7, over-long varints, lengths that run past the end.
   */
  protoGarbage(): Buffer {
    const parts: Buffer[] = [];
    const fields = 1 + this.int(8);
    for (let i = 0; i < fields; i++) {
      const field = 1 + this.int(16);
      const wire = this.pick([0, 1, 2, 5, 0, 2, 3, 4, 6, 7]);
      parts.push(varint((field << 3) | wire));
      if (wire === 0) parts.push(this.chance(0.1) ? Buffer.alloc(11, 0xff) : varint(this.int(2 ** 31)));
      else if (wire === 1) parts.push(this.bytes(8));
      else if (wire === 5) parts.push(this.bytes(4));
      else if (wire === 2) {
        const n = this.len(2048);
        // Sometimes declare more (up to 2^31) than follows.
        parts.push(varint(this.chance(0.15) ? n + 1 + this.int(2 ** 31) : n), this.bytes(n));
      } else parts.push(this.bytes(this.int(8)));
    }
    return Buffer.concat(parts);
  }

  /** A valid encoding `good` spoiled: truncated, bit-flipped, extended with garbage, or left alone. */
  mutate(good: Buffer): Buffer {
    const b = Buffer.from(good);
    switch (this.int(4)) {
      case 0: return b.subarray(0, this.int(b.length + 1));
      case 1:
        for (let i = 0, n = 1 + this.int(4); i < n && b.length; i++) b[this.int(b.length)] ^= 1 << this.int(8);
        return b;
      case 2: return Buffer.concat([b, this.protoGarbage()]);
      default: return b;
    }
  }
}

export function varint(n: number): Buffer {
  const out: number[] = [];
  let v = BigInt(Math.max(0, Math.trunc(n)));
  do {
    let byte = Number(v & 0x7fn);
    v >>= 7n;
    if (v) byte |= 0x80;
    out.push(byte);
  } while (v);
  return Buffer.from(out);
}

/** A histogram: key -> count. */
export class Counts {
  readonly m = new Map<string, number>();
  add(k: string, n = 1): void {
    this.m.set(k, (this.m.get(k) ?? 0) + n);
  }
  get(k: string): number {
    return this.m.get(k) ?? 0;
  }
  total(): number {
    let t = 0;
    for (const v of this.m.values()) t += v;
    return t;
  }
  toString(): string {
    return [...this.m.entries()].sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k}=${v}`).join(' ');
  }
}

/** A status report body: valid, malformed or hostile (the credentials around it are forged, so it must be refused). */
export function reportBody(g: Gen, runId: string): string {
  return g.pick(['', '{', '{}', 'null', '[]', JSON.stringify({ served: { runId, version: 1 } }), JSON.stringify({ served: { runId: g.str(), version: g.num() } }),
    JSON.stringify({ drift: { runId, version: 1, window: g.num(), features: [{ feature: g.str(), reference: g.pick(['own', 'fleet', 'x']), psi: g.num(), ks: g.num(), pValue: g.num() }], prediction: [] } }),
    JSON.stringify({ health: { versions: [{ version: 1, requests: g.num(), errors: g.num(), p50Ms: g.num(), p99Ms: g.num() }] } }), 'x'.repeat(g.pick([10, (1 << 20) + 1])), g.str()]);
}
