/**
 * SCAFFOLD on the agent (Karimireddy et al. 2020, option II): the server variate c a task names (fetched by sha256 like
 * a model), this agent's variate c_i (kept on disk per run, so a restarted agent keeps it), and the update it sends:
 * [Δy | Δc_i] as float32, with c_i ← c_i + Δc_i written only once the coordinator accepted the update (the server's c
 * then includes Δc_i; a lost upload leaves both sides as they were).
 */
import { mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { ValidationError, bytesToFloat32, modelDigest, writeFileDurable, type TaskMsg } from '@fedge/proto';
import { controlVariateDelta } from '@fedge/ml';
import type { CoordinatorConnection } from './transport/connection.js';
import type { Session } from './executor.js';
import { moduleLogger } from './log.js';

const log = moduleLogger('scaffold');

/** The coordinator's variate blob format (coordinator strategy/scaffold.ts). */
const VARIATE_FORMAT = 'fedge-scaffold-variate/1';

/**
 * Each run's c_i as raw little-endian float32 in DIR/scaffold/RUN.f32, written to a temporary file and renamed (a
 * crash mid-write leaves the previous variate), mode 0600. Without a directory (embedded agents, tests) variates live
 * in memory for the process's life.
 */
export class ControlVariateStore {
  private readonly memory = new Map<string, Float32Array>();

  constructor(readonly dir?: string) {}

  /** The file of a run's variate (run ids allow ':' and '.', never a path separator; ':' is replaced for Windows). */
  file(runId: string): string | undefined {
    return this.dir ? path.join(this.dir, 'scaffold', `${runId.replace(/[^A-Za-z0-9._-]/g, '_')}.f32`) : undefined;
  }

  /** c_i for the run: zeros the first time (the paper's c_i = 0), else what the last accepted update left. */
  load(runId: string, numParams: number): Float32Array {
    const file = this.file(runId);
    let values = this.memory.get(runId);
    if (!values && file) {
      let bytes: Buffer | undefined;
      try {
        bytes = readFileSync(file);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
      if (bytes) {
        if (bytes.byteLength !== numParams * 4)
          throw new ValidationError(`scaffold: ${file} holds ${bytes.byteLength} bytes, expected ${numParams * 4} (${numParams} float32 values for run ${runId}); delete it to restart this agent's control variate from zero`);
        values = bytesToFloat32(bytes);
        log.info({ runId, file }, 'control variate read from disk');
      }
    }
    if (!values) return new Float32Array(numParams);
    if (values.length !== numParams) throw new ValidationError(`scaffold: the control variate of run ${runId} holds ${values.length} values, the model has ${numParams}`);
    const bad = values.findIndex((v) => !Number.isFinite(v));
    if (bad >= 0) throw new ValidationError(`scaffold: the control variate of run ${runId} is not finite at parameter ${bad}${file ? `; delete ${file} to restart it from zero` : ''}`);
    return values.slice();
  }

  save(runId: string, values: Float32Array): void {
    this.memory.set(runId, values.slice());
    const file = this.file(runId);
    if (!file) return;
    mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    writeFileDurable(file, new Uint8Array(values.buffer, values.byteOffset, values.byteLength), 0o600);
  }
}

/** Downloads the server variate a task names and checks it is exactly that blob and model-sized. */
export async function fetchServerVariate(conn: CoordinatorConnection, s: Session, task: TaskMsg, numParams: number): Promise<Float32Array> {
  const sha = task.config.controlVariateSha256!;
  const { header, bytes, sha256 } = await conn.fetchModel({ agentId: s.agentId, sessionToken: s.sessionToken, runId: task.runId, modelVersion: task.modelVersion, blobSha256: sha });
  const digest = sha256 ?? modelDigest(header.topologyJson, header.tensors as never, bytes);
  if (digest !== sha || header.sha256 !== sha) throw new ValidationError(`scaffold: control variate sha256 mismatch for ${task.runId} v${task.modelVersion}: got ${digest.slice(0, 12)}, the task names ${sha.slice(0, 12)}`);
  let format: unknown;
  try {
    format = (JSON.parse(header.topologyJson) as { format?: unknown }).format;
  } catch {
    format = undefined;
  }
  if (format !== VARIATE_FORMAT) throw new ValidationError(`scaffold: blob ${sha.slice(0, 12)} is not a control variate (format ${String(format)})`);
  const c = bytesToFloat32(bytes);
  if (c.length !== numParams) throw new ValidationError(`scaffold: the server control variate holds ${c.length} values, the model has ${numParams}`);
  return c;
}

/** What a SCAFFOLD training task needs before and after local training. */
export interface ScaffoldTask {
  /** c − c_i, the worker's per-step gradient correction. */
  correction: Float32Array;
  /** ||c_i|| as loaded (reported as metric scaffold_ci_norm: shows a restarted agent kept its variate). */
  ciNorm: number;
  /** [Δy | Δc_i] as the payload, and the write of c_i + Δc_i to run once the coordinator accepted it. */
  pack(delta: Float32Array, steps: number, lr: number): { payload: Uint8Array; onAccepted: () => void };
}

export async function scaffoldTask(store: ControlVariateStore, conn: CoordinatorConnection, s: Session, task: TaskMsg, numParams: number): Promise<ScaffoldTask> {
  const c = await fetchServerVariate(conn, s, task, numParams);
  const ci = store.load(task.runId, numParams);
  const correction = Float32Array.from(c, (v, i) => v - ci[i]!);
  return {
    correction,
    ciNorm: Math.sqrt(ci.reduce((a, v) => a + v * v, 0)),
    pack(delta, steps, lr) {
      const dc = controlVariateDelta(delta, c, steps, lr);
      const out = new Float32Array(2 * numParams);
      out.set(delta);
      out.set(dc, numParams);
      return {
        payload: new Uint8Array(out.buffer),
        onAccepted: () => store.save(task.runId, Float32Array.from(ci, (v, i) => v + dc[i]!)),
      };
    },
  };
}
