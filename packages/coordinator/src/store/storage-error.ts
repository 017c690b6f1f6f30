/** Tells a failed write of the data directory (no space, read-only, I/O error) from other errors, as a StorageError naming the path and the free space. */
import { accessSync, constants, statSync, statfsSync } from 'node:fs';
import path from 'node:path';
import { StorageError } from '@fedge/proto';

/** errno codes of a file system that cannot take writes; EACCES/EPERM: a directory this user may not write. */
const ERRNO = new Set(['ENOSPC', 'EDQUOT', 'EROFS', 'EIO', 'EACCES', 'EPERM']);
/**
 * What SQLite says for the same (node-sqlite3-wasm surfaces no errno: its VFS turns ENOSPC during a write into
 * SQLITE_IOERR, "disk I/O error"; SQLITE_FULL and SQLITE_READONLY have their own messages).
 */
const SQLITE = /disk I\/O error|database or disk is full|attempt to write a readonly database|readonly database|SQLITE_(FULL|IOERR|READONLY|CANTOPEN)/i;

const WHY: Record<string, string> = {
  ENOSPC: 'no space left on the device',
  EDQUOT: 'disk quota exceeded',
  EROFS: 'the file system is read-only',
  EIO: 'I/O error',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
};

/** Bytes free for this user on the file system holding `p` (its nearest existing ancestor); undefined if unknown. */
export function freeBytes(p: string): number | undefined {
  for (let dir = path.resolve(p); ; dir = path.dirname(dir)) {
    try {
      const s = statfsSync(dir);
      return Number(s.bavail) * Number(s.bsize);
    } catch {
      if (dir === path.dirname(dir)) return undefined;
    }
  }
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

/** True when `err` is a write the file system refused (see ERRNO, SQLITE), whatever its class. */
export function isStorageFault(err: unknown): boolean {
  if (err instanceof StorageError) return true;
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && ERRNO.has(code)) return true;
  return err instanceof Error && SQLITE.test(err.message);
}

/**
 * `err` as a StorageError when it is one (see isStorageFault), else undefined. `target` is the file being written
 * when the error does not name one itself (SQLite's do not).
 */
export function storageError(err: unknown, target: string): StorageError | undefined {
  if (err instanceof StorageError) return err;
  if (!isStorageFault(err)) return undefined;
  const e = err as NodeJS.ErrnoException;
  const file = typeof e.path === 'string' ? e.path : target;
  const free = freeBytes(file);
  const why = (e.code && WHY[e.code]) ?? e.message;
  const space = free === undefined ? 'free space unknown' : `${formatBytes(free)} free there`;
  return new StorageError(
    file,
    free,
    `cannot write ${file}: ${why}${e.code && WHY[e.code] ? ` (${e.code})` : ''}; ${space}. The data directory must be writable with room to spare: ` +
      'free space (or fix the disk or mount), then restart fedge serve; runs that were active resume from their last saved round.',
    { cause: err },
  );
}

/**
 * Why `p` (or, while it does not exist, its nearest existing ancestor) cannot be written, as the errno error access(2)
 * gives; undefined when it can. For errors that hide the cause: a recursive mkdir on a read-only mount says ENOENT.
 */
export function unwritable(p: string): NodeJS.ErrnoException | undefined {
  let dir = path.resolve(p);
  for (;;) {
    try {
      statSync(dir);
      break;
    } catch {
      if (dir === path.dirname(dir)) return undefined;
      dir = path.dirname(dir);
    }
  }
  try {
    accessSync(dir, constants.W_OK);
    return undefined;
  } catch (err) {
    return err as NodeJS.ErrnoException;
  }
}

/** Runs `fn`; a storage fault it throws becomes a StorageError about `target`, anything else passes through. */
export async function guardStorage<T>(target: string, fn: () => Promise<T> | T): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw storageError(err, target) ?? err;
  }
}
