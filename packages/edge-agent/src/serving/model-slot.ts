/**
 * One served model name with atomic hot swap. Requests take a reference to the current version synchronously
 * (no await between reading `current` and counting the request in), so a swap never pulls a session out from
 * under a request: the old session is released only once its last in-flight request has finished. The
 * version before the current one stays loaded for an instant rollback.
 */
import { createHash } from 'node:crypto';
import * as ort from 'onnxruntime-node';
import { parseColumns, readOnnxMetadata, type ColumnInfo } from './onnx-meta.js';
import { pickVersion, type SplitConfig } from './ab-split.js';
import { ServingStats } from './serving-stats.js';

/**
 * A served tensor as KServe v2 metadata lists it. `parameters` (a fedge extension, from the export's fedge.inputs /
 * fedge.outputs) says which columns it carries: `numeric` lists its columns in order, a categorical input its
 * vocabulary, a regression output its target.
 */
export interface TensorMeta {
  name: string;
  datatype: 'FP32' | 'BYTES';
  shape: number[];
  parameters?: { kind: string; columns?: string[]; values?: string[]; positive?: string; missing?: string };
}

export interface LoadedModel {
  version: string;
  session: ort.InferenceSession;
  inputs: TensorMeta[];
  outputs: TensorMeta[];
  bytes: number;
  sha256: string;
  loadedAt: string;
  /** Free-form provenance (run id, global version, source sha256, quantization). */
  info: Record<string, string | number>;
  inflight: number;
  retired: boolean;
}

export interface SessionSettings {
  /** ORT intra-op threads per session (default 1: predictable latency on small devices; raise for big batches). */
  intraOpThreads?: number;
  /** ORT graph optimization level (default 'all'; see README "Edge serving"). */
  optimization?: 'disabled' | 'basic' | 'extended' | 'all';
}

/**
 * Session options, chosen deliberately: 'all' lets ORT fuse DynamicQuantizeLinear + MatMulInteger + Cast + Mul
 * into DynamicQuantizeMatMul (the fast int8 path); the exporter never emits DequantizeLinear -> MatMul, which
 * 'all' would rewrite into MatMulNBits. One intra-op thread, sequential execution, no spinning threads burning
 * CPU on an edge device between requests.
 */
export function sessionOptions(s: SessionSettings = {}): ort.InferenceSession.SessionOptions {
  return {
    graphOptimizationLevel: s.optimization ?? 'all',
    intraOpNumThreads: s.intraOpThreads ?? 1,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    extra: { session: { intra_op: { allow_spinning: '0' } } },
  };
}

function dims(meta: ort.InferenceSession.ValueMetadata): number[] {
  if (!meta.isTensor) return [];
  return meta.shape.map((d) => (typeof d === 'number' && d >= 0 ? d : -1));
}

/** Why a column mapping is shown: a tensor of the bare model (no columns known) gets no parameters. */
function describe(c: ColumnInfo | undefined): TensorMeta['parameters'] | undefined {
  if (!c || (c.kind === 'raw' && !c.columns?.length) || c.kind === 'output') return undefined;
  return {
    kind: c.kind,
    ...(c.columns ? { columns: c.columns } : {}),
    ...(c.values ? { values: c.values } : {}),
    ...(c.positive !== undefined ? { positive: c.positive } : {}),
    // How a client says "missing" in the JSON body.
    ...(c.kind === 'numeric' ? { missing: 'null' } : c.kind === 'categorical' ? { missing: 'null, "" or any value not in values (encoded as all zeros)' } : {}),
  };
}

function tensorMeta(list: readonly ort.InferenceSession.ValueMetadata[], columns: Map<string, ColumnInfo>, outputs: boolean): TensorMeta[] {
  return list.map((m) => {
    const type = m.isTensor ? m.type : undefined;
    // Inputs may be strings (categorical columns); outputs are numbers.
    if (type !== 'float32' && !(type === 'string' && !outputs))
      throw new Error(`serving: ${outputs ? 'output' : 'input'} "${m.name}" is ${type ?? 'not a tensor'}; fedge serves float32 tensors and string inputs`);
    const parameters = describe(columns.get(m.name));
    return { name: m.name, datatype: type === 'string' ? 'BYTES' : 'FP32', shape: dims(m), ...(parameters ? { parameters } : {}) };
  });
}

/** The task type a fedge export records (fedge.task), shown in the model's metadata parameters. */
function taskType(json: string | undefined): string | undefined {
  try {
    const t = json === undefined ? undefined : (JSON.parse(json) as { type?: unknown } | null)?.type;
    return typeof t === 'string' ? t : undefined;
  } catch {
    return undefined;
  }
}

export class ModelSlot {
  current: LoadedModel | undefined;
  previous: LoadedModel | undefined;
  swaps = 0;
  /** Per-version outcomes, latency and predictions of the requests this slot answered (both protocols). */
  readonly stats = new ServingStats();
  /** A/B split set by the coordinator's canary (setSplit); wins over abFraction. */
  split: SplitConfig | undefined;
  /** `--serve-ab-fraction F`: without a canary split, F of requests go to the newest loaded version, the rest to the one before. */
  abFraction: number | undefined;

  constructor(readonly name: string, private readonly settings: SessionSettings = {}) {}

  /** Sets (or clears) the A/B split; a new split starts a new health window. */
  setSplit(split: SplitConfig | undefined): void {
    this.split = split;
    this.stats.resetWindow();
  }

  /** The split in force: the canary's, else the flag's once two versions are loaded. */
  activeSplit(): SplitConfig | undefined {
    if (this.split) return this.split;
    if (this.abFraction === undefined || !this.current || !this.previous) return undefined;
    return { stable: this.previous.version, candidate: this.current.version, fraction: this.abFraction, source: 'flag' };
  }

  /**
   * The version that answers a request naming none: the split's pick for `requestId` (sticky), or undefined (the
   * current version) when there is no split or the pick is no longer loaded.
   */
  route(requestId?: string): string | undefined {
    const s = this.activeSplit();
    if (!s) return undefined;
    const v = pickVersion(s, requestId);
    return v === this.current?.version || v === this.previous?.version ? v : undefined;
  }

  /** Creates a session for `onnx` and makes it current; the old current becomes `previous`. */
  async load(onnx: Uint8Array, version: string, info: Record<string, string | number> = {}): Promise<LoadedModel> {
    const session = await ort.InferenceSession.create(onnx, sessionOptions(this.settings));
    const meta = readOnnxMetadata(onnx) ?? {};
    let next: LoadedModel;
    try {
      const task = taskType(meta['fedge.task']);
      next = {
        version,
        session,
        inputs: tensorMeta(session.inputMetadata, parseColumns(meta['fedge.inputs']), false),
        outputs: tensorMeta(session.outputMetadata, parseColumns(meta['fedge.outputs']), true),
        bytes: onnx.byteLength,
        sha256: createHash('sha256').update(onnx).digest('hex'),
        loadedAt: new Date().toISOString(),
        info: { ...(typeof task === 'string' ? { task } : {}), ...info },
        inflight: 0,
        retired: false,
      };
    } catch (err) {
      await session.release();
      throw err;
    }
    // The swap itself is synchronous: requests see either the old or the new version, never neither.
    const dropped = this.previous;
    this.previous = this.current;
    this.current = next;
    this.swaps++;
    if (dropped) this.retire(dropped);
    // The flag's split now compares another pair of versions.
    if (this.abFraction !== undefined && !this.split) this.stats.resetWindow();
    return next;
  }

  /** Makes `previous` current again (the current one becomes `previous`). */
  rollback(): LoadedModel {
    if (!this.previous || !this.current) throw new Error(`model "${this.name}" has no previous version to roll back to`);
    [this.current, this.previous] = [this.previous, this.current];
    this.swaps++;
    return this.current;
  }

  acquire(version?: string): LoadedModel | undefined {
    const m = version === undefined || this.current?.version === version ? this.current : this.previous?.version === version ? this.previous : undefined;
    if (m) m.inflight++;
    return m;
  }

  release(m: LoadedModel): void {
    m.inflight--;
    if (m.retired && m.inflight === 0) void m.session.release().catch(() => undefined);
  }

  async close(): Promise<void> {
    for (const m of [this.current, this.previous]) if (m) this.retire(m);
    this.current = undefined;
    this.previous = undefined;
  }

  private retire(m: LoadedModel): void {
    m.retired = true;
    if (m.inflight === 0) void m.session.release().catch(() => undefined);
  }
}
