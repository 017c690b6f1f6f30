/** The durable spool's round segments: group-committed appends read back exactly, torn tails and damage detected, a removed round's late writes refused. */
import { appendFileSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { openSpoolSource } from './spool-source.js';
import { DiskSpool } from './update-spool.js';

const dirs: string[] = [];
const spoolDir = (): string => {
  const d = mkdtempSync(path.join(tmpdir(), 'fedge-segment-'));
  dirs.push(d);
  return d;
};
afterEach(() => {
  vi.restoreAllMocks();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const update = (n: number, seed: number): Float32Array => Float32Array.from({ length: n }, (_, i) => Math.sin(seed * 1000 + i));
const bytesOf = (u: Float32Array): Uint8Array => new Uint8Array(u.buffer, u.byteOffset, u.byteLength);

/** FileHandle's prototype (node:fs/promises exports the class only as a type), to count fdatasyncs. */
async function fileHandleProto(): Promise<FileHandle> {
  const h = await open(__filename, 'r');
  await h.close();
  return Object.getPrototypeOf(h) as FileHandle;
}

function readBack(spool: DiskSpool, ref: string, n: number): Float32Array {
  const out = new Float32Array(n);
  spool.read(ref, bytesOf(out));
  return out;
}

describe('spool segments', () => {
  it('appends concurrent updates into one segment per round, each read back exactly, with fewer fdatasyncs than updates', async () => {
    const syncs = vi.spyOn(await fileHandleProto(), 'datasync');
    const spool = new DiskSpool(spoolDir());
    const n = 25_000;
    const us = Array.from({ length: 40 }, (_, k) => update(n, k));
    const refs = await Promise.all(us.map((u, k) => spool.append('run/1', 3, `agent-${k}`, bytesOf(u))));
    expect(new Set(refs.map((r) => r.split('#')[0])).size).toBe(1);
    expect(refs[0]).toMatch(/run_1[/\\]3[/\\]updates\.spool#0$/);
    for (const [k, ref] of refs.entries()) expect(readBack(spool, ref, n)).toEqual(us[k]);
    // Group commit: every update is covered by a sync, but one sync covers many.
    expect(syncs.mock.calls.length).toBeGreaterThan(0);
    expect(syncs.mock.calls.length, `${syncs.mock.calls.length} fdatasyncs for ${us.length} updates`).toBeLessThan(us.length / 2);
    // The chunked source of a robust round reads the same records.
    const source = openSpoolSource(refs.map((file, k) => ({ name: `agent-${String(k).padStart(2, '0')}`, file, weight: 1 })), n);
    try {
      expect(source.read(7, 100, 5)).toEqual(us[7]!.subarray(100, 105));
    } finally {
      source.close();
    }
    spool.removeRound('run/1', 3);
    expect(existsSync(refs[0]!.split('#')[0]!)).toBe(false);
  });

  it('a scratch spool (not durable) never syncs', async () => {
    const syncs = vi.spyOn(await fileHandleProto(), 'datasync');
    const spool = new DiskSpool(spoolDir(), false);
    const ref = await spool.append('run', 1, 'a', bytesOf(update(10, 1)));
    expect(readBack(spool, ref, 10)).toEqual(update(10, 1));
    expect(syncs).not.toHaveBeenCalled();
    spool.removeRound('run', 1);
  });

  it('after a crash that tore the last record, a restarted writer appends past it and every named record reads back', async () => {
    const dir = spoolDir();
    const first = new DiskSpool(dir);
    const a = await first.append('run', 1, 'a', bytesOf(update(1000, 1)));
    const segment = a.split('#')[0]!;
    // A torn record: a header and part of a payload, never acknowledged so never named.
    const whole = readFileSync(segment);
    appendFileSync(segment, whole.subarray(0, 2000));
    const restarted = new DiskSpool(dir);
    const b = await restarted.append('run', 1, 'b', bytesOf(update(1000, 2)));
    expect(Number(b.split('#')[1])).toBe(whole.byteLength + 2000);
    expect(readBack(restarted, a, 1000)).toEqual(update(1000, 1));
    expect(readBack(restarted, b, 1000)).toEqual(update(1000, 2));
    // The torn bytes are no record: a reference to them is refused, not read.
    expect(() => readBack(restarted, `${segment}#${whole.byteLength}`, 1000)).toThrow(/ended at byte|checksum mismatch/);
    first.removeRound('run', 1);
    restarted.removeRound('run', 1);
  });

  it('refuses a damaged record, a record of another size and an offset that is no record, before reading any of it', async () => {
    const spool = new DiskSpool(spoolDir());
    const ref = await spool.append('run', 1, 'agent-a', bytesOf(update(1000, 1)));
    const segment = ref.split('#')[0]!;
    expect(() => spool.open(ref, 999 * 4)).toThrow(`spooled update ${ref} has 4000 bytes, expected 3996`);
    expect(() => spool.open(`${segment}#4`, 4000)).toThrow(/is not a spool record/);
    const buf = readFileSync(segment);
    buf[buf.byteLength - 10]! ^= 0xff;
    writeFileSync(segment, buf);
    expect(() => spool.open(ref, 4000)).toThrow(`spooled update ${ref}: payload checksum mismatch (damaged segment)`);
    expect(statSync(segment).size).toBe(buf.byteLength);
    spool.removeRound('run', 1);
  });

  it('a round removed while an update is being written leaves no file behind and no crash', async () => {
    const dir = spoolDir();
    const spool = new DiskSpool(dir);
    const pending = spool.append('run', 2, 'late', bytesOf(update(100_000, 1)));
    spool.removeRound('run', 2);
    // Either the write made it into the unlinked file or the handle was closed under it: never a segment left over.
    await pending.catch(() => undefined);
    await new Promise((r) => setTimeout(r, 50));
    expect(existsSync(path.join(dir, 'run', '2', 'updates.spool'))).toBe(false);
  });

  it('a disk that fills up under a write or a sync refuses the update as E_STORAGE naming the segment, and the spool goes on once there is room', async () => {
    const proto = await fileHandleProto();
    const enospc = (syscall: string) => Object.assign(new Error(`ENOSPC: no space left on device, ${syscall}`), { code: 'ENOSPC', errno: -28, syscall });
    const dir = spoolDir();
    const spool = new DiskSpool(dir);
    const segment = path.join(dir, 'run', '1', 'updates.spool');
    const writev = vi.spyOn(proto, 'writev').mockRejectedValueOnce(enospc('write'));
    await expect(spool.append('run', 1, 'a', bytesOf(update(100, 1)))).rejects.toMatchObject({ code: 'E_STORAGE', path: segment, message: expect.stringMatching(/no space left on the device \(ENOSPC\)/) });
    writev.mockRestore();
    vi.spyOn(proto, 'datasync').mockRejectedValueOnce(enospc('fdatasync'));
    await expect(spool.append('run', 1, 'b', bytesOf(update(100, 2)))).rejects.toMatchObject({ code: 'E_STORAGE', path: segment });
    vi.restoreAllMocks();
    const ref = await spool.append('run', 1, 'c', bytesOf(update(100, 3)));
    expect(readBack(spool, ref, 100)).toEqual(update(100, 3));
    spool.removeRound('run', 1);
  });
});
