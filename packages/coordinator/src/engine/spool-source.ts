/**
 * A round's spooled updates as an UpdateSource (strategy/rules/robust.ts): chunks are read from the files with
 * positional reads into one reused buffer, so a robust aggregate needs O(updates × chunk + model) memory, never
 * O(updates × model).
 */
import { closeSync } from 'node:fs';
import type { UpdateSource } from '../strategy/rules/robust.js';
import { openSpooled, readSpooled, type OpenedUpdate } from './spool-segment.js';

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

/** Agent-name order (code units, not locale): the order a round's updates are aggregated in, whatever order they arrived in. */
export const byName = (a: { name: string }, b: { name: string }): number => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);

/** Opens the updates in agent-name order (the same aggregate whatever order they arrived in). */
export function openSpoolSource(updates: readonly SpooledUpdate[], numParams: number): SpoolSource {
  const entries = [...updates].sort(byName);
  const fds: OpenedUpdate[] = [];
  try {
    for (const e of entries) fds.push(openSpooled(e.file, numParams * 4));
  } catch (err) {
    for (const u of fds) closeSync(u.fd);
    throw new Error(`${(err as Error).message} (${numParams} float32 params)`, { cause: err });
  }
  let buf = new Float32Array(0);
  const read = (k: number, offset: number, length: number): Float32Array => {
    const u = fds[k];
    if (u === undefined) throw new RangeError(`spool source: no update ${k} (${fds.length} open)`);
    if (buf.length < length) buf = new Float32Array(length);
    const bytes = new Uint8Array(buf.buffer, 0, length * 4);
    readSpooled(u, entries[k]!.file, bytes, offset * 4);
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
      for (const u of fds) closeSync(u.fd);
    },
  };
}
