/** Byte cursors for codec payloads: a growing writer and a bounds-checked reader whose overruns are rejections, not crashes. */
import { RejectedUpdateError } from '../errors.js';

export class ByteWriter {
  private buf: Uint8Array;
  private dv: DataView;
  length = 0;

  constructor(capacity = 1024) {
    this.buf = new Uint8Array(Math.max(16, capacity));
    this.dv = new DataView(this.buf.buffer);
  }

  private ensure(extra: number): void {
    if (this.length + extra <= this.buf.length) return;
    const next = new Uint8Array(Math.max(this.buf.length * 2, this.length + extra));
    next.set(this.buf.subarray(0, this.length));
    this.buf = next;
    this.dv = new DataView(next.buffer);
  }

  u8(v: number): void {
    this.ensure(1);
    this.buf[this.length++] = v;
  }

  u32(v: number): void {
    this.ensure(4);
    this.dv.setUint32(this.length, v, true);
    this.length += 4;
  }

  f32(v: number): void {
    this.ensure(4);
    this.dv.setFloat32(this.length, v, true);
    this.length += 4;
  }

  /** Reserves `n` zeroed bytes and returns a view of them to fill in place. */
  reserve(n: number): Uint8Array {
    this.ensure(n);
    const view = this.buf.subarray(this.length, this.length + n);
    view.fill(0);
    this.length += n;
    return view;
  }

  bytes(b: Uint8Array): void {
    this.ensure(b.length);
    this.buf.set(b, this.length);
    this.length += b.length;
  }

  varint(v: number): void {
    this.ensure(5);
    while (v >= 0x80) {
      this.buf[this.length++] = (v & 0x7f) | 0x80;
      v >>>= 7;
    }
    this.buf[this.length++] = v;
  }

  /** Overwrites the float32 at `pos` (scale shrinking after the fact). */
  patchF32(pos: number, f: (old: number) => number): void {
    this.dv.setFloat32(pos, f(this.dv.getFloat32(pos, true)), true);
  }

  result(): Uint8Array {
    return this.buf.slice(0, this.length);
  }
}

/** Bytes a varint of `v` (< 2^32) takes. */
export function varintSize(v: number): number {
  return v < 0x80 ? 1 : v < 0x4000 ? 2 : v < 0x200000 ? 3 : v < 0x10000000 ? 4 : 5;
}

export class ByteReader {
  pos = 0;
  private readonly dv: DataView;

  constructor(readonly buf: Uint8Array, private readonly what: string) {
    this.dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }

  get left(): number {
    return this.buf.length - this.pos;
  }

  need(n: number, field: string): void {
    if (this.pos + n > this.buf.length)
      throw new RejectedUpdateError('size_mismatch', `${this.what}: ${field} needs ${n} bytes at offset ${this.pos}, only ${this.left} left`);
  }

  u8(field: string): number {
    this.need(1, field);
    return this.buf[this.pos++]!;
  }

  u32(field: string): number {
    this.need(4, field);
    const v = this.dv.getUint32(this.pos, true);
    this.pos += 4;
    return v;
  }

  f32(field: string): number {
    this.need(4, field);
    const v = this.dv.getFloat32(this.pos, true);
    this.pos += 4;
    return v;
  }

  take(n: number, field: string): Uint8Array {
    this.need(n, field);
    const v = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return v;
  }

  /** An unsigned varint of at most 5 bytes below 2^32. */
  varint(field: string): number {
    let v = 0;
    for (let shift = 0; shift < 35; shift += 7) {
      const b = this.u8(field);
      v += (b & 0x7f) * 2 ** shift;
      if (b < 0x80) {
        if (v >= 2 ** 32) break;
        return v;
      }
    }
    throw new RejectedUpdateError('malformed', `${this.what}: ${field} is not a varint below 2^32 (offset ${this.pos})`);
  }

  /** The payload must end exactly here. */
  end(): void {
    if (this.left !== 0) throw new RejectedUpdateError('size_mismatch', `${this.what}: ${this.left} bytes after the end of the encoded update`);
  }
}

/** Unpacks an update chunk by chunk into `out`; throws RejectedUpdateError naming what is wrong. */
export interface UpdateDecoder {
  write(data: Uint8Array): void;
  /** Checks that the payload was complete. */
  end(): void;
}

