/**
 * Error feedback (Seide et al. 2014; Karimireddy et al. 2019) over any pipeline: what compression dropped this round
 * is added to the next round's update, so nothing is lost for good and biased codecs like top-k still converge.
 * Optional DGC momentum correction (Lin et al. 2018): the residual accumulates a velocity u = m u + delta instead of
 * the raw delta, and the velocity of coordinates just sent is cleared (momentum factor masking), so sparse updates
 * carry the momentum they would have had dense. Serializable, so an agent's residual survives its restart.
 */
import { ValidationError } from '../errors.js';
import { createDecoder } from './legacy.js';

const MAGIC = 0x31464546; // "FEF1"

/** Decodes any encoding's payload into a new Float32Array of n values (float32-delta is copied). */
export function decodeEncoded(encoding: string, payload: Uint8Array, n: number): Float32Array {
  const out = new Float32Array(n);
  const dec = createDecoder(encoding, payload.byteLength, out);
  if (dec) {
    dec.write(payload);
    dec.end();
  } else new Uint8Array(out.buffer).set(payload.subarray(0, 4 * n));
  return out;
}

export interface FeedbackOptions {
  /** DGC momentum correction factor in [0, 1); 0 or absent: plain error feedback. */
  momentum?: number;
}

export class ErrorFeedback {
  private residual: Float32Array | undefined;
  private velocity: Float32Array | undefined;
  readonly momentum: number;

  constructor(opts: FeedbackOptions = {}) {
    this.momentum = opts.momentum ?? 0;
  }

  /** Turns this round's delta, in place, into what is meant to be sent: (momentum-corrected) delta + carried residual. */
  apply(delta: Float32Array): void {
    const m = this.momentum;
    if (m > 0) {
      if (!this.velocity || this.velocity.length !== delta.length) this.velocity = new Float32Array(delta.length);
      const u = this.velocity;
      for (let i = 0; i < delta.length; i++) delta[i] = u[i] = m * u[i]! + delta[i]!;
    }
    const r = this.residual;
    if (!r || r.length !== delta.length) return;
    for (let i = 0; i < delta.length; i++) delta[i]! += r[i]!;
  }

  /** Keeps what was meant minus what the receiver decodes from `encoded`: sent + new residual = meant. */
  update(meant: Float32Array, encoded: Uint8Array, encoding: string): void {
    this.updateDecoded(meant, decodeEncoded(encoding, encoded, meant.length));
  }

  /** As update(), with the receiver's decoding already at hand (overwritten with the residual). */
  updateDecoded(meant: Float32Array, decoded: Float32Array): void {
    const u = this.velocity;
    for (let i = 0; i < meant.length; i++) {
      // Momentum factor masking: a coordinate that went out starts its velocity afresh.
      if (u && decoded[i] !== 0) u[i] = 0;
      decoded[i] = meant[i]! - decoded[i]!;
    }
    this.residual = decoded;
  }

  /** L2 norm of the residual now carried (0 when none). */
  norm(): number {
    const r = this.residual;
    if (!r) return 0;
    let s = 0;
    for (let i = 0; i < r.length; i++) s += r[i]! * r[i]!;
    return Math.sqrt(s);
  }

  /** [magic][u32 n][u8 has velocity][f32 momentum][residual n x f32][velocity n x f32]; undefined when nothing is carried. */
  serialize(): Uint8Array | undefined {
    const r = this.residual;
    if (!r) return undefined;
    const n = r.length;
    const u = this.velocity && this.velocity.length === n ? this.velocity : undefined;
    const out = new Uint8Array(13 + 4 * n * (u ? 2 : 1));
    const dv = new DataView(out.buffer);
    dv.setUint32(0, MAGIC, true);
    dv.setUint32(4, n, true);
    dv.setUint8(8, u ? 1 : 0);
    dv.setFloat32(9, this.momentum, true);
    out.set(new Uint8Array(r.buffer, r.byteOffset, r.byteLength), 13);
    if (u) out.set(new Uint8Array(u.buffer, u.byteOffset, u.byteLength), 13 + 4 * n);
    return out;
  }

  /** Restores serialize()'s bytes; a file that does not parse is a ValidationError (the caller starts afresh). */
  static restore(view: Uint8Array, opts: FeedbackOptions = {}): ErrorFeedback {
    // A copy: a Buffer's slice() is a view into a shared pool, and the arrays below take whole ArrayBuffers.
    const bytes = new Uint8Array(view);
    const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    if (bytes.byteLength < 13 || dv.getUint32(0, true) !== MAGIC) throw new ValidationError('error-feedback state: not a fedge residual file');
    const n = dv.getUint32(4, true);
    const hasU = dv.getUint8(8) === 1;
    if (bytes.byteLength !== 13 + 4 * n * (hasU ? 2 : 1)) throw new ValidationError(`error-feedback state: ${bytes.byteLength} bytes do not hold ${n} values`);
    const ef = new ErrorFeedback(opts);
    ef.residual = new Float32Array(bytes.slice(13, 13 + 4 * n).buffer);
    if (hasU && ef.momentum > 0) ef.velocity = new Float32Array(bytes.slice(13 + 4 * n).buffer);
    return ef;
  }
}
