/**
 * The durable Store of `fedge serve`: run state in SQLite (DATA_DIR/fedge.db) and models as content-addressed
 * files (DATA_DIR/models, see model-store.ts), under one data directory that one coordinator owns at a time.
 *
 * Every write is one SQLite transaction committed with synchronous=FULL in WAL mode before the call resolves,
 * so whatever the engine has saved survives kill -9 and power loss. The driver is node-sqlite3-wasm (SQLite
 * compiled to WebAssembly with a VFS over Node's fs that fsyncs): no native addon, no install script. Its VFS has
 * no shared memory, so the connection uses locking_mode=EXCLUSIVE (WAL then keeps its index in process memory);
 * the data directory lock (data-dir.ts) keeps other coordinators out.
 *
 * Schema changes are versioned migrations recorded in schema_migrations. A database written by a newer fedge
 * (a migration this code does not know) or a damaged file is refused with a clear error: it is never reset.
 */
import { existsSync, rmSync } from 'node:fs';
import path from 'node:path';
import sqlite from 'node-sqlite3-wasm';
import { FedgeError, type ModelBlob } from '@fedge/proto';
import type { AgentRecord, EnrollmentRecord, IdentityRecord, ModelVersionRecord, Participant, ParticipantPage, ParticipantQuery, ParticipantWrites, RoundRecord, RunRecord, Store } from './store.js';
import { withNote } from './round-summary.js';
import { fromJson, insertParticipants, migrate, toJson, type Db, type Row } from './sqlite-schema.js';
import { ModelStore } from './model-store.js';
import { lockDataDir, type DataDirLock } from './data-dir.js';
import { moduleLogger } from '../log.js';
import { storageError, unwritable } from './storage-error.js';

const { Database } = sqlite;

export const DB_FILE = 'fedge.db';
export const MODELS_DIR = 'models';

export { MIGRATIONS, SCHEMA_VERSION, type Migration } from './sqlite-schema.js';

const log = moduleLogger('store');

function classify(err: unknown, file: string): FedgeError {
  if (err instanceof FedgeError) return err;
  const msg = (err as Error).message ?? String(err);
  if (/not a database|malformed|corrupt|disk image/i.test(msg)) {
    return new FedgeError(
      'E_STORE_CORRUPT',
      `${file} is damaged or not an SQLite database (${msg}). fedge does not reset it: restore it from a backup, or move it ` +
        'away to start with an empty data directory.',
      { cause: err },
    );
  }
  return new FedgeError('E_STORE_OPEN', `cannot open ${file}: ${msg}`, { cause: err });
}

export interface SqliteStoreOptions {
  /** Skip the data-directory lock (tests that open the same directory twice on purpose). */
  noLock?: boolean;
}

export class SqliteStore implements Store {
  readonly models: ModelStore;
  readonly file: string;
  /** The JSON last written for each run's rounds and versions: saveRun rewrites only what changed. */
  private readonly written = new Map<string, { rounds: string[]; versions: Map<number, string> }>();
  private closed = false;

  private constructor(
    readonly dataDir: string,
    private readonly db: Db,
    private readonly lock: DataDirLock | undefined,
  ) {
    this.file = path.join(dataDir, DB_FILE);
    this.models = new ModelStore(path.join(dataDir, MODELS_DIR));
  }

  /** Opens (creating when absent) the store in `dataDir` and brings its schema up to date. */
  static open(dataDir: string, opts: SqliteStoreOptions = {}): SqliteStore {
    const dir = path.resolve(dataDir);
    const file = path.join(dir, DB_FILE);
    let lock: DataDirLock | undefined;
    try {
      lock = opts.noLock ? undefined : lockDataDir(dir);
    } catch (err) {
      // A read-only or full data directory fails here first (the lock file is the first write).
      const blocked = unwritable(dir);
      throw storageError(err, path.join(dir, 'coordinator.lock')) ?? (blocked && storageError(blocked, dir)) ?? err;
    }
    let db: Db | undefined;
    try {
      if (lock?.stale) log.warn({ dataDir: dir, previous: lock.stale }, 'took over the data directory from a coordinator that is no longer running');
      // node-sqlite3-wasm locks with a directory next to the file; one left by a killed process would block us
      // forever. We own the data directory now, so nobody else can hold it.
      if (lock) rmSync(`${file}.lock`, { recursive: true, force: true });
      const existed = existsSync(file);
      db = new Database(file);
      db.exec('PRAGMA locking_mode=EXCLUSIVE');
      const mode = db.get('PRAGMA journal_mode=WAL') as Row | null;
      if (String(mode?.journal_mode).toLowerCase() !== 'wal') throw new Error(`could not enable WAL (journal_mode=${String(mode?.journal_mode)})`);
      db.exec('PRAGMA synchronous=FULL');
      db.exec('PRAGMA foreign_keys=ON');
      const check = db.all('PRAGMA quick_check') as Row[];
      if (check.length !== 1 || check[0]!.quick_check !== 'ok') {
        throw new Error(`integrity check failed: ${check.map((r) => String(r.quick_check)).slice(0, 5).join('; ')}`);
      }
      migrate(db, file, existed);
      const store = new SqliteStore(dir, db, lock);
      const tmp = store.models.removeTemporaryFiles();
      if (tmp) log.info({ removed: tmp }, 'removed temporary model files of an interrupted write');
      return store;
    } catch (err) {
      try {
        db?.close();
      } catch {
        // already failing
      }
      try {
        lock?.release();
      } catch {
        // the directory may not even take that
      }
      throw storageError(err, file) ?? classify(err, file);
    }
  }

  /** Applied migrations, oldest first. */
  migrations(): { version: number; name: string; appliedAt: string }[] {
    return (this.db.all('SELECT version, name, applied_at FROM schema_migrations ORDER BY version') as Row[]).map((r) => ({
      version: Number(r.version),
      name: String(r.name),
      appliedAt: String(r.applied_at),
    }));
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.db.close();
    this.lock?.release();
  }

  async createRun(run: RunRecord): Promise<void> {
    this.tx(() => {
      if (this.db.get('SELECT 1 AS x FROM runs WHERE id = ?', [run.id])) throw new Error(`run ${run.id} already exists`);
      this.writeRun(run);
    });
  }

  async saveRun(run: RunRecord, docOnly = false, writes?: ParticipantWrites): Promise<void> {
    this.tx(() => {
      this.writeRun(run, docOnly);
      if (writes) this.writeParticipants(run.id, writes);
    });
  }

  async listParticipants(runId: string, q: ParticipantQuery): Promise<ParticipantPage> {
    const where = ['run_id = ?'];
    const args: (string | number)[] = [runId];
    if (q.round !== undefined) (where.push('round = ?'), args.push(q.round));
    if (q.status === 'failed') where.push("outcome != 'completed'");
    else if (q.status) (where.push('outcome = ?'), args.push(q.status));
    const cond = where.join(' AND ');
    const total = Number((this.db.get(`SELECT COUNT(*) AS n FROM participants WHERE ${cond}`, args) as Row).n);
    const rows = this.db.all(`SELECT round, doc FROM participants WHERE ${cond} ORDER BY round, seq LIMIT ? OFFSET ?`, [...args, q.limit, q.offset]) as Row[];
    return { total, participants: rows.map((r) => ({ ...fromJson<Participant>(r.doc), round: Number(r.round) })) };
  }

  async getRun(id: string): Promise<RunRecord | undefined> {
    const row = this.db.get('SELECT doc FROM runs WHERE id = ?', [id]) as Row | null;
    return row ? this.readRun(id, row.doc) : undefined;
  }

  async listRuns(): Promise<RunRecord[]> {
    const rows = this.db.all('SELECT id, doc FROM runs ORDER BY created_at, id') as Row[];
    return rows.map((r) => this.readRun(String(r.id), r.doc));
  }

  async putModel(sha256: string, blob: ModelBlob): Promise<void> {
    // The file is durable before the row (and before any run record that names it) is written.
    let bytes: number;
    try {
      bytes = await this.models.put(sha256, blob);
    } catch (err) {
      throw storageError(err, this.models.dir) ?? err;
    }
    this.write(() => this.db.run('INSERT OR IGNORE INTO models (sha256, bytes, created_at) VALUES (?, ?, ?)', [sha256, bytes, new Date().toISOString()]));
  }

  async getModel(sha256: string): Promise<ModelBlob | undefined> {
    return this.models.get(sha256);
  }

  async modelReferenced(sha256: string): Promise<boolean> {
    // versions_by_sha256 finds the version rows; strategy state sha256s live in the runs' documents.
    const rows = this.db.all('SELECT doc FROM versions WHERE sha256 = ?', [sha256]) as Row[];
    if (rows.some((r) => !fromJson<ModelVersionRecord>(r.doc).collected)) return true;
    return !!this.db.get('SELECT 1 AS x FROM runs WHERE instr(doc, ?) > 0', [sha256]);
  }

  async modelBytes(sha256: string): Promise<number | undefined> {
    const row = this.db.get('SELECT bytes FROM models WHERE sha256 = ?', [sha256]) as Row | null;
    return row ? Number(row.bytes) : undefined;
  }

  async deleteModel(sha256: string): Promise<number> {
    // Files first, then the row: a crash in between leaves a row without files, which the next delete finishes.
    let bytes: number;
    try {
      bytes = await this.models.delete(sha256);
    } catch (err) {
      throw storageError(err, this.models.dir) ?? err;
    }
    this.write(() => this.db.run('DELETE FROM models WHERE sha256 = ?', [sha256]));
    return bytes;
  }

  async saveAgent(agent: AgentRecord): Promise<void> {
    this.write(() => this.upsertAgent(agent));
  }

  async saveAgents(agents: readonly AgentRecord[]): Promise<void> {
    // One transaction, one fsync: a thousand agents joining or finishing a round cost one commit, not a thousand.
    if (agents.length) this.tx(() => agents.forEach((a) => this.upsertAgent(a)));
  }

  private upsertAgent(agent: AgentRecord): void {
    this.db.run(
      `INSERT INTO agents (id, name, status, last_seen, doc) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT(id) DO UPDATE SET name = excluded.name, status = excluded.status, last_seen = excluded.last_seen, doc = excluded.doc`,
      [agent.id, agent.name, agent.status, agent.lastSeen, toJson(agent)],
    );
  }

  async listAgents(): Promise<AgentRecord[]> {
    return (this.db.all('SELECT doc FROM agents ORDER BY id') as Row[]).map((r) => fromJson<AgentRecord>(r.doc));
  }

  async saveIdentity(identity: IdentityRecord): Promise<void> {
    this.write(() =>
      this.db.run(
        `INSERT INTO identities (name, fingerprint, doc) VALUES (?, ?, ?)
         ON CONFLICT(name) DO UPDATE SET fingerprint = excluded.fingerprint, doc = excluded.doc`,
        [identity.name, identity.fingerprint, toJson(identity)],
      ),
    );
  }

  async listIdentities(): Promise<IdentityRecord[]> {
    return (this.db.all('SELECT doc FROM identities ORDER BY name') as Row[]).map((r) => fromJson<IdentityRecord>(r.doc));
  }

  async saveEnrollment(e: EnrollmentRecord): Promise<void> {
    this.write(() => this.db.run('INSERT OR REPLACE INTO enrollments (code_sha256, name, expires_at, doc) VALUES (?, ?, ?, ?)', [e.codeSha256, e.name, e.expiresAt, toJson(e)]));
  }

  async deleteEnrollment(codeSha256: string): Promise<void> {
    this.write(() => this.db.run('DELETE FROM enrollments WHERE code_sha256 = ?', [codeSha256]));
  }

  async listEnrollments(): Promise<EnrollmentRecord[]> {
    return (this.db.all('SELECT doc FROM enrollments ORDER BY expires_at') as Row[]).map((r) => fromJson<EnrollmentRecord>(r.doc));
  }

  // ------------------------------------------------------------------ internals

  /** One write outside a transaction; a full or read-only disk surfaces as a StorageError (E_STORAGE). */
  private write(fn: () => unknown): void {
    try {
      fn();
    } catch (err) {
      throw storageError(err, this.file) ?? err;
    }
  }

  private tx(fn: () => void): void {
    if (this.closed) throw new FedgeError('E_STORE_CLOSED', 'the store is closed');
    try {
      this.db.exec('BEGIN IMMEDIATE');
    } catch (err) {
      throw storageError(err, this.file) ?? err;
    }
    try {
      fn();
      this.db.exec('COMMIT');
    } catch (err) {
      try {
        if (this.db.inTransaction) this.db.exec('ROLLBACK');
      } catch {
        // SQLite rolls back itself when it cannot (a full disk); the transaction is gone either way.
      }
      // A failed transaction leaves the cache unsure of what is on disk: rewrite everything next time.
      this.written.clear();
      throw storageError(err, this.file) ?? err;
    }
  }

  private writeRun(run: RunRecord, docOnly = false): void {
    const { rounds, versions, ...rest } = run;
    this.db.run(
      `INSERT INTO runs (id, status, created_at, round, model_version, doc) VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT(id) DO UPDATE SET status = excluded.status, round = excluded.round, model_version = excluded.model_version, doc = excluded.doc`,
      [run.id, run.status, run.createdAt, run.round, run.modelVersion, toJson(rest)],
    );
    let w = this.written.get(run.id);
    if (!w) {
      w = { rounds: [], versions: new Map() };
      this.written.set(run.id, w);
      // First write of this run by this process: start from what is on disk.
      this.db.run('DELETE FROM rounds WHERE run_id = ?', [run.id]);
      this.db.run('DELETE FROM versions WHERE run_id = ?', [run.id]);
    } else if (docOnly) return;
    rounds.forEach((r: RoundRecord, seq) => {
      const doc = toJson(r);
      if (w.rounds[seq] === doc) return;
      this.db.run(
        `INSERT INTO rounds (run_id, seq, round, version, status, doc) VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT(run_id, seq) DO UPDATE SET round = excluded.round, version = excluded.version, status = excluded.status, doc = excluded.doc`,
        [run.id, seq, r.round, r.version ?? null, r.status, doc],
      );
      w.rounds[seq] = doc;
    });
    if (w.rounds.length > rounds.length) {
      this.db.run('DELETE FROM rounds WHERE run_id = ? AND seq >= ?', [run.id, rounds.length]);
      w.rounds.length = rounds.length;
    }
    const seen = new Set<number>();
    for (const v of versions as ModelVersionRecord[]) {
      seen.add(v.version);
      const doc = toJson(v);
      if (w.versions.get(v.version) === doc) continue;
      this.db.run(
        `INSERT INTO versions (run_id, version, sha256, round, parent, created_at, central_accuracy, doc) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT(run_id, version) DO UPDATE SET sha256 = excluded.sha256, round = excluded.round, parent = excluded.parent,
           created_at = excluded.created_at, central_accuracy = excluded.central_accuracy, doc = excluded.doc`,
        [run.id, v.version, v.sha256, v.round, v.parent ?? null, v.createdAt, Number.isFinite(v.centralAccuracy) ? v.centralAccuracy! : null, doc],
      );
      w.versions.set(v.version, doc);
    }
    for (const v of [...w.versions.keys()]) {
      if (seen.has(v)) continue;
      this.db.run('DELETE FROM versions WHERE run_id = ? AND version = ?', [run.id, v]);
      w.versions.delete(v);
    }
  }

  private writeParticipants(runId: string, writes: ParticipantWrites): void {
    for (const w of writes.rounds) insertParticipants(this.db, runId, w.round, w.participants);
    for (const n of writes.notes) {
      const row = this.db.get('SELECT seq, doc FROM participants WHERE run_id = ? AND round = ? AND agent_id = ?', [runId, n.round, n.agentId]) as Row | null;
      if (row) this.db.run('UPDATE participants SET doc = ? WHERE run_id = ? AND round = ? AND seq = ?', [toJson(withNote(fromJson<Participant>(row.doc), n.note)), runId, n.round, row.seq]);
    }
  }

  private readRun(id: string, doc: unknown): RunRecord {
    const rest = fromJson<Omit<RunRecord, 'rounds' | 'versions'>>(doc);
    const rounds = (this.db.all('SELECT doc FROM rounds WHERE run_id = ? ORDER BY seq', [id]) as Row[]).map((r) => fromJson<RoundRecord>(r.doc));
    const versions = (this.db.all('SELECT doc FROM versions WHERE run_id = ? ORDER BY version', [id]) as Row[]).map((r) => fromJson<ModelVersionRecord>(r.doc));
    return { ...rest, rounds, versions };
  }
}
