/**
 * A data directory that cannot be written, on real file systems: a small tmpfs fills up under a run (E_STORAGE, the
 * coordinator stays up and refuses new runs, the run resumes after space is freed and a restart), and a read-only
 * mount stops `fedge serve` at start with E_STORAGE and exit code 4. Needs mount(2) (root with CAP_SYS_ADMIN); where
 * mounting is not possible (an unprivileged container) the tests are skipped and the same path is covered by
 * packages/coordinator/src/engine/storage-fault.test.ts (ENOSPC simulated through the store).
 */
import { afterAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { FEDGE, fedge, freePort, killAll, lastJson, startAgent, startProcess } from './harness.js';

const mounts: string[] = [];
afterAll(() => {
  killAll();
  for (const m of mounts.reverse()) spawnSync('umount', ['-l', m]);
});

/** Mounts a tmpfs of `size` at a new directory; undefined when this machine does not let us. */
function mountTmpfs(size: string, ro = false): string | undefined {
  const dir = mkdtempSync(path.join(tmpdir(), 'fedge-tmpfs-'));
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${size}${ro ? ',ro' : ''}`, 'tmpfs', dir], { encoding: 'utf8' });
  if (r.status !== 0) return undefined;
  mounts.push(dir);
  return dir;
}

const probe = mountTmpfs('1m');
const canMount = probe !== undefined;
if (!canMount) console.warn('storage e2e skipped: cannot mount a tmpfs here (not root, or no CAP_SYS_ADMIN); engine/storage-fault.test.ts covers the path');

/** Writes zeros until the file system is full; returns the bytes written. */
function fill(file: string): number {
  const fd = openSync(file, 'w');
  const chunk = Buffer.alloc(1 << 16);
  let n = 0;
  try {
    for (;;) n += writeSync(fd, chunk);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
  } finally {
    closeSync(fd);
  }
  return n;
}

interface RunJson { id: string; status: string; statusMessage?: string; round: number; metrics: { round: number; status: string; completed: number }[] }

async function show(address: string, id: string): Promise<RunJson> {
  const r = await fedge(['run', 'show', id, '--coordinator', address, '--format', 'json']);
  expect(r.code, r.stderr).toBe(0);
  return lastJson<RunJson>(r.stdout);
}

const serve = (dataDir: string, port: number) => startProcess(FEDGE, ['serve', '--listen', `127.0.0.1:${port}`, '--data-dir', dataDir, '--no-mqtt']);

describe.skipIf(!canMount)('a data directory that cannot be written (real tmpfs)', () => {
  it('fills up under a run: E_STORAGE with the path and free space, no crash, new runs refused; resumes after space is freed', async () => {
    const mnt = mountTmpfs('48m')!;
    const dataDir = path.join(mnt, 'data');
    const port = await freePort();
    const address = `127.0.0.1:${port}`;
    const first = serve(dataDir, port);
    await first.waitFor(/coordinator ready on/);
    const agents = [0, 1].map((i) =>
      startAgent(address, ['--name', `disk-${i}`, '--num-partitions', '2', '--partition-id', String(i), '--seed', '4']),
    );
    await Promise.all(agents.map((a) => a.waitFor(/joined coordinator/)));
    const rounds = 8;
    const started = await fedge(['run', 'start', '--coordinator', address, '--model', 'mnist-mlp', '--rounds', String(rounds), '--min-agents', '2',
      '--epochs', '1', '--lr', '0.1', '--format', 'json']);
    expect(started.code, started.stderr).toBe(0);
    const id = lastJson<RunJson>(started.stdout).id;
    await first.waitFor(/"msg":"round ended"/, 120_000);

    // The disk fills: the next write (an update spooled, a model version, the run record) fails.
    const filler = path.join(mnt, 'filler');
    expect(fill(filler)).toBeGreaterThan(1 << 20);
    const line = await first.waitFor(/E_STORAGE: cannot write/, 120_000);
    expect(line).toMatch(new RegExp(`cannot write ${mnt.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}/data/`));
    expect(line).toMatch(/free there/);
    await first.waitFor(/run suspended/, 30_000);
    expect(first.child.exitCode).toBeNull(); // before: the final save threw again and the process died (exit 7)

    // Still serving: the run is listed as running (suspended, not failed), new work is refused with the reason.
    const run = await show(address, id);
    expect(run.status).toBe('running');
    expect(run.statusMessage).toMatch(/^suspended at round \d+ \(E_STORAGE\): cannot write .*free there/);
    const refused = await fedge(['run', 'start', '--coordinator', address, '--model', 'mnist-mlp', '--rounds', '1', '--min-agents', '1', '--format', 'json']);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/cannot write .*free there/);

    first.child.kill('SIGTERM');
    expect(await first.exited).not.toBeNull();
    // Space is freed; a coordinator on the same data directory and port resumes the run, the agents reconnect.
    rmSync(filler);
    const second = serve(dataDir, port);
    await second.waitFor(/resumed 1 run/, 60_000);
    let r = await show(address, id);
    for (let i = 0; i < 600 && !['completed', 'failed', 'stopped'].includes(r.status); i++) {
      await new Promise((res) => setTimeout(res, 250));
      r = await show(address, id);
    }
    expect(r.status, r.statusMessage).toBe('completed');
    expect(r.metrics.filter((m) => m.status === 'completed').map((m) => m.round)).toEqual(Array.from({ length: rounds }, (_, i) => i + 1));
    second.child.kill('SIGTERM');
    expect(await second.exited).toBe(0);
  }, 300_000);

  it('read-only: fedge serve stops at start with E_STORAGE and exit code 4, not a raw EROFS stack', async () => {
    // A new data directory on a read-only mount.
    const ro = mountTmpfs('1m', true)!;
    const fresh = await fedge(['serve', '--listen', '127.0.0.1:0', '--data-dir', path.join(ro, 'data'), '--no-mqtt']);
    expect(fresh.code).toBe(4);
    expect(fresh.stderr).toMatch(new RegExp(`^error \\(E_STORAGE\\): cannot write ${ro}(/data)?: the file system is read-only \\(EROFS\\); .* free there`));
    expect(fresh.stderr).not.toMatch(/\n\s+at .*\.js:\d+/);

    // An existing data directory whose file system was remounted read-only.
    const mnt = mountTmpfs('8m')!;
    const dataDir = path.join(mnt, 'data');
    mkdirSync(dataDir);
    const port = await freePort();
    const once = serve(dataDir, port);
    await once.waitFor(/coordinator ready on/);
    once.child.kill('SIGTERM');
    expect(await once.exited).toBe(0);
    expect(spawnSync('mount', ['-o', 'remount,ro', mnt]).status).toBe(0);
    const again = await fedge(['serve', '--listen', '127.0.0.1:0', '--data-dir', dataDir, '--no-mqtt']);
    expect(again.code).toBe(4);
    expect(again.stderr).toMatch(/^error \(E_STORAGE\): cannot write .*coordinator\.lock: the file system is read-only \(EROFS\)/);
    expect(again.stderr).not.toMatch(/\n\s+at .*\.js:\d+/);
  }, 120_000);
});
