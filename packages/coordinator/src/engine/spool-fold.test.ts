/** Folding spooled updates piece by piece from their files (RunSpools.foldFromSpool's path): exact, and refused before any piece when the file is the wrong size. */
import { mkdtempSync, rmSync, truncateSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createRng } from '@fedge/proto';
import { SCRATCH_BYTES, StreamingFedAvg } from '../strategy/aggregate.js';
import { DiskSpool } from './update-spool.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function setup(n: number): { spool: DiskSpool; files: string[]; updates: Float32Array[] } {
  const dir = mkdtempSync(path.join(tmpdir(), 'fedge-spool-fold-'));
  dirs.push(dir);
  const spool = new DiskSpool(dir, false);
  const r = createRng(21);
  const updates = Array.from({ length: 3 }, () => Float32Array.from({ length: n }, () => r() * 2 - 1));
  const files = updates.map((u, i) => spool.write('run', 1, `agent-${i}`, new Uint8Array(u.buffer)));
  return { spool, files, updates };
}

const bits = (x: Float32Array): number[] => Array.from(new Uint32Array(x.buffer, x.byteOffset, x.length));

describe('spooled updates folded piece by piece', () => {
  const n = 2 * (SCRATCH_BYTES / 4) + 1001; // three reads, the last one short

  it('gives the exact accumulator of reading each file whole into a slot and folding it', async () => {
    const { spool, files } = setup(n);
    const whole = StreamingFedAvg.create(n);
    for (const [i, f] of files.entries()) {
      const slot = await whole.acquire();
      spool.read(f, new Uint8Array(slot.view.buffer, slot.view.byteOffset, slot.view.byteLength));
      whole.fold(slot, 10 + i);
      whole.release(slot);
    }
    const pieces = StreamingFedAvg.create(n);
    for (const [i, f] of files.entries()) {
      const reader = spool.open(f, n * 4);
      pieces.foldPieces(10 + i, (piece, off) => reader.read(piece, off));
      reader.close();
    }
    expect(bits(pieces.accumulatorView())).toEqual(bits(whole.accumulatorView()));
    expect(pieces.totalWeight).toBe(whole.totalWeight);
  });

  it('refuses a file of the wrong size before anything is folded, naming the file and both sizes', () => {
    const { spool, files } = setup(n);
    truncateSync(files[0]!, n * 4 - 4);
    expect(() => spool.open(files[0]!, n * 4)).toThrow(`spooled update ${files[0]} has ${n * 4 - 4} bytes, expected ${n * 4}`);
    const reader = spool.open(files[1]!, n * 4);
    const into = new Uint8Array(8);
    expect(() => reader.read(into, n * 4 - 4)).toThrow(/ended at byte/);
    reader.close();
  });
});
