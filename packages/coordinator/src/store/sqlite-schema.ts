/**
 * The SQLite store's schema: its versioned migrations (append only), how they are applied to a database, and the
 * JSON codec of its document columns (shared with sqlite-store.ts, which reads and writes the rows).
 */
import sqlite from 'node-sqlite3-wasm';
import { FedgeError } from '@fedge/proto';
import type { Participant, RoundRecord } from './store.js';
import { summarize } from './round-summary.js';
import { moduleLogger } from '../log.js';

const { Database } = sqlite;
export type Db = InstanceType<typeof Database>;
export type Row = Record<string, number | bigint | string | Uint8Array | null>;

/** PRAGMA application_id of fedge databases ("fedg"), so a foreign SQLite file is never mistaken for one. */
const APPLICATION_ID = 0x66656467;

export interface Migration {
  version: number;
  name: string;
  sql: string;
  /** Moves existing data into the new schema, in the migration's transaction (after `sql`). */
  data?: (db: Db) => void;
}

/** Append only: a released migration is never edited, a change is a new version. */
export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'runs, rounds, versions, agents, models',
    sql: `
      CREATE TABLE runs (
        id TEXT PRIMARY KEY,
        status TEXT NOT NULL,
        created_at TEXT NOT NULL,
        round INTEGER NOT NULL,
        model_version INTEGER NOT NULL,
        doc TEXT NOT NULL
      );
      CREATE TABLE rounds (
        run_id TEXT NOT NULL REFERENCES runs(id),
        seq INTEGER NOT NULL,
        round INTEGER NOT NULL,
        version INTEGER,
        status TEXT NOT NULL,
        doc TEXT NOT NULL,
        PRIMARY KEY (run_id, seq)
      );
      CREATE TABLE versions (
        run_id TEXT NOT NULL REFERENCES runs(id),
        version INTEGER NOT NULL,
        sha256 TEXT NOT NULL,
        round INTEGER NOT NULL,
        parent INTEGER,
        created_at TEXT NOT NULL,
        central_accuracy REAL,
        doc TEXT NOT NULL,
        PRIMARY KEY (run_id, version)
      );
      CREATE INDEX versions_by_sha256 ON versions(sha256);
      CREATE TABLE agents (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        status TEXT NOT NULL,
        last_seen TEXT NOT NULL,
        doc TEXT NOT NULL
      );
      CREATE TABLE models (
        sha256 TEXT PRIMARY KEY,
        bytes INTEGER NOT NULL,
        created_at TEXT NOT NULL
      );`,
  },
  {
    version: 2,
    name: 'identities, enrollments',
    sql: `
      CREATE TABLE identities (
        name TEXT PRIMARY KEY,
        fingerprint TEXT NOT NULL,
        doc TEXT NOT NULL
      );
      CREATE TABLE enrollments (
        code_sha256 TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        expires_at TEXT NOT NULL,
        doc TEXT NOT NULL
      );`,
  },
  {
    version: 3,
    name: 'participants apart from round records',
    sql: `
      CREATE TABLE participants (
        run_id TEXT NOT NULL REFERENCES runs(id),
        round INTEGER NOT NULL,
        seq INTEGER NOT NULL,
        agent_id TEXT NOT NULL,
        outcome TEXT NOT NULL,
        doc TEXT NOT NULL,
        PRIMARY KEY (run_id, round, seq)
      );`,
    // Round records that carried their participants inline get a summary instead, their list becoming rows.
    data: (db) => {
      for (const r of db.all('SELECT run_id, seq, doc FROM rounds') as Row[]) {
        const rec = fromJson<RoundRecord>(r.doc);
        if (!Array.isArray(rec.participants)) continue;
        const { participants, ...rest } = rec;
        insertParticipants(db, String(r.run_id), rec.round, participants);
        db.run('UPDATE rounds SET doc = ? WHERE run_id = ? AND seq = ?', [toJson({ ...rest, summary: rest.summary ?? summarize(participants) }), r.run_id, r.seq]);
      }
    },
  },
];

export function insertParticipants(db: Db, runId: string, round: number, list: readonly Participant[]): void {
  db.run('DELETE FROM participants WHERE run_id = ? AND round = ?', [runId, round]);
  list.forEach((p, seq) =>
    db.run('INSERT INTO participants (run_id, round, seq, agent_id, outcome, doc) VALUES (?, ?, ?, ?, ?, ?)', [runId, round, seq, p.agentId, p.outcome, toJson(p)]),
  );
}

export const SCHEMA_VERSION = MIGRATIONS.at(-1)!.version;

const log = moduleLogger('store');


// JSON has no NaN or Infinity; metrics may carry them, and a store must give back what it was given.
const NONFINITE = '$fedge:number';
const replacer = (_k: string, v: unknown): unknown => (typeof v === 'number' && !Number.isFinite(v) ? { [NONFINITE]: String(v) } : v);
const reviver = (_k: string, v: unknown): unknown =>
  v !== null && typeof v === 'object' && NONFINITE in v && Object.keys(v).length === 1 ? Number((v as Record<string, string>)[NONFINITE]) : v;
export const toJson = (v: unknown): string => JSON.stringify(v, replacer);
export const fromJson = <T>(s: unknown): T => JSON.parse(String(s), reviver) as T;

export function migrate(db: Db, file: string, existed: boolean): void {
  const appId = Number((db.get('PRAGMA application_id') as Row).application_id);
  const tables = (db.all("SELECT name FROM sqlite_master WHERE type = 'table'") as Row[]).map((r) => String(r.name));
  if (appId !== 0 && appId !== APPLICATION_ID) {
    throw new FedgeError('E_STORE_FOREIGN', `${file} is an SQLite database of another application (application_id ${appId}), not a fedge store`);
  }
  if (existed && tables.length > 0 && !tables.includes('schema_migrations')) {
    throw new FedgeError('E_STORE_FOREIGN', `${file} is an SQLite database without fedge's schema_migrations table; not a fedge store`);
  }
  db.exec('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)');
  const applied = new Set((db.all('SELECT version FROM schema_migrations') as Row[]).map((r) => Number(r.version)));
  const newest = Math.max(0, ...applied);
  if (newest > SCHEMA_VERSION) {
    throw new FedgeError(
      'E_STORE_SCHEMA_NEWER',
      `${file} has schema version ${newest}, newer than this fedge understands (${SCHEMA_VERSION}); it was written by a newer fedge. ` +
        'Upgrade fedge (the database is left untouched).',
    );
  }
  for (const m of MIGRATIONS) {
    if (applied.has(m.version)) continue;
    db.exec('BEGIN IMMEDIATE');
    try {
      db.exec(m.sql);
      m.data?.(db);
      db.run('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)', [m.version, m.name, new Date().toISOString()]);
      db.exec(`PRAGMA user_version = ${m.version}`);
      if (appId === 0) db.exec(`PRAGMA application_id = ${APPLICATION_ID}`);
      db.exec('COMMIT');
    } catch (err) {
      if (db.inTransaction) db.exec('ROLLBACK');
      throw new FedgeError('E_STORE_MIGRATION', `${file}: migration ${m.version} (${m.name}) failed: ${(err as Error).message}`, { cause: err });
    }
    log.info({ schemaVersion: m.version, migration: m.name }, 'applied store migration');
  }
}
