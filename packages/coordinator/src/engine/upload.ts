/** One result upload in progress: validated header, staged bytes, and the checks that run before anything is folded. */
import { RejectedUpdateError, type SubmitReplyMsg, type UpdateDecoder } from '@fedge/proto';
import type { UpdateSlot } from '../strategy/aggregate.js';

/** What a transport drives while an agent streams a result. */
export interface UploadSink {
  /** Stages one chunk; throws RejectedUpdateError (reason: bad_offset, oversized, round_closed...). */
  write(offset: number, data: Uint8Array): void;
  /** Validates the complete payload, folds or durably spools it, and only then returns the reply for the agent. */
  commit(): Promise<SubmitReplyMsg>;
  /** Drops the upload (disconnect, transport error); nothing of it reaches the model. */
  abort(reason: string): void;
}

export interface StagedUploadHooks {
  /**
   * Checks the complete payload and folds (or spools) it; throws RejectedUpdateError to reject. `free` hands the slot
   * back before the commit ends, once its bytes are no longer read (written to the spool, waiting for the disk).
   */
  onComplete(slot: UpdateSlot | undefined, free: () => void): void | Promise<void>;
  onReject(reason: string, message: string): void;
  onAbort(reason: string): void;
  release(slot: UpdateSlot): void;
  isOpen(): boolean;
}

/** Stages bytes into a slot (train results) or expects none (evaluation results). */
export class StagedUpload implements UploadSink {
  private received = 0;
  private done = false;
  /** The payload is complete and being checked, spooled and folded: the slot is in use until commit() returns. */
  private committing = false;
  private freed = false;

  constructor(
    private readonly totalBytes: number,
    private readonly slot: UpdateSlot | undefined,
    /** Unpacks a compressed payload into the slot; absent: the bytes are float32 and copied in as they are. */
    private readonly decoder: UpdateDecoder | undefined,
    private readonly hooks: StagedUploadHooks,
  ) {}

  get bytesReceived(): number {
    return this.received;
  }

  write(offset: number, data: Uint8Array): void {
    this.ensureOpen();
    try {
      if (offset !== this.received) throw new RejectedUpdateError('bad_offset', `chunk.offset: expected ${this.received}, got ${offset}`);
      if (!this.slot || this.received + data.byteLength > this.totalBytes)
        throw new RejectedUpdateError('oversized', `payload exceeds the declared total_bytes (${this.totalBytes})`);
      if (this.decoder) this.decoder.write(data);
      else this.slot.write(offset, data);
      this.received += data.byteLength;
    } catch (err) {
      this.reject(err);
      throw err;
    }
  }

  async commit(): Promise<SubmitReplyMsg> {
    try {
      this.ensureOpen();
      if (this.received !== this.totalBytes)
        throw new RejectedUpdateError('truncated', `payload truncated: received ${this.received} of ${this.totalBytes} bytes`);
      this.decoder?.end();
      this.committing = true;
      await this.hooks.onComplete(this.slot, () => this.free());
      this.finish();
      return { accepted: true, reason: '', message: 'accepted' };
    } catch (err) {
      if (!this.done) this.reject(err);
      if (err instanceof RejectedUpdateError) return { accepted: false, reason: err.reason, message: err.message };
      throw err;
    }
  }

  abort(reason: string): void {
    // A disconnect after the last byte does not undo the commit under way: releasing the slot now would let the next
    // upload overwrite it while this one is still being folded. commit() releases it when it is done.
    if (this.done || this.committing) return;
    this.finish();
    this.hooks.onAbort(reason);
  }

  private ensureOpen(): void {
    if (this.done) throw new RejectedUpdateError('upload_closed', 'this upload was already closed');
    if (!this.hooks.isOpen()) {
      const err = new RejectedUpdateError('round_closed', 'the round closed before this upload completed (deadline or stop)');
      this.reject(err);
      throw err;
    }
  }

  private reject(err: unknown): void {
    if (this.done) return;
    this.finish();
    if (err instanceof RejectedUpdateError) this.hooks.onReject(err.reason, err.message);
    else this.hooks.onReject('internal', err instanceof Error ? err.message : String(err));
  }

  private finish(): void {
    this.done = true;
    this.free();
  }

  private free(): void {
    if (!this.slot || this.freed) return;
    this.freed = true;
    this.hooks.release(this.slot);
  }
}
