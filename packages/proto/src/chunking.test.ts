import { describe, expect, it } from 'vitest';
import { ChunkAssembler, chunkBytes, modelDigest } from './chunking.js';
import { RejectedUpdateError } from './errors.js';
import { parseHostPort } from './address.js';
import { describeSpecMismatch, totalParams } from './tensor.js';

function random(n: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 2654435761) >>> 24;
  return b;
}

describe('chunking', () => {
  it.each([0, 1, 1023, 1024, 1025, 5 * 1024 + 7])('round-trips %i bytes through 1 KiB chunks', (n) => {
    const src = random(n);
    const chunks = [...chunkBytes(src, 1024)];
    expect(chunks.length).toBe(Math.ceil(n / 1024));
    expect(chunks.every((c) => c.data.byteLength <= 1024)).toBe(true);
    const asm = new ChunkAssembler(n);
    for (const c of chunks) asm.push(c.offset, c.data);
    expect(Buffer.compare(Buffer.from(asm.finish()), Buffer.from(src))).toBe(0);
  });

  it('rejects gaps, overlaps, overflow and truncation with a reason', () => {
    const src = random(3000);
    const reason = (f: () => void): string => {
      try {
        f();
      } catch (e) {
        return (e as RejectedUpdateError).reason;
      }
      return 'none';
    };
    expect(reason(() => new ChunkAssembler(3000).push(1, src.subarray(0, 10)))).toBe('bad_offset');
    const a = new ChunkAssembler(3000);
    a.push(0, src.subarray(0, 1000));
    expect(reason(() => a.push(500, src.subarray(500, 1500)))).toBe('bad_offset');
    expect(reason(() => a.push(1000, random(2001)))).toBe('oversized');
    expect(reason(() => a.finish())).toBe('truncated');
  });

  it('digest changes with topology, specs or any weight byte', () => {
    const w = random(64);
    const specs = [{ name: 'w', dtype: 'float32' as const, shape: [4, 4] }];
    const d = modelDigest('{}', specs, w);
    expect(d).toMatch(/^[0-9a-f]{64}$/);
    expect(modelDigest('{ }', specs, w)).not.toBe(d);
    expect(modelDigest('{}', [{ ...specs[0]!, shape: [16] }], w)).not.toBe(d);
    const w2 = w.slice();
    w2[63]! ^= 1;
    expect(modelDigest('{}', specs, w2)).not.toBe(d);
  });
});

describe('tensor specs and addresses', () => {
  it('names the mismatching tensor and field', () => {
    const a = [{ name: 'dense/kernel', dtype: 'float32' as const, shape: [784, 200] }];
    expect(describeSpecMismatch(a, [{ ...a[0]!, shape: [784, 201] }])).toMatch(/dense\/kernel.*shape.*784,200.*784,201/);
    expect(describeSpecMismatch(a, [])).toMatch(/expected 1 tensors, got 0/);
    expect(describeSpecMismatch(a, a)).toBeUndefined();
    expect(totalParams(a)).toBe(156_800);
  });

  it('parses coordinator addresses and explains bad ones', () => {
    expect(parseHostPort('grpc://127.0.0.1:7070', '--coordinator')).toEqual({ host: '127.0.0.1', port: 7070 });
    expect(parseHostPort('coord.local', '--coordinator', 7070)).toEqual({ host: 'coord.local', port: 7070 });
    expect(parseHostPort('[::1]:9000', '--listen')).toEqual({ host: '[::1]', port: 9000 });
    expect(() => parseHostPort('http://x:1:2', '--coordinator')).toThrow(/--coordinator: .* is not HOST:PORT/);
    expect(() => parseHostPort('x:99999', '--listen')).toThrow(/--listen/);
  });
});
