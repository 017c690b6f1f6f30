/** Masked-input uploads of a secure-aggregation round: header checks, a few staging buffers, the round's running sum. */
import {
  RejectedUpdateError,
  SECAGG_ENCODING,
  SecAggError,
  ValidationError,
  describeSpecMismatch,
  maskedByteLength,
  maskedFromBytes,
  type ResultHeaderMsg,
  type TensorSpec,
} from '@fedge/proto';
import type { UpdateSlot } from '../strategy/aggregate.js';
import type { Reject } from './intake.js';
import type { Invitee } from './round.js';
import type { RunCore } from './run-core.js';
import type { SecAggRound } from './secagg-round.js';

/** One staging buffer: a masked vector's bytes while they stream in, until it is added to the running sum. */
export class MaskedSlot implements UpdateSlot {
  readonly bytes: Uint8Array;
  /** Unused by masked inputs (StagedUpload's slot type wants one); the bytes are uint32 ring elements, not floats. */
  readonly view: Float32Array;

  constructor(readonly numParams: number, readonly bits: number) {
    this.bytes = new Uint8Array(maskedByteLength(bits, numParams + 1));
    this.view = new Float32Array(0);
  }

  write(byteOffset: number, data: Uint8Array): void {
    if (byteOffset < 0 || byteOffset + data.byteLength > this.bytes.byteLength)
      throw new RejectedUpdateError('oversized', `masked input: ${data.byteLength} bytes at ${byteOffset} overflow its ${this.bytes.byteLength} bytes`);
    this.bytes.set(data, byteOffset);
  }

  /** The masked vector (a view when the ring is 32 bits: no copy of a model-sized buffer; smaller rings are unpacked). */
  vector(): Uint32Array {
    return this.bits === 32 ? new Uint32Array(this.bytes.buffer, 0, this.numParams + 1) : maskedFromBytes(this.bytes, this.bits, this.numParams + 1);
  }
}

/**
 * Masked inputs staged at once: each is added to the sum when complete, so coordinator memory is the running sum plus
 * these few buffers (O(model)), however many agents upload; uploads beyond them wait (FIFO), as plaintext ones do.
 */
export class MaskedSlots {
  private readonly free: MaskedSlot[] = [];
  private readonly waiting: { resolve: (s: MaskedSlot) => void; reject: (e: unknown) => void; signal: AbortSignal; onAbort: () => void }[] = [];

  constructor(numParams: number, readonly bits: number, slots = 2) {
    for (let i = 0; i < slots; i++) this.free.push(new MaskedSlot(numParams, bits));
  }

  acquire(signal: AbortSignal): Promise<MaskedSlot> {
    signal.throwIfAborted();
    const s = this.free.pop();
    if (s) return Promise.resolve(s);
    return new Promise((resolve, reject) => {
      const w = { resolve, reject, signal, onAbort: () => {
        this.waiting.splice(this.waiting.indexOf(w), 1);
        reject(signal.reason);
      } };
      signal.addEventListener('abort', w.onAbort, { once: true });
      this.waiting.push(w);
    });
  }

  release(s: MaskedSlot): void {
    const w = this.waiting.shift();
    if (!w) return void this.free.push(s);
    w.signal.removeEventListener('abort', w.onAbort);
    w.resolve(s);
  }
}

/** The checks of a masked input's header before any byte is taken; `reject` records the failure and throws. */
export function checkMaskedHeader(core: RunCore, h: ResultHeaderMsg, inv: Invitee, sec: SecAggRound, reject: Reject): void {
  if (h.taskId !== inv.task.taskId) reject('unknown_task', `task_id: "${h.taskId}" is not the task sent to this agent`);
  if (h.error) reject('agent_failed', h.error);
  if (h.kind !== 'train') reject('wrong_kind', `kind: expected train, got ${h.kind}`);
  if (h.modelVersion !== inv.baseVersion) reject('wrong_model_version', `model_version: expected ${inv.baseVersion}, got ${h.modelVersion}`);
  for (const [k, v] of Object.entries(h.metrics)) if (!Number.isFinite(v)) reject('non_finite_metric', `metrics.${k}: must be a finite number, got ${v}`);
  if (h.encoding !== SECAGG_ENCODING) reject('bad_encoding', `encoding: this run uses secure aggregation, so "${SECAGG_ENCODING}" is expected; got "${h.encoding}" (is the agent too old for secagg?)`);
  const mismatch = describeSpecMismatch(core.specs, h.tensors as TensorSpec[]);
  if (mismatch) reject(mismatch.includes('dtype') ? 'wrong_dtype' : 'wrong_shape', mismatch);
  const want = maskedByteLength(sec.params.bits, core.agg.numParams + 1);
  if (h.totalBytes !== want) reject('size_mismatch', `total_bytes: a masked input of this model is ${want} bytes ((${core.agg.numParams} values + the weight) x ${sec.params.bits} bits), got ${h.totalBytes}`);
  const early = sec.refuseEarly(h.agentId);
  if (early) reject('secagg_refused', early);
  if (!sec.takesMaskedInput(h.agentId)) reject('secagg_refused', sec.failed ? `the round's secure aggregation failed: ${sec.failed}` : 'the masked-input stage of this round is not open');
}

/** Adds a complete masked input to the round's sum; what the library refuses becomes the agent's rejection. */
export function addMaskedInput(sec: SecAggRound, agentId: string, slot: MaskedSlot, rejected: readonly string[]): void {
  try {
    sec.addMasked(agentId, slot.vector(), [...rejected]);
  } catch (err) {
    if (err instanceof SecAggError || err instanceof ValidationError) throw new RejectedUpdateError('secagg_refused', err.message);
    throw err;
  }
}
