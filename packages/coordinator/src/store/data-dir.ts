/**
 * One coordinator per data directory: DATA_DIR/coordinator.lock holds the owner's pid and host. A second
 * coordinator on the same directory is refused (E_DATA_DIR_LOCKED); a lock left by a process that no longer
 * exists (kill -9, power loss) is taken over, and only then may leftovers of that process be cleaned up.
 */
import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeSync, fsyncSync } from 'node:fs';
import { hostname } from 'node:os';
import path from 'node:path';
import { FedgeError } from '@fedge/proto';

export const LOCK_FILE = 'coordinator.lock';

interface LockInfo {
  pid: number;
  host: string;
  startedAt: string;
}

export interface DataDirLock {
  dir: string;
  /** Set when the lock was taken over from a process that had died: its leftovers may be cleaned up. */
  stale?: LockInfo;
  release(): void;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function write(file: string, flags: string): void {
  const fd = openSync(file, flags, 0o644);
  try {
    const info: LockInfo = { pid: process.pid, host: hostname(), startedAt: new Date().toISOString() };
    writeSync(fd, JSON.stringify(info));
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Directories this process holds: its own pid in a lock file is otherwise taken for a dead predecessor's. */
const heldHere = new Set<string>();

export function lockDataDir(dir: string): DataDirLock {
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, LOCK_FILE);
  if (heldHere.has(file)) {
    throw new FedgeError('E_DATA_DIR_LOCKED', `data directory ${dir} is already in use by this process (pid ${process.pid})`);
  }
  let stale: LockInfo | undefined;
  try {
    write(file, 'wx');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    let info: Partial<LockInfo> = {};
    try {
      info = JSON.parse(readFileSync(file, 'utf8')) as Partial<LockInfo>;
    } catch {
      // An empty or torn lock file: its writer died before finishing it.
    }
    const pid = typeof info.pid === 'number' ? info.pid : undefined;
    // In a container a restarted coordinator often gets the same pid as the one that died: that is not an owner.
    if (pid !== undefined && pid !== process.pid && (info.host === undefined || info.host === hostname()) && alive(pid)) {
      throw new FedgeError(
        'E_DATA_DIR_LOCKED',
        `data directory ${dir} is in use by another coordinator (pid ${pid}${info.host ? ` on ${info.host}` : ''}, since ${info.startedAt ?? '?'}); ` +
          `stop it, or use another --data-dir. If no coordinator is running, delete ${file}.`,
      );
    }
    stale = { pid: pid ?? -1, host: info.host ?? '?', startedAt: info.startedAt ?? '?' };
    write(file, 'w');
  }
  heldHere.add(file);
  let held = true;
  return {
    dir,
    ...(stale ? { stale } : {}),
    release() {
      if (!held) return;
      held = false;
      heldHere.delete(file);
      rmSync(file, { force: true });
    },
  };
}
