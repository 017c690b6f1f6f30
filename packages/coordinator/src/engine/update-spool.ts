/** Durable spool of accepted updates: written before the agent is acknowledged, folded at round end, then removed. */
import { closeSync, fstatSync, fsyncSync, mkdirSync, openSync, readSync, renameSync, rmSync, writeSync } from 'node:fs';
import path from 'node:path';
import { storageError } from '../store/storage-error.js';

export interface UpdateSpool {
  /** Stores an accepted update durably (fsync'd, atomically named); returns its file name. */
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


  private roundDir(runId: string, round: number): string {
    return path.join(this.dir, safe(runId), String(round));
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
    const fd = openSync(file, 'r');
    try {
      let off = 0;
      while (off < into.byteLength) {
        const n = readSync(fd, into, off, into.byteLength - off, off);
        if (n === 0) throw new Error(`spooled update ${file} is shorter than ${into.byteLength} bytes`);
        off += n;
      }
    } finally {
      closeSync(fd);
    }
  }

  open(file: string, size: number): SpoolReader {
    const fd = openSync(file, 'r');
    try {
      const actual = fstatSync(fd).size;
      if (actual !== size) throw new Error(`spooled update ${file} has ${actual} bytes, expected ${size}`);
    } catch (err) {
      closeSync(fd);
      throw err;
    }
    return {
      read(into, byteOffset) {
        for (let got = 0; got < into.byteLength; ) {
          const n = readSync(fd, into, got, into.byteLength - got, byteOffset + got);
          if (n === 0) throw new Error(`spooled update ${file} ended at byte ${byteOffset + got}`);
          got += n;
        }
      },
      close: () => closeSync(fd),
    };
  }

  removeRound(runId: string, round: number): void {
    rmSync(this.roundDir(runId, round), { recursive: true, force: true });
  }
}
