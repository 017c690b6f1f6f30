/**
 * Inference over HTTP in the KServe v2 / Open Inference Protocol form (JSON, and the binary tensor data extension
 * that stock tritonclient uses by default: a JSON header of Inference-Header-Content-Length bytes, raw tensors after):
 *   GET  /v2/health/live, /v2/health/ready (also /healthz, /readyz), /v2, /v2/models/{name}[/versions/{v}], /v2/models/{name}/ready
 *   GET  /v2/models/{name}/config     (Triton's model configuration, for tritonclient's get_model_config)
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
import { z } from 'zod';
import { listenOn } from '@fedge/proto';
import type { LoadedModel, ModelSlot } from './model-slot.js';
import { ServingError, SERVER_EXTENSIONS, modelConfig, type DecodedInput, type Leaf } from './infer-core.js';
import { inferRouted } from './routed-infer.js';
import { decodeRaw, elementCount, encodeFp32 } from './binary-data.js';

export const DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024;
export const DEFAULT_MAX_BATCH = 1024;

export interface InferenceServerOptions {
  maxBodyBytes?: number;
  maxBatch?: number;
  onRequest?: (e: { model: string; version: string; batch: number; ms: number }) => void;
}

const HttpError = ServingError;

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

const parameters = z.record(z.string(), z.unknown()).optional();
const inferRequestSchema = z.object({
  id: z.string().optional(),
  parameters,
  inputs: z
    .array(
      z.object({
        name: z.string(),
        shape: z.array(z.number().int().nonnegative()).min(1),
        datatype: z.string(),
        parameters,
        data: z.array(nested).optional(),
      }),
    )
    .min(1),
  outputs: z.array(z.object({ name: z.string(), parameters })).optional(),
});
type InferRequest = z.infer<typeof inferRequestSchema>;

function flatten(data: Nested[], out: Leaf[]): void {
  for (const v of data) {
    if (Array.isArray(v)) flatten(v, out);
    else out.push(v);
  }
}

/**
 * The request's inputs decoded: JSON `data`, or with the binary tensor extension (`parameters.binary_data_size`) the
 * next that many bytes after the JSON header, in input order.
 */
function decodeInputs(r: InferRequest, binary: Buffer): DecodedInput[] {
  let at = 0;
  const out = r.inputs.map((inp, index): DecodedInput => {
    const size = inp.parameters?.['binary_data_size'];
    if (size !== undefined) {
      const where = `inputs.${index} (binary_data_size ${String(size)})`;
      if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) throw new HttpError(400, `input "${inp.name}" (${where}): binary_data_size must be a byte count`);
      if (inp.data !== undefined) throw new HttpError(400, `input "${inp.name}" (inputs.${index}): has both data and binary_data_size; send one`);
      if (at + size > binary.length)
        throw new HttpError(400, `input "${inp.name}" (${where}): only ${binary.length - at} bytes of binary data remain after the JSON header (Inference-Header-Content-Length)`);
      const values = decodeRaw(binary.subarray(at, at + size), inp.datatype, elementCount(inp.shape, `input "${inp.name}"`), `input "${inp.name}" (${where})`);
      at += size;
      return { name: inp.name, shape: inp.shape, datatype: inp.datatype, values, where };
    }
    if (inp.data === undefined)
      throw new HttpError(400, `invalid inference request: inputs.${index}.data: required (or parameters.binary_data_size with the binary tensor data extension)`);
    const bad = badLeaf(inp.data, inp.datatype);
    if (bad !== undefined)
      throw new HttpError(400, `input "${inp.name}" (inputs.${index}.data): ${inp.datatype} data must be ${inp.datatype === 'BYTES' ? 'strings' : 'numbers'} (null for a missing value), got ${JSON.stringify(bad)}`);
    const values: Leaf[] = [];
    flatten(inp.data, values);
    return { name: inp.name, shape: inp.shape, datatype: inp.datatype, values, where: `inputs.${index}.data` };
  });
  if (at !== binary.length) throw new HttpError(400, `${binary.length - at} bytes of binary data after the JSON header belong to no input (check each input's binary_data_size)`);
  return out;
}

/** Whether output `name` goes back as binary: its own `binary_data` parameter, else the request's `binary_data_output`. */
function wantsBinary(r: InferRequest, name: string): boolean {
  const own = r.outputs?.find((o) => o.name === name)?.parameters?.['binary_data'];
  if (typeof own === 'boolean') return own;
  return r.parameters?.['binary_data_output'] === true;
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
  async listen(host: string, port: number): Promise<AddressInfo> {
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
    await listenOn(server, host, port);
    return server.address() as AddressInfo;
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
    // /healthz and /readyz (the names Kubernetes probes use) answer as /v2/health/live and /v2/health/ready.
    if (method === 'GET' && (url.pathname === '/healthz' || url.pathname === '/readyz')) parts.splice(0, parts.length, 'v2', 'health', url.pathname === '/healthz' ? 'live' : 'ready');
    if (parts[0] !== 'v2') throw new HttpError(404, `no such endpoint: ${method} ${url.pathname}`);
    // /v2, /v2/health/{live,ready}
    if (parts.length === 1 && method === 'GET') return send(res, 200, { name: 'fedge-agent', version: '0.1.0', extensions: SERVER_EXTENSIONS });
    if (parts[1] === 'health' && parts.length === 3 && method === 'GET') {
      if (parts[2] === 'live') return send(res, 200, { live: true });
      if (parts[2] === 'ready') return send(res, this.slot.current ? 200 : 503, this.slot.current ? { ready: true } : { ready: false, reason: 'no model version loaded yet' });
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
    if (method === 'GET' && (action === '' || action === 'ready' || action === 'config')) {
      const m = this.slot.acquire(version);
      if (!m) {
        if (action === 'ready') return send(res, 200, { name, ready: false });
        throw new HttpError(404, version ? `model "${name}" has no loaded version "${version}"` : `model "${name}" is not loaded yet`);
      }
      try {
        return send(res, 200, action === 'ready' ? { name, ready: true } : action === 'config' ? modelConfig(name, m) : metadata(this.slot, m));
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
    // Binary tensor data extension: the JSON header is the first Inference-Header-Content-Length bytes, raw tensors follow.
    const headerLength = req.headers['inference-header-content-length'];
    let jsonEnd = raw.length;
    if (headerLength !== undefined) {
      const n = Number(headerLength);
      if (!Number.isSafeInteger(n) || n < 0 || n > raw.length)
        throw new HttpError(400, `Inference-Header-Content-Length: "${String(headerLength)}" is not a byte count within the ${raw.length}-byte body`);
      jsonEnd = n;
    }
    let body: unknown;
    try {
      body = JSON.parse(raw.subarray(0, jsonEnd).toString('utf8'));
    } catch (err) {
      const hint = headerLength === undefined && raw.length > 0 && raw.includes(0) ? ' (binary tensor data needs the Inference-Header-Content-Length header)' : '';
      throw new HttpError(400, `request body is not valid JSON: ${(err as Error).message}${hint}`);
    }
    const parsed = inferRequestSchema.safeParse(body);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new HttpError(400, `invalid inference request: ${issue ? `${issue.path.join('.') || '(body)'}: ${issue.message}` : 'malformed'}`);
    }
    const r = parsed.data;
    const inputs = decodeInputs(r, raw.subarray(jsonEnd));
    // Sticky A/B routing: the x-request-id header, else the KServe request id.
    const header = req.headers['x-request-id'];
    const requestId = (Array.isArray(header) ? header[0] : header) || r.id;
    const result = await inferRouted(this.slot, { name, version, requestId, inputs, outputs: r.outputs?.map((o) => o.name), maxBatch: this.maxBatch });
    const blobs: Buffer[] = [];
    const outputs = result.outputs.map((o) => {
      if (!wantsBinary(r, o.name)) return { name: o.name, datatype: o.datatype, shape: o.shape, data: Array.from(o.data) };
      const bytes = encodeFp32(o.data);
      blobs.push(bytes);
      return { name: o.name, datatype: o.datatype, shape: o.shape, parameters: { binary_data_size: bytes.length } };
    });
    const reply = { model_name: name, model_version: result.version, ...(r.id !== undefined ? { id: r.id } : {}), outputs };
    // The version that answered, for clients that read headers only (binary replies, proxies, A/B dashboards).
    res.setHeader('x-model-version', result.version);
    if (blobs.length === 0) send(res, 200, reply);
    else {
      const json = Buffer.from(JSON.stringify(reply));
      const total = json.length + blobs.reduce((a, b) => a + b.length, 0);
      res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Inference-Header-Content-Length': json.length, 'Content-Length': total });
      res.end(Buffer.concat([json, ...blobs], total));
    }
    this.opts.onRequest?.({ model: name, version: result.version, batch: result.batch, ms: performance.now() - t0 });
  }
}
