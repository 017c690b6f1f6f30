/** WebAssembly SIMD kernels for aggregation (axpy, first-non-finite), hand-assembled from TypeScript at load time. */

// Why hand-assembled: a plain JS `acc[i] += w * x[i]` loop over Float32Arrays runs at
// ~0.2x memcpy bandwidth, the same loop as f32x4 WebAssembly reaches memory bandwidth.
// The project ships TypeScript only (no .wat/.c compiled by outside tools), and the
// kernels need a dozen opcodes, so this file encodes the binary itself. Every function
// body below is written as a flat instruction list with the equivalent WAT in comments.
//
// The module imports its memory ("env" "memory") instead of defining it: the caller
// allocates one WebAssembly.Memory of fixed size up front, so views on it never detach
// and the kernels read update slots in place, without a copy.

// ---------------------------------------------------------------------------------------
// Minimal typings. The shared tsconfig has lib ES2022 without DOM, and @types/node does
// not declare the WebAssembly namespace, so the few members used here are declared
// locally (module scope: no clash if a DOM lib is ever added elsewhere).

/** The subset of WebAssembly.Memory used by the aggregator. */
export interface WasmMemory {
  readonly buffer: ArrayBuffer;
}

interface WasmApi {
  validate(bytes: Uint8Array): boolean;
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: Record<string, Record<string, unknown>>) => { readonly exports: Record<string, unknown> };
  Memory: new (descriptor: { initial: number; maximum: number }) => WasmMemory;
}

/** The host's WebAssembly API, or undefined where the runtime has none. */
export const wasmApi: WasmApi | undefined = (globalThis as { WebAssembly?: WasmApi }).WebAssembly;

/** Bytes in one WebAssembly page. */
export const WASM_PAGE_BYTES = 65536;
/** Largest memory the kernels accept: one page short of 4 GiB, so `end` pointers never wrap to 0 in i32 arithmetic. */
export const WASM_MAX_PAGES = 65535;

// ---------------------------------------------------------------------------------------
// Binary encoding helpers (WebAssembly core spec §5 + SIMD proposal, now standard).

/** Unsigned LEB128 (section sizes, indices, memarg fields). */
function uleb(value: number): number[] {
  const out: number[] = [];
  let v = value >>> 0;
  do {
    let byte = v & 0x7f;
    v >>>= 7;
    if (v !== 0) byte |= 0x80;
    out.push(byte);
  } while (v !== 0);
  return out;
}

/** Signed LEB128 of an i32 (operand of i32.const). */
function sleb(value: number): number[] {
  const out: number[] = [];
  let v = value | 0;
  for (;;) {
    const byte = v & 0x7f;
    v >>= 7;
    const done = (v === 0 && (byte & 0x40) === 0) || (v === -1 && (byte & 0x40) !== 0);
    out.push(done ? byte : byte | 0x80);
    if (done) return out;
  }
}

function utf8Name(s: string): number[] {
  const bytes = Array.from(new TextEncoder().encode(s));
  return [...uleb(bytes.length), ...bytes];
}

/** A length-prefixed vector of already encoded items. */
function vec(items: number[][]): number[] {
  return [...uleb(items.length), ...items.flat()];
}

function section(id: number, payload: number[]): number[] {
  return [id, ...uleb(payload.length), ...payload];
}

/** Value types. */
const I32 = 0x7f;
const F32 = 0x7d;
const V128 = 0x7b;

/** Structured-control block type "no result". */
const VOID = 0x40;

/**
 * Instruction emitter: one method per opcode actually used, appending bytes.
 * Memory accesses take (log2 alignment, constant offset) — the offset immediate lets the
 * unrolled loop address 4 consecutive vectors from one pointer without extra adds.
 */
class Asm {
  readonly code: number[] = [];

  private op(...bytes: number[]): this {
    this.code.push(...bytes);
    return this;
  }
  private simd(opcode: number, ...imm: number[]): this {
    return this.op(0xfd, ...uleb(opcode), ...imm);
  }

  // control
  block(): this { return this.op(0x02, VOID); }
  loop(): this { return this.op(0x03, VOID); }
  if_(): this { return this.op(0x04, VOID); }
  end(): this { return this.op(0x0b); }
  br(depth: number): this { return this.op(0x0c, ...uleb(depth)); }
  brIf(depth: number): this { return this.op(0x0d, ...uleb(depth)); }
  return_(): this { return this.op(0x0f); }

  // locals
  get(i: number): this { return this.op(0x20, ...uleb(i)); }
  set(i: number): this { return this.op(0x21, ...uleb(i)); }
  tee(i: number): this { return this.op(0x22, ...uleb(i)); }

  // i32
  i32Const(c: number): this { return this.op(0x41, ...sleb(c)); }
  i32Load(offset = 0): this { return this.op(0x28, 2, ...uleb(offset)); }
  i32Eq(): this { return this.op(0x46); }
  i32GeU(): this { return this.op(0x4f); }
  i32Add(): this { return this.op(0x6a); }
  i32Sub(): this { return this.op(0x6b); }
  i32And(): this { return this.op(0x71); }
  i32Shl(): this { return this.op(0x74); }
  i32ShrU(): this { return this.op(0x76); }

  // f32
  f32Load(offset = 0): this { return this.op(0x2a, 2, ...uleb(offset)); }
  f32Store(offset = 0): this { return this.op(0x38, 2, ...uleb(offset)); }
  f32Add(): this { return this.op(0x92); }
  f32Mul(): this { return this.op(0x94); }

  // v128 (0xfd prefix); alignment hint 4 = 16 bytes, which the allocator guarantees
  v128Load(offset = 0): this { return this.simd(0x00, 4, ...uleb(offset)); }
  v128Store(offset = 0): this { return this.simd(0x0b, 4, ...uleb(offset)); }
  i32x4Splat(): this { return this.simd(0x11); }
  f32x4Splat(): this { return this.simd(0x13); }
  i32x4Eq(): this { return this.simd(0x37); }
  v128And(): this { return this.simd(0x4e); }
  v128Or(): this { return this.simd(0x50); }
  v128AnyTrue(): this { return this.simd(0x53); }
  f32x4Add(): this { return this.simd(0xe4); }
  f32x4Sub(): this { return this.simd(0xe5); }
  f32x4Mul(): this { return this.simd(0xe6); }

  /** `local += step` for an i32 pointer local. */
  bump(local: number, step: number): this {
    return this.get(local).i32Const(step).i32Add().set(local);
  }
  /** `local = base + ((n & mask) << 2)`: end pointer of the first (n & mask) floats. */
  endPtr(local: number, base: number, n: number, mask: number): this {
    this.get(base).get(n);
    if (mask !== -1) this.i32Const(mask).i32And();
    return this.i32Const(2).i32Shl().i32Add().set(local);
  }
}

// ---------------------------------------------------------------------------------------
// Kernels. Pointers are byte addresses into the imported memory; n counts floats.

/** Floats per unrolled main-loop iteration in axpy: 4 vectors, enough independent work to hide load latency. */
const AXPY_UNROLL = 4;

/**
 * axpy(acc: i32, x: i32, n: i32, w: f32): acc[i] += w * x[i] for i < n.
 * f32x4 mul then add (two roundings per element, same as the scalar tail), so results
 * do not depend on where an element falls relative to the vector/tail split.
 */
function axpyBody(): { locals: Array<[number, number]>; code: number[] } {
  const acc = 0, x = 1, n = 2, w = 3; // params
  const wv = 4, end16 = 5, end4 = 6, endAll = 7; // locals
  const a = new Asm();
  a.get(w).f32x4Splat().set(wv); //                wv = f32x4.splat(w)
  a.endPtr(end16, acc, n, -16); //                 end16 = acc + 4*(n & ~15)
  a.endPtr(end4, acc, n, -4); //                   end4  = acc + 4*(n & ~3)
  a.endPtr(endAll, acc, n, -1); //                 endAll = acc + 4*n

  // main loop: 16 floats per iteration while acc < end16
  a.block().loop();
  a.get(acc).get(end16).i32GeU().brIf(1);
  for (let k = 0; k < AXPY_UNROLL; k++) {
    const off = 16 * k; //                         v128.store off (acc, acc[off] + x[off] * wv)
    a.get(acc).get(acc).v128Load(off).get(x).v128Load(off).get(wv).f32x4Mul().f32x4Add().v128Store(off);
  }
  a.bump(acc, 16 * AXPY_UNROLL).bump(x, 16 * AXPY_UNROLL).br(0);
  a.end().end();

  // up to 3 leftover whole vectors
  a.block().loop();
  a.get(acc).get(end4).i32GeU().brIf(1);
  a.get(acc).get(acc).v128Load().get(x).v128Load().get(wv).f32x4Mul().f32x4Add().v128Store();
  a.bump(acc, 16).bump(x, 16).br(0);
  a.end().end();

  // scalar tail: up to 3 floats
  a.block().loop();
  a.get(acc).get(endAll).i32GeU().brIf(1);
  a.get(acc).get(acc).f32Load().get(x).f32Load().get(w).f32Mul().f32Add().f32Store();
  a.bump(acc, 4).bump(x, 4).br(0);
  a.end().end();

  a.end(); // function
  return { locals: [[1, V128], [3, I32]], code: a.code };
}

/** IEEE-754 binary32 exponent field: all ones means NaN or ±Inf. */
const EXP_MASK = 0x7f800000;

/**
 * firstNonFinite(p: i32, n: i32) -> i32: index of the first NaN/±Inf among n floats, or -1.
 * Lane test x - x, which is +0 (all bits clear) for every finite x and NaN for ±Inf and NaN;
 * four such results are OR-ed per 16-float block and tested once with any_true, so the clean
 * (overwhelmingly common) case costs 2 ops per vector (the exponent-mask test, and + eq,
 * took 3: the check runs on every piece an upload writes, ~1.3x faster this way). The loop
 * stops at the first dirty block; the scalar loop then locates the element within it (or
 * scans the < 16 float tail) with the exponent-bits test.
 */
function firstNonFiniteBody(): { locals: Array<[number, number]>; code: number[] } {
  const p = 0, n = 1; // params
  const base = 2, end16 = 3, endAll = 4, t = 5; // locals
  const a = new Asm();
  a.get(p).set(base);
  a.endPtr(end16, p, n, -16);
  a.endPtr(endAll, p, n, -1);

  a.block().loop();
  a.get(p).get(end16).i32GeU().brIf(1);
  for (let k = 0; k < 4; k++) {
    a.get(p).v128Load(16 * k).tee(t).get(t).f32x4Sub(); // x - x: +0 where finite, NaN (bits != 0) where not
    if (k > 0) a.v128Or();
  }
  a.v128AnyTrue().brIf(1); //                       dirty block: leave with p at its start
  a.bump(p, 64).br(0);
  a.end().end();

  a.block().loop();
  a.get(p).get(endAll).i32GeU().brIf(1);
  a.get(p).i32Load().i32Const(EXP_MASK).i32And().i32Const(EXP_MASK).i32Eq();
  a.if_().get(p).get(base).i32Sub().i32Const(2).i32ShrU().return_().end(); // (p - base) / 4
  a.bump(p, 4).br(0);
  a.end().end();

  a.i32Const(-1);
  a.end(); // function
  return { locals: [[3, I32], [1, V128]], code: a.code };
}

/** Assemble the kernel module: 2 types, 1 imported memory, 2 exported functions. */
function assembleKernelModule(): Uint8Array {
  const funcType = (params: number[], results: number[]): number[] => [0x60, ...vec(params.map((t) => [t])), ...vec(results.map((t) => [t]))];
  const types = [funcType([I32, I32, I32, F32], []), funcType([I32, I32], [I32])];
  const funcs: Array<{ name: string; type: number; body: { locals: Array<[number, number]>; code: number[] } }> = [
    { name: 'axpy', type: 0, body: axpyBody() },
    { name: 'firstNonFinite', type: 1, body: firstNonFiniteBody() },
  ];
  // import "env" "memory" (memory kind 0x02, limits flag 0 = min only, min 0): accepts any memory the caller made
  const memoryImport = [...utf8Name('env'), ...utf8Name('memory'), 0x02, 0x00, 0x00];
  const bodies = funcs.map(({ body }) => {
    const payload = [...vec(body.locals.map(([count, type]) => [...uleb(count), type])), ...body.code];
    return [...uleb(payload.length), ...payload];
  });
  return new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // "\0asm", version 1
    ...section(1, vec(types)),
    ...section(2, vec([memoryImport])),
    ...section(3, vec(funcs.map((f) => uleb(f.type)))),
    ...section(7, vec(funcs.map((f, i) => [...utf8Name(f.name), 0x00, ...uleb(i)]))),
    ...section(10, vec(bodies)),
  ]);
}

/** The encoded kernel module (exported for tests and inspection). */
export const KERNEL_WASM: Uint8Array = assembleKernelModule();

/** Kernel entry points bound to one memory. Pointers are byte offsets (16-byte aligned for speed). */
export interface SimdKernels {
  axpy(accPtr: number, xPtr: number, n: number, w: number): void;
  firstNonFinite(ptr: number, n: number): number;
}

let supported: boolean | undefined;
let compiled: object | undefined;

/**
 * Whether this runtime runs WebAssembly SIMD. Validating the kernel module itself is the
 * most direct probe: it succeeds exactly when every opcode the kernels use is accepted.
 */
export function simdSupported(): boolean {
  if (supported === undefined) {
    try {
      supported = wasmApi !== undefined && wasmApi.validate(KERNEL_WASM);
    } catch {
      supported = false;
    }
  }
  return supported;
}

/** Instantiate the kernels on `memory`. Synchronous: the module is ~300 bytes, compiled once per process. */
export function instantiateSimdKernels(memory: WasmMemory): SimdKernels {
  if (wasmApi === undefined || !simdSupported()) throw new Error('WebAssembly SIMD is not available in this runtime');
  compiled ??= new wasmApi.Module(KERNEL_WASM);
  const { exports } = new wasmApi.Instance(compiled, { env: { memory } });
  return {
    axpy: exports['axpy'] as SimdKernels['axpy'],
    firstNonFinite: exports['firstNonFinite'] as SimdKernels['firstNonFinite'],
  };
}
