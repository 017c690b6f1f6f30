/**
 * A round's spooled updates as an UpdateSource (strategy/rules/robust.ts): chunks are read from the files with
 * positional reads into one reused buffer, so a robust aggregate needs O(updates × chunk + model) memory, never
 * O(updates × model).
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import type { UpdateSource } from '../strategy/rules/robust.js';

export interface SpooledUpdate {
  name: string;
  file: string;
  weight: number;
}

export interface SpoolSource extends UpdateSource {
  /** The updates in source order (agent-name order). */
  readonly entries: readonly SpooledUpdate[];
  /** Closes the files; the source cannot be read after. */
  close(): void;
}

/** Opens the updates in agent-name order (the same aggregate whatever order they arrived in). */
export function openSpoolSource(updates: readonly SpooledUpdate[], numParams: number): SpoolSource {
  const entries = [...updates].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const fds: number[] = [];
  try {
    for (const e of entries) {
      const fd = openSync(e.file, 'r');
      fds.push(fd);
      const size = fstatSync(fd).size;
      if (size !== numParams * 4) throw new Error(`spooled update ${e.file} has ${size} bytes, expected ${numParams * 4} (${numParams} float32 params)`);
    }
  } catch (err) {
    for (const fd of fds) closeSync(fd);
    throw err;
  }
  let buf = new Float32Array(0);
  const read = (k: number, offset: number, length: number): Float32Array => {
    const fd = fds[k];
    if (fd === undefined) throw new RangeError(`spool source: no update ${k} (${fds.length} open)`);
    if (buf.length < length) buf = new Float32Array(length);
    const bytes = new Uint8Array(buf.buffer, 0, length * 4);
    for (let got = 0; got < bytes.byteLength; ) {
      const n = readSync(fd, bytes, got, bytes.byteLength - got, offset * 4 + got);
      if (n === 0) throw new Error(`spooled update ${entries[k]!.file} ended at byte ${offset * 4 + got}`);
      got += n;
    }
    return buf.subarray(0, length);
  };
  let closed = false;
  return {
    count: entries.length,
    numParams,
    read,
    weights: entries.map((e) => e.weight),
    entries,
    close() {
      if (closed) return;
      closed = true;
      for (const fd of fds) closeSync(fd);
    },
  };
}
