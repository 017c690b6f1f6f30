/** Receives a model download chunk by chunk: order and size checks here, copy and sha256 on a worker for large models. */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { ChunkAssembler, ChunkSequence, FedgeError, modelDigestPrefix, modelHasher, type TensorSpec } from '@fedge/proto';

/**
 * Models from this size on are assembled and hashed on a worker thread. Copying 1 MiB into fresh memory (page faults)
 * and hashing it cost the receiving thread about 3x what grpc-js itself spends on the chunk; on the worker that work
 * runs alongside the receiving. Smaller models stay inline: a worker round trip is not worth it for them.
 */
export const WORKER_MIN_BYTES = 4 << 20;

/**
 * A chunk whose ArrayBuffer holds at most this many other bytes is taken as owning it: grpc-js decodes each message
 * from a fresh buffer (5 bytes of framing and a few of protobuf tags before the data), and such a buffer is moved to
 * the worker instead of copied. Pooled or shared buffers hold far more, so they are always copied.
 */
const OWN_BUFFER_SLACK = 64;

export interface ModelReceiver {
  /**
   * Checks the next chunk (bad_offset, oversized) and takes it. May take over (detach) the chunk's ArrayBuffer when
   * it holds nothing but this chunk, so do not read `chunk` afterwards.
   */
  push(offset: number, chunk: Uint8Array): void;
  /** The assembled payload and its modelDigest; rejects when bytes are missing (truncated) or the worker failed. */
  finish(): Promise<{ bytes: Uint8Array; sha256: string }>;
  /** Abandons an unfinished download. */
  drop(): void;
}

const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const jobs = new Map();
const message = (err) => String((err && err.message) || err);
parentPort.on('message', (m) => {
  const j = jobs.get(m.id);
  try {
    if (m.op === 'start') jobs.set(m.id, { hash: createHash('sha256').update(m.prefix), dst: new Uint8Array(m.total) });
    else if (m.op === 'data') {
      if (!j || j.error) return;
      const v = new Uint8Array(m.buf, m.off, m.len);
      j.dst.set(v, m.at);
      j.hash.update(v);
    } else if (m.op === 'end') {
      jobs.delete(m.id);
      if (!j || j.error) parentPort.postMessage({ id: m.id, error: j ? j.error : 'unknown download' });
      else parentPort.postMessage({ id: m.id, digest: j.hash.digest('hex'), buf: j.dst.buffer }, [j.dst.buffer]);
    } else if (m.op === 'drop') jobs.delete(m.id);
  } catch (err) {
    if (m.op === 'start') jobs.set(m.id, { error: message(err) });
    else if (j) j.error = message(err);
  }
});
`;

interface Reply { id: number; digest?: string; buf?: ArrayBuffer; error?: string }

interface WorkerState {
  worker: Worker;
  alive: boolean;
  /** Downloads in progress: the worker keeps the process alive only while there are some. */
  active: number;
  waiting: Map<number, (r: Reply | undefined) => void>;
}

/** Starts receivers for a connection's downloads; one worker, started on first use, shared by them. */
export class ModelReceivers {
  private state: WorkerState | undefined;
  private nextId = 0;

  /** @param useWorker default: when the machine has a second core; on one core a worker only adds hand-offs */
  constructor(private readonly useWorker = availableParallelism() > 1) {}

  start(topologyJson: string, tensors: readonly TensorSpec[], totalBytes: number): ModelReceiver {
    if (!this.useWorker || totalBytes < WORKER_MIN_BYTES) return inlineReceiver(topologyJson, tensors, totalBytes);
    let s: WorkerState;
    try {
      s = this.worker();
    } catch {
      return inlineReceiver(topologyJson, tensors, totalBytes);
    }
    const id = this.nextId++;
    const seq = new ChunkSequence(totalBytes);
    let open = true;
    const close = (): void => {
      if (!open) return;
      open = false;
      if (--s.active === 0) s.worker.unref();
    };
    if (s.active++ === 0) s.worker.ref();
    s.worker.postMessage({ op: 'start', id, prefix: modelDigestPrefix(topologyJson, tensors), total: totalBytes });
    return {
      push(offset, chunk) {
        seq.next(offset, chunk.byteLength);
        if (!open || !s.alive || chunk.byteLength === 0) return;
        if (!(chunk.buffer instanceof SharedArrayBuffer) && chunk.buffer.byteLength - chunk.byteLength <= OWN_BUFFER_SLACK) {
          try {
            s.worker.postMessage({ op: 'data', id, buf: chunk.buffer, off: chunk.byteOffset, len: chunk.byteLength, at: offset }, [chunk.buffer]);
            return;
          } catch {
            // Not transferable after all (marked untransferable): copy it below.
          }
        }
        const copy = new Uint8Array(chunk);
        s.worker.postMessage({ op: 'data', id, buf: copy.buffer, off: 0, len: copy.byteLength, at: offset }, [copy.buffer]);
      },
      async finish() {
        try {
          seq.end();
        } catch (err) {
          this.drop();
          throw err;
        }
        if (!open || !s.alive) {
          close();
          throw new FedgeError('E_CONNECTION', 'model download: the receiving worker stopped');
        }
        const r = await new Promise<Reply | undefined>((resolve) => {
          s.waiting.set(id, resolve);
          s.worker.postMessage({ op: 'end', id });
        });
        close();
        if (!r?.buf || !r.digest) throw new FedgeError('E_CONNECTION', `model download: ${r?.error ?? 'the receiving worker stopped'}`);
        return { bytes: new Uint8Array(r.buf), sha256: r.digest };
      },
      drop() {
        if (!open) return;
        if (s.alive) s.worker.postMessage({ op: 'drop', id });
        close();
      },
    };
  }

  close(): void {
    void this.state?.worker.terminate();
    this.state = undefined;
  }

  private worker(): WorkerState {
    if (this.state?.alive) return this.state;
    const worker = new Worker(WORKER_SOURCE, { eval: true });
    const s: WorkerState = { worker, alive: true, active: 0, waiting: new Map() };
    worker.unref();
    worker.on('message', (r: Reply) => {
      const w = s.waiting.get(r.id);
      s.waiting.delete(r.id);
      w?.(r);
    });
    // Downloads in flight fail (the agent fetches again); the next download starts a new worker.
    const gone = (): void => {
      if (!s.alive) return;
      s.alive = false;
      if (this.state === s) this.state = undefined;
      for (const w of s.waiting.values()) w(undefined);
      s.waiting.clear();
    };
    worker.on('error', gone);
    worker.on('exit', gone);
    this.state = s;
    return s;
  }
}

function inlineReceiver(topologyJson: string, tensors: readonly TensorSpec[], totalBytes: number): ModelReceiver {
  const asm = new ChunkAssembler(totalBytes);
  const h = modelHasher(topologyJson, tensors);
  return {
    push(offset, chunk) {
      asm.push(offset, chunk);
      h.update(chunk);
    },
    finish: async () => ({ bytes: asm.finish(), sha256: h.digest('hex') }),
    drop: () => {},
  };
}
