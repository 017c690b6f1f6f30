/** The durable store: round trips, reopen, migrations, refusal of damaged or newer databases, the data-dir lock. */
import { afterEach, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import sqlite from 'node-sqlite3-wasm';
import { blobDigest, FedgeError, type ModelBlob } from '@fedge/proto';
import { parseRunConfig } from '../config/run-config.js';
import type { AgentRecord, RoundRecord, RunRecord } from './store.js';
import { DB_FILE, SCHEMA_VERSION, SqliteStore } from './sqlite-store.js';
import { LOCK_FILE } from './data-dir.js';

const dirs: string[] = [];
const stores: SqliteStore[] = [];
afterEach(() => {
  for (const s of stores.splice(0)) s.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
function tempDir(): string {
  const d = mkdtempSync(path.join(tmpdir(), 'fedge-store-'));
  dirs.push(d);
  return d;
}
function open(dir: string): SqliteStore {
  const s = SqliteStore.open(dir);
  stores.push(s);
  return s;
}
function close(s: SqliteStore): void {
  s.close();
  stores.splice(stores.indexOf(s), 1);
}
function openError(dir: string): FedgeError {
  try {
    open(dir);
  } catch (err) {
    expect(err).toBeInstanceOf(FedgeError);
    return err as FedgeError;
  }
  throw new Error('expected the store to refuse to open');
}
const sha = (file: string): string => createHash('sha256').update(readFileSync(file)).digest('hex');

function round(n: number, version?: number): RoundRecord {
  return {
    round: n,
    baseVersion: n - 1,
    ...(version !== undefined ? { version } : {}),
    status: version !== undefined ? 'completed' : 'failed',
    startedAt: '2025-01-01T00:00:00.000Z',
    endedAt: '2025-01-01T00:00:01.000Z',
    seconds: 1,
    participants: [
      { agentId: 'a1', name: 'one', outcome: 'completed', numExamples: 100, seconds: 0.5, metrics: { train_loss: 0.5 } },
      { agentId: 'a2', name: 'two', outcome: 'rejected', reason: 'non_finite: update has NaN' },
    ],
    trainLoss: 0.5,
    bytesReceived: 400,
    bytesSent: 800,
    aggregationMs: 1.5,
  };
}

function run(id = 'run-1'): RunRecord {
  return {
    id,
    config: parseRunConfig({ model: 'mnist-mlp', rounds: 5 }),
    status: 'running',
    createdAt: new Date().toISOString(),
    round: 0,
    modelVersion: 0,
    rounds: [],
    versions: [{ version: 0, sha256: 'a'.repeat(64), round: 0, createdAt: new Date().toISOString(), centralAccuracy: 0.1 }],
  };
}

const agent: AgentRecord = {
  id: 'a1', name: 'one', status: 'online', backend: 'wasm', agentVersion: '0.1.0', numExamples: 100, labels: { site: 'x' },
  joinedAt: '2025-01-01T00:00:00.000Z', lastSeen: '2025-01-01T00:00:05.000Z', tasksCompleted: 1, tasksFailed: 0,
};

function model(n: number): ModelBlob {
  return { topology: { layers: n }, tensors: [{ name: 'w', dtype: 'float32', shape: [n] }], weights: Float32Array.from({ length: n }, (_, i) => i / n) };
}

describe('SqliteStore', () => {
  it('round-trips runs (with rounds, versions, NaN and Infinity), agents and models', async () => {
    const s = open(tempDir());
    const r = run();
    await s.createRun(r);
    await expect(s.createRun(r)).rejects.toThrow(/already exists/);
    expect(await s.getRun(r.id)).toEqual(r);

    r.rounds.push(round(1, 1), round(2));
    r.rounds[0]!.centralAccuracy = NaN;
    r.rounds[1]!.trainLoss = Infinity;
    r.versions.push({ version: 1, sha256: 'b'.repeat(64), round: 1, parent: 0, createdAt: new Date().toISOString() });
    r.round = 2;
    r.modelVersion = 1;
    await s.saveRun(r);
    const back = (await s.getRun(r.id))!;
    expect(back).toEqual(r);
    expect(back.rounds[0]!.centralAccuracy).toBeNaN();
    expect(back.rounds[1]!.trainLoss).toBe(Infinity);
    expect(await s.getRun('nope')).toBeUndefined();

    await s.createRun(run('run-2'));
    expect((await s.listRuns()).map((x) => x.id).sort()).toEqual(['run-1', 'run-2']);

    await s.saveAgent(agent);
    await s.saveAgent({ ...agent, status: 'offline' });
    expect(await s.listAgents()).toEqual([{ ...agent, status: 'offline' }]);

    const m = model(33);
    await s.putModel(blobDigest(m), m);
    expect(Array.from((await s.getModel(blobDigest(m)))!.weights)).toEqual(Array.from(m.weights));
    expect(existsSync(path.join(s.dataDir, 'models', `${blobDigest(m)}.bin`))).toBe(true);
  });

  it('keeps everything across close and reopen, including records updated after they were first saved', async () => {
    const dir = tempDir();
    const s = open(dir);
    const r = run();
    await s.createRun(r);
    for (let i = 1; i <= 4; i++) {
      r.rounds.push(round(i, i));
      r.versions.push({ version: i, sha256: String(i).repeat(64), round: i, parent: i - 1, createdAt: new Date().toISOString() });
      r.round = i;
      r.modelVersion = i;
      await s.saveRun(r);
    }
    // Federated evaluation of an earlier version arrives later and is saved with the next write.
    r.rounds[1]!.federatedAccuracy = 0.9;
    r.versions[2]!.federatedAccuracy = 0.9;
    r.status = 'completed';
    await s.saveRun(r);
    await s.saveAgent(agent);
    const m = model(10);
    await s.putModel(blobDigest(m), m);
    close(s);

    const again = open(dir);
    expect(await again.getRun(r.id)).toEqual(r);
    expect(await again.listAgents()).toEqual([agent]);
    expect(blobDigest((await again.getModel(blobDigest(m)))!)).toBe(blobDigest(m));
    // Writes after reopening (a resumed run) are kept too.
    r.rounds.push(round(5, 5));
    r.round = 5;
    await again.saveRun(r);
    close(again);
    expect(await open(dir).getRun(r.id)).toEqual(r);
  });

  it('records its migrations in schema_migrations', () => {
    const s = open(tempDir());
    expect(s.migrations().map((m) => m.version)).toEqual(Array.from({ length: SCHEMA_VERSION }, (_, i) => i + 1));
  });

  it('refuses a corrupt database file with E_STORE_CORRUPT and leaves it untouched', () => {
    const dir = tempDir();
    const file = path.join(dir, DB_FILE);
    writeFileSync(file, Buffer.concat([Buffer.from('this is not sqlite'), Buffer.alloc(8192, 7)]));
    const before = sha(file);
    const err = openError(dir);
    expect(err.code).toBe('E_STORE_CORRUPT');
    expect(err.message).toContain(file);
    expect(err.message).toMatch(/does not reset/);
    expect(sha(file)).toBe(before);
    // The refusal released the data directory.
    expect(existsSync(path.join(dir, LOCK_FILE))).toBe(false);
  });

  it('refuses a database whose pages were damaged', async () => {
    const dir = tempDir();
    const s = open(dir);
    const r = run();
    for (let i = 1; i <= 40; i++) r.rounds.push(round(i, i));
    await s.createRun(r);
    close(s);
    const file = path.join(dir, DB_FILE);
    const bytes = readFileSync(file);
    // Scribble over every page but the first (the header stays valid, the b-trees do not).
    for (let off = 4096; off < bytes.length; off += 4096) bytes.fill(0xa5, off, off + 64);
    writeFileSync(file, bytes);
    expect(openError(dir).code).toBe('E_STORE_CORRUPT');
  });

  it('keeps participants apart: written with the save that records their round, paged, filtered, noted', async () => {
    const dir = tempDir();
    const s = open(dir);
    const r = run();
    await s.createRun(r);
    const { participants, ...rest } = round(1, 1);
    const many = Array.from({ length: 5 }, (_, i) => ({ agentId: `b${i}`, name: `late-${i}`, outcome: 'late' as const, reason: 'round deadline passed' }));
    r.rounds.push(rest);
    await s.saveRun(r, false, { rounds: [{ round: 1, participants: [...participants!, ...many] }], notes: [] });
    await s.saveRun(r, true, { rounds: [], notes: [{ round: 1, agentId: 'b3', note: 'discarded' }] });
    close(s);
    const again = open(dir);
    expect((await again.getRun(r.id))!.rounds[0]).not.toHaveProperty('participants');
    const all = await again.listParticipants(r.id, { limit: 100, offset: 0 });
    expect(all.total).toBe(7);
    expect(all.participants[0]).toEqual({ ...participants![0], round: 1 });
    const failed = await again.listParticipants(r.id, { round: 1, status: 'failed', limit: 2, offset: 3 });
    expect(failed.total).toBe(6);
    expect(failed.participants.map((p) => [p.name, p.reason])).toEqual([['late-2', 'round deadline passed'], ['late-3', 'round deadline passed; discarded']]);
    expect((await again.listParticipants(r.id, { round: 2, limit: 10, offset: 0 })).total).toBe(0);
    expect((await again.listParticipants(r.id, { status: 'completed', limit: 10, offset: 0 })).participants.map((p) => p.name)).toEqual(['one']);
  });

  it('migrates round records with inline participants (schema 2) to a summary and participant rows', async () => {
    const dir = tempDir();
    const s = open(dir);
    const r = run();
    r.rounds.push(round(1, 1), round(2));
    r.round = 2;
    await s.createRun(r);
    close(s);
    // The database as fedge with schema 2 left it: participants inside each round's document, no participants table.
    const db = new sqlite.Database(path.join(dir, DB_FILE));
    db.exec('PRAGMA locking_mode=EXCLUSIVE');
    db.exec('DROP TABLE participants');
    db.run('DELETE FROM schema_migrations WHERE version >= 3');
    expect(String((db.get('SELECT doc FROM rounds WHERE seq = 0') as { doc: string }).doc)).toMatch(/"participants":\[/);
    db.close();
    const migrated = open(dir);
    expect(migrated.migrations().map((m) => m.version)).toContain(3);
    const back = (await migrated.getRun(r.id))!;
    expect(back.rounds.map((x) => x.participants)).toEqual([undefined, undefined]);
    expect(back.rounds[0]!.summary).toMatchObject({ participants: 2, outcomes: { completed: 1, rejected: 1 }, examples: 100, rejected: { non_finite: 1 } });
    const rows = await migrated.listParticipants(r.id, { round: 2, limit: 10, offset: 0 });
    expect(rows.participants).toEqual(round(2).participants!.map((p) => ({ ...p, round: 2 })));
  });

  it('refuses a database with a newer schema with E_STORE_SCHEMA_NEWER and leaves it untouched', async () => {
    const dir = tempDir();
    const s = open(dir);
    await s.createRun(run());
    close(s);
    const file = path.join(dir, DB_FILE);
    const db = new sqlite.Database(file);
    db.exec('PRAGMA locking_mode=EXCLUSIVE'); // a WAL database, and the driver has no shared memory
    db.run('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)', [SCHEMA_VERSION + 1, 'from the future', new Date().toISOString()]);
    db.close();
    const before = sha(file);
    const err = openError(dir);
    expect(err.code).toBe('E_STORE_SCHEMA_NEWER');
    expect(err.message).toMatch(new RegExp(`schema version ${SCHEMA_VERSION + 1}, newer than this fedge understands \\(${SCHEMA_VERSION}\\)`));
    expect(sha(file)).toBe(before);
  });

  it('refuses an SQLite database of another application', () => {
    const dir = tempDir();
    const db = new sqlite.Database(path.join(dir, DB_FILE));
    db.exec('CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)');
    db.close();
    expect(openError(dir).code).toBe('E_STORE_FOREIGN');
  });

  it('lets one coordinator at a time use a data directory, and takes over from one that died', async () => {
    const dir = tempDir();
    const s = open(dir);
    const err = openError(dir);
    expect(err.code).toBe('E_DATA_DIR_LOCKED');
    expect(err.message).toContain(`pid ${process.pid}`);
    await s.createRun(run());
    close(s);

    // What kill -9 leaves behind: our lock file naming a dead pid, and the SQLite driver's lock directory.
    const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']).stdout.toString();
    writeFileSync(path.join(dir, LOCK_FILE), JSON.stringify({ pid: Number(dead), startedAt: 'then' }));
    mkdirSync(path.join(dir, `${DB_FILE}.lock`));
    const again = open(dir);
    expect((await again.getRun('run-1'))?.id).toBe('run-1');
    expect(JSON.parse(readFileSync(path.join(dir, LOCK_FILE), 'utf8')).pid).toBe(process.pid);
    close(again);
    expect(existsSync(path.join(dir, LOCK_FILE))).toBe(false);
  });
});
