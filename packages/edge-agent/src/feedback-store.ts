/**
 * The error-feedback residual of the run this agent trains for, kept on disk in STATE_DIR/feedback.bin
 * ([u32 run id length][run id][ErrorFeedback.serialize()]) with a crash-safe write after every accepted update, so a
 * restarted agent continues with what its codec dropped instead of losing it. One run at a time (memory and disk stay
 * at one model): a task of another run id discards it. Without a directory (embedded agents, tests) it lives in memory.
 */
import { readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { ErrorFeedback, writeFileDurable } from '@fedge/proto';
import { moduleLogger } from './log.js';

const log = moduleLogger('feedback');

export class FeedbackStore {
  private current: { runId: string; ef: ErrorFeedback } | undefined;

  constructor(readonly dir?: string) {}

  get file(): string | undefined {
    return this.dir ? path.join(this.dir, 'feedback.bin') : undefined;
  }

  /** The run's error feedback: in memory, else restored from disk, else new; another run's residual is discarded. */
  get(runId: string, momentum: number): ErrorFeedback {
    if (this.current?.runId === runId && this.current.ef.momentum === momentum) return this.current.ef;
    const ef = this.read(runId, momentum) ?? new ErrorFeedback({ momentum });
    this.current = { runId, ef };
    return ef;
  }

  /** Writes the run's residual (after the coordinator accepted the update it belongs to). */
  save(runId: string): void {
    const file = this.file;
    const c = this.current;
    if (!file || c?.runId !== runId) return;
    const state = c.ef.serialize();
    if (!state) return;
    const id = Buffer.from(runId, 'utf8');
    const out = new Uint8Array(4 + id.length + state.length);
    new DataView(out.buffer).setUint32(0, id.length, true);
    out.set(id, 4);
    out.set(state, 4 + id.length);
    writeFileDurable(file, out, 0o600);
  }

  private read(runId: string, momentum: number): ErrorFeedback | undefined {
    const file = this.file;
    if (!file) return undefined;
    let bytes: Buffer;
    try {
      bytes = readFileSync(file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
    const len = bytes.byteLength >= 4 ? bytes.readUInt32LE(0) : -1;
    const stored = len >= 0 && 4 + len <= bytes.byteLength ? bytes.subarray(4, 4 + len).toString('utf8') : undefined;
    if (stored !== runId) {
      // A new run starts from no residual: the old one belongs to another model.
      log.info({ runId, previous: stored, file }, 'discarding the error-feedback residual of another run');
      rmSync(file, { force: true });
      return undefined;
    }
    try {
      const ef = ErrorFeedback.restore(bytes.subarray(4 + len), { momentum });
      log.info({ runId, file, residualNorm: ef.norm() }, 'error-feedback residual read from disk');
      return ef;
    } catch (err) {
      log.warn({ runId, file, err: (err as Error).message }, 'unreadable error-feedback residual: starting afresh');
      return undefined;
    }
  }
}
