/** Durable spool of accepted updates: written before the agent is acknowledged, folded at round end, then removed. */
import { closeSync, fsyncSync, mkdirSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import path from 'node:path';
import { storageError } from '../store/storage-error.js';
import { openSpooled, readSpooled, Segment } from './spool-segment.js';

export interface UpdateSpool {
  /**
   * Appends an accepted update to its round's segment; resolves with its reference once it is durable (group commit:
   * one fdatasync for every update written while the previous one ran). Nothing is written on the event loop.
   * `written`: called once `bytes` are in the file, before the sync (the caller's buffer may be reused from then).
   */
  append(runId: string, round: number, key: string, bytes: Uint8Array, written?: () => void): Promise<string>;
  /** Stores an accepted update in a file of its own, synchronously (fsync'd, atomically named); returns its file name. */
  write(runId: string, round: number, key: string, bytes: Uint8Array): string;
  /** Reads a stored update into `into` (exactly its size). */
  read(file: string, into: Uint8Array): void;
  /** Opens a stored update of exactly `size` bytes (checked first) for reads of pieces: a fold through a small buffer. */
  open(file: string, size: number): SpoolReader;
  /** Drops a finished round's updates. */
  removeRound(runId: string, round: number): void;
}

/** Positional reads of one stored update. */
export interface SpoolReader {
  /** Fills `into` with the update's bytes from byteOffset; throws if the file ends first. */
  read(into: Uint8Array, byteOffset: number): void;
  close(): void;
}

const safe = (s: string): string => s.replace(/[^A-Za-z0-9._-]/g, '_');

export class DiskSpool implements UpdateSpool {
  /**
   * @param durable false for a scratch spool (a non-durable run's robust round): no fsyncs, the files only have to
   * outlive the round, not a crash
   */
  constructor(
    private readonly dir: string,
    private readonly durable = true,
  ) {}

  /** Each round's open segment (one writer per data directory: the coordinator holding its store). */
  private readonly segments = new Map<string, Promise<Segment>>();

  private roundDir(runId: string, round: number): string {
    return path.join(this.dir, safe(runId), String(round));
  }

  async append(runId: string, round: number, key: string, bytes: Uint8Array, written?: () => void): Promise<string> {
    const dir = this.roundDir(runId, round);
    let seg = this.segments.get(dir);
    if (!seg) {
      seg = Segment.open(path.join(dir, 'updates.spool'), this.durable);
      this.segments.set(dir, seg);
      // A segment that could not be opened (disk full, read-only) is tried again by the next update.
      seg.catch(() => this.segments.get(dir) === seg && this.segments.delete(dir));
    }
    try {
      return await (await seg).append(key, bytes, written);
    } catch (err) {
      throw storageError(err, path.join(dir, 'updates.spool')) ?? err;
    }
  }

  write(runId: string, round: number, key: string, bytes: Uint8Array): string {
    const dir = this.roundDir(runId, round);
    const file = path.join(dir, `${safe(key)}.bin`);
    const tmp = `${file}.tmp-${process.pid}`;
    try {
      mkdirSync(dir, { recursive: true });
      const fd = openSync(tmp, 'w');
      try {
        for (let off = 0; off < bytes.byteLength; ) off += writeSync(fd, bytes, off, bytes.byteLength - off);
        if (this.durable) fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      renameSync(tmp, file);
    } catch (err) {
      // A half-written file would only take more of a disk that is probably full.
      try {
        rmSync(tmp, { force: true });
      } catch {
        // a read-only file system: nothing was written either
      }
      throw storageError(err, tmp) ?? err;
    }
    if (!this.durable) return file;
    // The rename is durable only once the directory entry is.
    const dfd = openSync(dir, 'r');
    try {
      fsyncSync(dfd);
    } finally {
      closeSync(dfd);
    }
    return file;
  }

  read(file: string, into: Uint8Array): void {
    const reader = this.open(file, into.byteLength);
    try {
      reader.read(into, 0);
    } finally {
      reader.close();
    }
  }

  open(file: string, size: number): SpoolReader {
    const u = openSpooled(file, size);
    return { read: (into, byteOffset) => readSpooled(u, file, into, byteOffset), close: () => closeSync(u.fd) };
  }

  removeRound(runId: string, round: number): void {
    const dir = this.roundDir(runId, round);
    const seg = this.segments.get(dir);
    this.segments.delete(dir);
    rmSync(dir, { recursive: true, force: true });
    // Writes still in flight land in an unlinked file or a closed handle (the intake refuses them: the round closed);
    // a segment still being opened recreates the directory, removed again once it is closed.
    if (seg) void seg.then((s) => s.close()).catch(() => undefined).then(() => rmSync(dir, { recursive: true, force: true }));
  }
}
