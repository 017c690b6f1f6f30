/** Crash-safe small-file writes (keys, control variates): temp file, fsync, rename, fsync the directory. */
import { closeSync, fchmodSync, fsyncSync, openSync, renameSync, writeSync } from 'node:fs';
import path from 'node:path';

/**
 * Replaces `file` with `data` so that a crash leaves either the old or the new content, never half of it, and the
 * new name survives a power cut (the directory is fsynced too). `mode` applies even to a temp file left by a crashed
 * write (open() keeps an existing file's mode).
 */
export function writeFileDurable(file: string, data: string | Uint8Array, mode: number): void {
  const tmp = `${file}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'w', mode);
  try {
    fchmodSync(fd, mode);
    if (typeof data === 'string') writeSync(fd, data);
    else for (let off = 0; off < data.byteLength; ) off += writeSync(fd, data, off);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, file);
  const dir = openSync(path.dirname(file), 'r');
  try {
    fsyncSync(dir);
  } finally {
    closeSync(dir);
  }
}
