/**
 * Inference over HTTP in the KServe v2 / Open Inference Protocol JSON form:
 *   GET  /v2/health/live, /v2/health/ready, /v2, /v2/models/{name}[/versions/{v}], /v2/models/{name}/ready
 *   POST /v2/models/{name}[/versions/{v}]/infer
 *   POST /v2/models/{name}/rollback   (fedge extension: make the previous version current again)
 * Request bodies are size-limited and validated with zod; every bad request gets a 4xx and a JSON
 * {"error": message} naming the input and what to send instead, and the server keeps serving.
 *
 * Models exported with preprocessing take raw columns: FP32 `numeric` (null for a missing value), one BYTES input
 * per categorical column (JSON strings), FP32 raw blocks; GET /v2/models/NAME lists them with their columns.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import * as ort from 'onnxruntime-node';
import { z } from 'zod';
import type { LoadedModel, ModelSlot, TensorMeta } from './model-slot.js';

export const DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024;
export const DEFAULT_MAX_BATCH = 1024;

export interface InferenceServerOptions {
  maxBodyBytes?: number;
  maxBatch?: number;
  onRequest?: (e: { model: string; version: string; batch: number; ms: number }) => void;
}

class HttpError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

type Leaf = number | string | null;
type Nested = Leaf | Nested[];
const nested: z.ZodType<Nested> = z.lazy(() => z.union([z.number(), z.string(), z.null(), z.array(nested)]));

/** The first leaf that does not fit `datatype` (numbers for FP32, strings for BYTES; null is "missing" in both). */
function badLeaf(data: Nested[], datatype: string): Leaf | undefined {
  const want = datatype === 'BYTES' ? 'string' : 'number';
  for (const v of data) {
    const bad = Array.isArray(v) ? badLeaf(v, datatype) : v !== null && typeof v !== want ? v : undefined;
    if (bad !== undefined) return bad;
  }
  return undefined;
}

const inferRequestSchema = z.object({
  id: z.string().optional(),
  parameters: z.record(z.string(), z.unknown()).optional(),
  inputs: z
    .array(
      z.object({
        name: z.string(),
        shape: z.array(z.number().int().nonnegative()).min(1),
        datatype: z.string(),
        parameters: z.record(z.string(), z.unknown()).optional(),
        data: z.array(nested),
      }),
    )
    .min(1),
  outputs: z.array(z.object({ name: z.string(), parameters: z.record(z.string(), z.unknown()).optional() })).optional(),
});

function flatten(data: Nested[], out: Leaf[]): void {
  for (const v of data) {
    if (Array.isArray(v)) flatten(v, out);
    else out.push(v);
  }
}

/** One request input as an ORT tensor, checked against the model's input `spec`; errors name the input and the fix. */
function toTensor(spec: TensorMeta, inp: { name: string; shape: number[]; datatype: string; data: Nested[] }, index: number, maxBatch: number): ort.Tensor {
  const kind = spec.parameters?.kind;
  if (inp.datatype !== spec.datatype) {
    const how = spec.datatype === 'BYTES' ? `send the ${kind === 'categorical' ? 'column\'s values' : 'values'} as JSON strings` : 'send numbers';
    throw new HttpError(400, `input "${spec.name}": datatype ${inp.datatype} is not supported; expected ${spec.datatype} (${how})`);
  }
  const bad = badLeaf(inp.data, spec.datatype);
  if (bad !== undefined)
    throw new HttpError(400, `input "${spec.name}" (inputs.${index}.data): ${spec.datatype} data must be ${spec.datatype === 'BYTES' ? 'strings' : 'numbers'} (null for a missing value), got ${JSON.stringify(bad)}`);
  // A column sent as a flat list ([N] for [-1, 1]) is what most clients build; take it as N rows.
  const shape = spec.shape.length === 2 && spec.shape[1] === 1 && inp.shape.length === 1 ? [inp.shape[0]!, 1] : inp.shape;
  const ok = shape.length === spec.shape.length && spec.shape.every((d, i) => d === -1 || d === shape[i]);
  if (!ok) {
    const cols = spec.parameters?.columns;
    const hint = kind === 'numeric' && cols ? `; one row of ${cols.length} values per example: ${cols.join(', ')}` : '';
    throw new HttpError(400, `input "${spec.name}": shape ${JSON.stringify(inp.shape)} does not match ${JSON.stringify(spec.shape)} (-1: any batch size${hint})`);
  }
  const batch = shape[0]!;
  if (batch < 1 || batch > maxBatch) throw new HttpError(400, `input "${spec.name}": batch size ${batch} is outside 1..${maxBatch}`);
  const flat: Leaf[] = [];
  flatten(inp.data, flat);
  const want = shape.reduce((a, b) => a * b, 1);
  if (flat.length !== want) throw new HttpError(400, `input "${spec.name}": ${flat.length} values for shape ${JSON.stringify(inp.shape)} (needs ${want})`);
  if (spec.datatype === 'BYTES') return new ort.Tensor('string', flat.map((v) => (v === null ? '' : (v as string))), shape);
  const missing = flat.indexOf(null);
  // Only the preprocessing's numeric input replaces NaN with the fleet mean; elsewhere NaN would reach the model.
  if (missing >= 0 && kind !== 'numeric')
    throw new HttpError(400, `input "${spec.name}": null at position ${missing}; this input has no missing-value handling, send a number`);
  return new ort.Tensor('float32', Float32Array.from(flat, (v) => (v === null ? NaN : (v as number))), shape);
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > limit) return reject(new HttpError(413, `request body of ${declared} bytes exceeds the limit of ${limit} bytes`));
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > limit) {
        req.removeAllListeners('data');
        req.resume();
        reject(new HttpError(413, `request body exceeds the limit of ${limit} bytes`));
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function metadata(slot: ModelSlot, m: LoadedModel): Record<string, unknown> {
  const versions = [slot.current?.version, slot.previous?.version].filter((v): v is string => v !== undefined);
  return { name: slot.name, versions, platform: 'onnxruntime_onnx', inputs: m.inputs, outputs: m.outputs, version: m.version, parameters: { ...m.info, bytes: m.bytes, sha256: m.sha256, loaded_at: m.loadedAt } };
}

export class InferenceServer {
  private server: Server | undefined;
  private readonly maxBody: number;
  private readonly maxBatch: number;
  requests = 0;
  failures = 0;

  constructor(private readonly slot: ModelSlot, private readonly opts: InferenceServerOptions = {}) {
    this.maxBody = opts.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
    this.maxBatch = opts.maxBatch ?? DEFAULT_MAX_BATCH;
  }

  /** Listens on host:port (port 0: any free port); resolves with the bound address. */
  listen(host: string, port: number): Promise<AddressInfo> {
    const server = createServer((req, res) => {
      this.handle(req, res).catch((err: unknown) => {
        const status = err instanceof HttpError ? err.status : 500;
        if (status >= 500) this.failures++;
        if (!res.headersSent) {
          if (status === 413) res.setHeader('connection', 'close');
          send(res, status, { error: err instanceof Error ? err.message : String(err) });
        } else res.destroy();
      });
    });
    server.keepAliveTimeout = 5_000;
    server.headersTimeout = 10_000;
    server.requestTimeout = 30_000;
    this.server = server;
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve(server.address() as AddressInfo);
      });
    });
  }

  async close(): Promise<void> {
    const s = this.server;
    if (!s) return;
    await new Promise<void>((resolve) => {
      s.close(() => resolve());
      s.closeIdleConnections();
    });
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    this.requests++;
    const url = new URL(req.url ?? '/', 'http://localhost');
    const parts = url.pathname.split('/').filter(Boolean).map(decodeURIComponent);
    const method = req.method ?? 'GET';
    if (parts[0] !== 'v2') throw new HttpError(404, `no such endpoint: ${method} ${url.pathname}`);
    // /v2, /v2/health/{live,ready}
    if (parts.length === 1 && method === 'GET') return send(res, 200, { name: 'fedge-agent', version: '0.1.0', extensions: ['fedge_rollback'] });
    if (parts[1] === 'health' && parts.length === 3 && method === 'GET') {
      if (parts[2] === 'live') return send(res, 200, { live: true });
      if (parts[2] === 'ready') return send(res, this.slot.current ? 200 : 503, { ready: !!this.slot.current });
    }
    if (parts[1] !== 'models' || parts.length < 3) throw new HttpError(404, `no such endpoint: ${method} ${url.pathname}`);
    const name = parts[2]!;
    let rest = parts.slice(3);
    let version: string | undefined;
    if (rest[0] === 'versions') {
      if (rest.length < 2) throw new HttpError(404, `no such endpoint: ${method} ${url.pathname}`);
      version = rest[1];
      rest = rest.slice(2);
    }
    if (name !== this.slot.name) throw new HttpError(404, `unknown model "${name}"; this server serves "${this.slot.name}"`);
    const action = rest.join('/');
    if (method === 'GET' && (action === '' || action === 'ready')) {
      const m = this.slot.acquire(version);
      if (!m) {
        if (action === 'ready') return send(res, 200, { name, ready: false });
        throw new HttpError(404, version ? `model "${name}" has no loaded version "${version}"` : `model "${name}" is not loaded yet`);
      }
      try {
        return send(res, 200, action === 'ready' ? { name, ready: true } : metadata(this.slot, m));
      } finally {
        this.slot.release(m);
      }
    }
    if (method === 'POST' && action === 'rollback' && version === undefined) {
      await readBody(req, this.maxBody);
      let m: LoadedModel;
      try {
        m = this.slot.rollback();
      } catch (err) {
        throw new HttpError(409, (err as Error).message);
      }
      return send(res, 200, { name, version: m.version });
    }
    if (action !== 'infer') throw new HttpError(404, `no such endpoint: ${method} ${url.pathname}`);
    if (method !== 'POST') throw new HttpError(405, `use POST for ${url.pathname}`);
    return this.infer(req, res, name, version);
  }

  private async infer(req: IncomingMessage, res: ServerResponse, name: string, version: string | undefined): Promise<void> {
    const t0 = performance.now();
    const raw = await readBody(req, this.maxBody);
    let body: unknown;
    try {
      body = JSON.parse(raw.toString('utf8'));
    } catch (err) {
      throw new HttpError(400, `request body is not valid JSON: ${(err as Error).message}`);
    }
    const parsed = inferRequestSchema.safeParse(body);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new HttpError(400, `invalid inference request: ${issue ? `${issue.path.join('.') || '(body)'}: ${issue.message}` : 'malformed'}`);
    }
    const r = parsed.data;
    // Reference the model before any await so a concurrent swap cannot release its session under us.
    const m = this.slot.acquire(version);
    if (!m) throw new HttpError(404, version ? `model "${name}" has no loaded version "${version}"` : `model "${name}" is not loaded yet`);
    try {
      const feeds: Record<string, ort.Tensor> = {};
      let batch = 0;
      let first = '';
      const names = m.inputs.map((i) => i.name).join(', ');
      for (const spec of m.inputs) {
        const inp = r.inputs.find((i) => i.name === spec.name);
        if (!inp) throw new HttpError(400, `missing input "${spec.name}" (model inputs: ${names}; GET /v2/models/${name} lists each input's columns)`);
        const t = toTensor(spec, inp, r.inputs.indexOf(inp), this.maxBatch);
        const n = t.dims[0]!;
        if (first && n !== batch) throw new HttpError(400, `input "${spec.name}": batch size ${n} differs from input "${first}" (${batch}); send one row per example in every input`);
        if (!first) [first, batch] = [spec.name, n];
        feeds[spec.name] = t;
      }
      const extra = r.inputs.find((i) => !m.inputs.some((s) => s.name === i.name));
      if (extra) throw new HttpError(400, `unknown input "${extra.name}" (model inputs: ${names})`);
      // KServe v2: without `outputs` every output is returned; an empty list asks for no subset either (onnxruntime
      // refuses an empty fetch list with a 500). A name asked twice is computed and returned once.
      const wanted = r.outputs?.length ? [...new Set(r.outputs.map((o) => o.name))] : m.outputs.map((o) => o.name);
      const unknown = wanted.find((n) => !m.outputs.some((o) => o.name === n));
      if (unknown) throw new HttpError(400, `unknown output "${unknown}" (model outputs: ${m.outputs.map((o) => o.name).join(', ')})`);
      const result = await m.session.run(feeds, wanted);
      const outputs = wanted.map((n) => {
        const t = result[n]!;
        return { name: n, datatype: 'FP32', shape: [...t.dims], data: Array.from(t.data as Float32Array) };
      });
      send(res, 200, { model_name: name, model_version: m.version, ...(r.id !== undefined ? { id: r.id } : {}), outputs });
      this.opts.onRequest?.({ model: name, version: m.version, batch, ms: performance.now() - t0 });
    } finally {
      this.slot.release(m);
    }
  }
}
