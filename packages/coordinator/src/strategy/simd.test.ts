/** Kernel-level tests for the hand-assembled WebAssembly module: encoding, bounds, alignment. */

import { describe, expect, it } from 'vitest';
import { instantiateSimdKernels, KERNEL_WASM, simdSupported, wasmApi } from './simd.js';

describe.runIf(simdSupported())('SIMD kernels', () => {
  const setup = () => {
    const memory = new wasmApi!.Memory({ initial: 1, maximum: 1 });
    return { k: instantiateSimdKernels(memory), f: new Float32Array(memory.buffer) };
  };

  it('emits a small valid module', () => {
    expect(Array.from(KERNEL_WASM.subarray(0, 8))).toEqual([0x00, 0x61, 0x73, 0x6d, 1, 0, 0, 0]);
    expect(wasmApi!.validate(KERNEL_WASM)).toBe(true);
    expect(KERNEL_WASM.length).toBeLessThan(1024);
  });

  it('axpy touches exactly [acc, acc + n) for every n and 4-byte (not 16-byte) aligned pointers', () => {
    const { k, f } = setup();
    for (const accOff of [16, 20]) {
      for (const xOff of [4096, 4100, 4108]) {
        for (let n = 0; n <= 70; n++) {
          f.fill(-7); // sentinel everywhere, including around both regions
          for (let i = 0; i < n; i++) {
            f[accOff + i] = i;
            f[xOff + i] = 2 * i + 1;
          }
          k.axpy(accOff * 4, xOff * 4, n, 0.5);
          for (let i = 0; i < n; i++) expect(f[accOff + i]).toBe(i + Math.fround(0.5 * (2 * i + 1)));
          expect(f[accOff - 1]).toBe(-7);
          expect(f[accOff + n]).toBe(-7);
          for (let i = 0; i < n; i++) expect(f[xOff + i]).toBe(2 * i + 1); // source is read-only
        }
      }
    }
  });

  it('axpy rounds w to float32 and does mul then add (two roundings), like Math.fround', () => {
    const { k, f } = setup();
    const w = 0.1; // not representable: f32(0.1) != 0.1
    f[0] = 1;
    f[16] = 3;
    k.axpy(0, 64, 1, w);
    expect(f[0]).toBe(Math.fround(1 + Math.fround(Math.fround(w) * 3)));
  });

  it('firstNonFinite: extreme finite values (subnormals, -0, ±max) are clean in blocks and the tail; every NaN/Inf bit pattern is not', () => {
    const { k, f } = setup();
    const u = new Uint32Array(f.buffer);
    const finite = [1.4e-45, -1.4e-45, -0, 0, 3.4028234663852886e38, -3.4028234663852886e38, 1.1754942e-38, -1.1754942e-38];
    for (let i = 0; i < 40; i++) f[i] = finite[i % finite.length]!;
    expect(k.firstNonFinite(0, 40)).toBe(-1);
    for (const bits of [0x7f800000, 0xff800000, 0x7fc00000, 0xffc00001, 0x7f800001, 0xffffffff]) {
      for (const p of [3, 21, 37]) {
        for (let i = 0; i < 40; i++) f[i] = finite[i % finite.length]!;
        u[p] = bits;
        expect(k.firstNonFinite(0, 40)).toBe(p);
      }
    }
  });

  it('firstNonFinite: n = 0 is -1; finds the first dirty element inside a block and in the tail', () => {
    const { k, f } = setup();
    expect(k.firstNonFinite(0, 0)).toBe(-1);
    for (const base of [0, 4]) {
      for (const n of [1, 15, 16, 17, 48, 50]) {
        for (let p = 0; p < n; p++) {
          f.fill(1);
          f[base + n] = NaN; // just past the end: must be ignored
          expect(k.firstNonFinite(base * 4, n)).toBe(-1);
          f[base + p] = -Infinity;
          expect(k.firstNonFinite(base * 4, n)).toBe(p);
        }
      }
    }
  });
});
