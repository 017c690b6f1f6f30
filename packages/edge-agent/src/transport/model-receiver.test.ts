import { afterEach, describe, expect, it } from 'vitest';
import { RejectedUpdateError, modelDigest } from '@fedge/proto';
import { ModelReceivers, WORKER_MIN_BYTES } from './model-receiver.js';

const MiB = 2 ** 20;
const topology = '{"class_name":"Sequential"}';
const specs = (bytes: number) => [{ name: 'w', dtype: 'float32' as const, shape: [bytes / 4] }];

function payload(bytes: number): Buffer {
  const b = Buffer.alloc(bytes);
  for (let i = 0; i < bytes; i += 97) b[i] = (i * 31) & 255;
  return b;
}

/** Each chunk in a fresh buffer of its own with a few bytes in front, the way grpc-js hands message fields over. */
function ownChunks(all: Uint8Array, size: number): { offset: number; data: Buffer }[] {
  const out = [];
  for (let off = 0; off < all.length; off += size) {
    const n = Math.min(size, all.length - off);
    const b = Buffer.allocUnsafe(n + 12);
    b.set(all.subarray(off, off + n), 12);
    out.push({ offset: off, data: b.subarray(12) });
  }
  return out;
}

let receivers: ModelReceivers | undefined;
afterEach(() => receivers?.close());

describe('ModelReceivers', () => {
  it('assembles and hashes large models on the worker, taking over chunks that own their buffer', async () => {
    receivers = new ModelReceivers(true);
    const all = payload(WORKER_MIN_BYTES + 3 * MiB + 8);
    const rx = receivers.start(topology, specs(all.length), all.length);
    const chunks = ownChunks(all, MiB);
    for (const c of chunks) rx.push(c.offset, c.data);
    expect(chunks[0]!.data.buffer.byteLength).toBe(0); // moved to the worker, not copied
    const { bytes, sha256 } = await rx.finish();
    expect(Buffer.from(bytes).equals(all)).toBe(true);
    expect(sha256).toBe(modelDigest(topology, specs(all.length), all));
  });

  it('copies chunks that share their buffer, leaving the caller\'s bytes intact', async () => {
    receivers = new ModelReceivers(true);
    const all = payload(WORKER_MIN_BYTES);
    const rx = receivers.start(topology, specs(all.length), all.length);
    for (let off = 0; off < all.length; off += MiB) rx.push(off, all.subarray(off, off + MiB));
    expect(all.byteLength).toBe(WORKER_MIN_BYTES);
    const { bytes, sha256 } = await rx.finish();
    expect(Buffer.from(bytes).equals(all)).toBe(true);
    expect(sha256).toBe(modelDigest(topology, specs(all.length), all));
  });

  it('handles small models inline, and concurrent downloads do not mix', async () => {
    receivers = new ModelReceivers(true);
    const small = payload(64 * 1024);
    const big = [payload(WORKER_MIN_BYTES), payload(WORKER_MIN_BYTES + MiB)];
    const rxs = big.map((b) => receivers!.start(topology, specs(b.length), b.length));
    const rxSmall = receivers.start(topology, specs(small.length), small.length);
    for (let i = 0; i < 6; i++) big.forEach((b, j) => i * MiB < b.length && rxs[j]!.push(i * MiB, b.subarray(i * MiB, (i + 1) * MiB)));
    rxSmall.push(0, small);
    const got = await Promise.all(rxs.map((r) => r.finish()));
    got.forEach((g, j) => {
      expect(Buffer.from(g.bytes).equals(big[j]!)).toBe(true);
      expect(g.sha256).toBe(modelDigest(topology, specs(big[j]!.length), big[j]!));
    });
    expect((await rxSmall.finish()).sha256).toBe(modelDigest(topology, specs(small.length), small));
  });

  it.each([
    [WORKER_MIN_BYTES, true],
    [1024, true],
    [WORKER_MIN_BYTES, false],
  ])('rejects gaps, overlaps, excess and truncation (%i bytes, worker allowed: %s)', async (size, useWorker) => {
    receivers = new ModelReceivers(useWorker);
    const all = payload(size);
    const half = size / 2;
    const reason = (f: () => void): string | undefined => {
      try {
        f();
      } catch (err) {
        return (err as RejectedUpdateError).reason;
      }
      return undefined;
    };
    const a = receivers.start(topology, specs(size), size);
    expect(reason(() => a.push(4, all.subarray(4, half)))).toBe('bad_offset');
    a.drop();
    const b = receivers.start(topology, specs(size), size);
    b.push(0, all.subarray(0, half));
    expect(reason(() => b.push(half - 4, all.subarray(half - 4)))).toBe('bad_offset');
    expect(reason(() => b.push(half, payload(half + 4)))).toBe('oversized');
    await expect(b.finish()).rejects.toMatchObject({ reason: 'truncated' });
    const c = receivers.start(topology, specs(size), size); // the worker still serves after rejected downloads
    for (const ch of ownChunks(all, 1 << 19)) c.push(ch.offset, ch.data);
    expect((await c.finish()).sha256).toBe(modelDigest(topology, specs(size), all));
  });

  it('fails downloads in flight when the worker goes away, and starts a new worker for the next', async () => {
    receivers = new ModelReceivers(true);
    const all = payload(WORKER_MIN_BYTES);
    const expected = modelDigest(topology, specs(all.length), all);
    const rx = receivers.start(topology, specs(all.length), all.length);
    rx.push(0, all.subarray(0, MiB));
    receivers.close();
    for (let off = MiB; off < all.length; off += MiB) rx.push(off, all.subarray(off, off + MiB));
    await expect(rx.finish()).rejects.toMatchObject({ code: 'E_CONNECTION' });
    const next = receivers.start(topology, specs(all.length), all.length);
    next.push(0, all);
    expect(all.byteLength).toBe(0); // `all` owned its buffer: handed over, hence the digest taken first
    expect((await next.finish()).sha256).toBe(expected);
  });
});
