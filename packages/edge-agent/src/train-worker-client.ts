/** The agent's side of the training worker thread (train-worker.ts): starting it, sending it tasks, replacing a dead one. */
import { statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { FedgeError, ValidationError } from '@fedge/proto';
import type { BackendInfo, BackendPreference } from '@fedge/ml';
import type { LocalData } from './data.js';
import { moduleLogger } from './log.js';
import type { FromWorker, ToWorker } from './train-worker.js';

// The executor's logger name: these lines were the executor's before this module was split out of it.
const log = moduleLogger('executor');

/**
 * The training worker's script: the compiled train-worker.js beside this module in dist/. Loaded from the .ts source
 * (vitest), this module has no compiled sibling and Node cannot start a worker from .ts, so the package's built
 * worker is used; it must not be older than the sources it was built from, or tests would test a stale build.
 */
function trainWorkerUrl(): URL {
  if (!import.meta.url.endsWith('.ts')) return new URL('./train-worker.js', import.meta.url);
  const built = new URL('../dist/train-worker.js', import.meta.url);
  const mtime = (u: URL): number => statSync(fileURLToPath(u), { throwIfNoEntry: false })?.mtimeMs ?? -1;
  // tsc -b rewrites its build info on every build that saw a change, but not outputs whose text did not change.
  const lastBuild = mtime(built) < 0 ? -1 : mtime(new URL('../dist/.tsbuildinfo', import.meta.url));
  const stale = ['./train-worker.ts', './data.ts', './attack.ts'].find((src) => mtime(new URL(src, import.meta.url)) > lastBuild);
  if (stale) throw new TrainingWorkerError(`dist/train-worker.js is missing or was built before the last change to src/${stale.slice(2)}: run \`npx tsc -b\` (the training worker runs compiled code)`);
  return built;
}

/** The training worker died (crash, exit, out of memory) or could not start; the next task starts a fresh one. */
export class TrainingWorkerError extends Error {
  override readonly name = 'TrainingWorkerError';
}

export type TaskToWorker = Extract<ToWorker, { type: 'task' }>;
export type WorkerResult = Extract<FromWorker, { type: 'result' }>;

/**
 * One worker thread with tfjs, its backend and the local data. tfjs kernels are synchronous, so on the agent's
 * own thread every batch would stall the inference server, gRPC keepalives and task messages (seconds per step on
 * big models); here they only occupy the worker.
 */
export class TrainWorker {
  readonly ready: Promise<BackendInfo>;
  /** Set once the worker is unusable: every later task fails with it and the executor replaces the worker. */
  dead: Error | undefined;
  private readonly worker: Worker;
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (r: WorkerResult) => void; reject: (e: Error) => void; signal: AbortSignal; onAbort: () => void }>();
  private settleReady: { resolve: (b: BackendInfo) => void; reject: (e: Error) => void } | undefined;

  constructor(data: LocalData, backend: BackendPreference, labelFlip: boolean) {
    this.worker = new Worker(trainWorkerUrl(), { name: 'fedge-train' });
    // Idle, the worker must not keep the process alive; it is ref'd while a task runs.
    this.worker.unref();
    this.ready = new Promise<BackendInfo>((resolve, reject) => (this.settleReady = { resolve, reject }));
    this.ready.catch(() => undefined); // a worker that dies before anyone awaits `ready` is not an unhandled rejection
    this.worker.on('message', (m: FromWorker) => this.onMessage(m));
    this.worker.on('error', (err) => this.fail(new TrainingWorkerError(`training worker crashed: ${err.message}`)));
    this.worker.on('exit', (code) => this.fail(new TrainingWorkerError(`training worker exited (code ${code})`)));
    // Cloned, not transferred: the main thread keeps its raw split (the join reports its size and profile, a
    // replacement worker needs it again). The worker encodes it (encodeLegacy, for now).
    const msg: ToWorker = { type: 'init', backend, train: data.train, holdout: data.holdout, ...(labelFlip ? { labelFlip } : {}) };
    this.worker.postMessage(msg);
  }

  /** Evaluates (and with `t.train`, trains) on the worker; `t.weights` is transferred, so pass a buffer nobody else holds. */
  async task(t: Omit<TaskToWorker, 'type' | 'id'>, signal: AbortSignal): Promise<WorkerResult> {
    await this.ready;
    if (this.dead) throw this.dead;
    signal.throwIfAborted();
    const id = this.nextId++;
    return new Promise<WorkerResult>((resolve, reject) => {
      // trainLocal checks its signal between batches, so the worker stops within one batch of this message.
      const onAbort = (): void => this.worker.postMessage({ type: 'abort', id } satisfies ToWorker);
      signal.addEventListener('abort', onAbort, { once: true });
      this.pending.set(id, { resolve, reject, signal, onAbort });
      this.worker.ref();
      const msg: ToWorker = { type: 'task', id, ...t };
      this.worker.postMessage(msg, [t.weights.buffer as ArrayBuffer]);
    });
  }

  terminate(): Promise<number> {
    this.dead ??= new TrainingWorkerError('training worker stopped');
    return this.worker.terminate();
  }

  private onMessage(m: FromWorker): void {
    switch (m.type) {
      case 'ready':
        this.settleReady?.resolve(m.backend);
        return;
      case 'init-error':
        this.fail(m.code ? new FedgeError(m.code, m.message) : new TrainingWorkerError(`training worker could not start: ${m.message}`));
        void this.worker.terminate();
        return;
    }
    const p = this.pending.get(m.id);
    if (!p) return;
    this.settle(m.id);
    if (m.type === 'result') return p.resolve(m);
    if (m.aborted) return p.reject(p.signal.reason instanceof Error ? p.signal.reason : new Error('task aborted'));
    if (m.validation) return p.reject(new ValidationError(m.message));
    // Not a bad input: tfjs or the wasm heap may be in a bad state, so this worker takes no more tasks.
    const err = new TrainingWorkerError(`training failed in the worker: ${m.message}`);
    this.fail(err);
    void this.worker.terminate();
    p.reject(err);
  }

  private settle(id: number): void {
    const p = this.pending.get(id);
    if (!p) return;
    p.signal.removeEventListener('abort', p.onAbort);
    this.pending.delete(id);
    if (this.pending.size === 0) this.worker.unref();
  }

  private fail(err: Error): void {
    this.dead ??= err;
    this.settleReady?.reject(this.dead);
    for (const [id, p] of [...this.pending]) {
      this.settle(id);
      p.reject(this.dead);
    }
  }
}

/**
 * One training worker (one tfjs backend, one built model) for all the agents of a simulated fleet. The worker keeps
 * one model whose weights each task sets, so tasks go through it one at a time, each with its agent's splits.
 */
export class SharedTrainWorker {
  private w: TrainWorker | undefined;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(private readonly data: LocalData, private readonly backend: BackendPreference) {}

  start(): Promise<BackendInfo> {
    return this.worker().ready;
  }

  task(t: Omit<TaskToWorker, 'type' | 'id'>, signal: AbortSignal): Promise<WorkerResult> {
    const run = this.queue.then(() => this.worker().task(t, signal));
    this.queue = run.catch(() => undefined);
    return run;
  }

  async close(): Promise<void> {
    const w = this.w;
    this.w = undefined;
    await w?.terminate();
  }

  private worker(): TrainWorker {
    this.w = liveWorker(this.w, () => new TrainWorker(this.data, this.backend, false), 'shared training worker');
    return this.w;
  }
}

/** `w` while it lives, else a fresh worker from `spawn`: a dead one (crashed, failed, closed) is terminated and replaced. */
export function liveWorker(w: TrainWorker | undefined, spawn: () => TrainWorker, what: string): TrainWorker {
  if (!w?.dead) return w ?? spawn();
  log.warn({ reason: w.dead.message }, `starting a new ${what}`);
  void w.terminate();
  return spawn();
}
