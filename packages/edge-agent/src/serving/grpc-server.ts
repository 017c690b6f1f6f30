/**
 * The gRPC form of the KServe v2 / Open Inference Protocol (inference.GRPCInferenceService, proto/grpc_predict_v2.proto)
 * beside the HTTP server, for edge apps whose language has a gRPC stub but no HTTP client to taste, and for stock
 * tritonclient.grpc: ServerLive/Ready, ModelReady, Server/ModelMetadata and ModelInfer, with tensors as
 * raw_input_contents (what tritonclient sends) or typed contents, outputs always as raw_output_contents.
 * Bad requests get INVALID_ARGUMENT (NOT_FOUND for an unknown model or version) with the HTTP server's messages.
 */
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { z } from 'zod';
import type { ModelSlot } from './model-slot.js';
import { ServingError, SERVER_EXTENSIONS, acquireModel, type DecodedInput } from './infer-core.js';
import { inferRouted } from './routed-infer.js';
import { decodeRaw, elementCount, encodeFp32 } from './binary-data.js';

const PROTO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'proto', 'grpc_predict_v2.proto');

// keepCase: the handlers read the upstream field names (raw_input_contents) as every other OIP implementation does.
const LOADER: protoLoader.Options = { keepCase: true, longs: Number, enums: String, defaults: true, oneofs: true };

const param = z.object({ bool_param: z.boolean().optional(), int64_param: z.number().optional(), string_param: z.string().optional() }).passthrough();
const inferRequestSchema = z.object({
  model_name: z.string(),
  model_version: z.string(),
  id: z.string(),
  parameters: z.record(z.string(), param),
  inputs: z.array(z.object({
    name: z.string().min(1),
    datatype: z.string(),
    shape: z.array(z.number().int().nonnegative()).min(1),
    contents: z.object({ fp32_contents: z.array(z.number()), bytes_contents: z.array(z.instanceof(Buffer)) }).passthrough().nullable(),
  }).passthrough()).min(1),
  outputs: z.array(z.object({ name: z.string() }).passthrough()),
  raw_input_contents: z.array(z.instanceof(Buffer)),
});
type InferRequest = z.infer<typeof inferRequestSchema>;

function grpcStatus(err: unknown): Partial<grpc.StatusObject> {
  if (err instanceof ServingError)
    return { code: err.status === 404 ? grpc.status.NOT_FOUND : err.status < 500 ? grpc.status.INVALID_ARGUMENT : grpc.status.INTERNAL, details: err.message };
  return { code: grpc.status.INTERNAL, details: err instanceof Error ? err.message : String(err) };
}

/** Wraps a handler: its result is the reply, a thrown ServingError becomes the matching gRPC status. */
function unary<Req, Res>(fn: (req: Req) => Res | Promise<Res>): grpc.handleUnaryCall<Req, Res> {
  return (call, cb) => {
    Promise.resolve()
      .then(() => fn(call.request))
      .then((res) => cb(null, res), (err: unknown) => cb(grpcStatus(err)));
  };
}

/** The request's tensors, from raw_input_contents (one per input, in order) or each input's typed contents. */
function decodeInputs(r: InferRequest, maxBytes: number): DecodedInput[] {
  const raw = r.raw_input_contents;
  if (raw.length > 0 && raw.length !== r.inputs.length)
    throw new ServingError(400, `raw_input_contents has ${raw.length} entries for ${r.inputs.length} inputs; send one per input, in input order, or none`);
  let bytes = raw.reduce((a, b) => a + b.length, 0);
  for (const i of r.inputs) bytes += (i.contents?.fp32_contents.length ?? 0) * 4 + (i.contents?.bytes_contents.reduce((a, b) => a + b.length, 0) ?? 0);
  if (bytes > maxBytes) throw new ServingError(413, `request tensors of ${bytes} bytes exceed the limit of ${maxBytes} bytes (fedge-agent --max-body-bytes)`);
  return r.inputs.map((inp, index) => {
    const count = elementCount(inp.shape, `input "${inp.name}"`);
    if (raw.length > 0) {
      const where = `raw_input_contents[${index}]`;
      return { name: inp.name, shape: inp.shape, datatype: inp.datatype, values: decodeRaw(raw[index]!, inp.datatype, count, `input "${inp.name}" (${where})`), where };
    }
    const c = inp.contents;
    if (inp.datatype === 'FP32' && c && c.fp32_contents.length > 0) return { name: inp.name, shape: inp.shape, datatype: 'FP32', values: Float32Array.from(c.fp32_contents), where: `inputs[${index}].contents.fp32_contents` };
    if (inp.datatype === 'BYTES' && c && c.bytes_contents.length > 0) return { name: inp.name, shape: inp.shape, datatype: 'BYTES', values: c.bytes_contents.map((b) => b.toString('utf8')), where: `inputs[${index}].contents.bytes_contents` };
    throw new ServingError(400, `input "${inp.name}" (inputs[${index}]): no data; send raw_input_contents or contents.${inp.datatype === 'BYTES' ? 'bytes' : 'fp32'}_contents`);
  });
}

export interface GrpcInferenceServerOptions { maxBodyBytes: number; maxBatch: number }

export class GrpcInferenceServer {
  private server: grpc.Server | undefined;
  requests = 0;

  constructor(private readonly slot: ModelSlot, private readonly opts: GrpcInferenceServerOptions) {}

  /** Binds host:port (port 0: any free port) without TLS; resolves with the bound port. */
  async listen(host: string, port: number): Promise<number> {
    const def = protoLoader.loadSync(PROTO, LOADER);
    const svc = (grpc.loadPackageDefinition(def) as unknown as { inference: { GRPCInferenceService: grpc.ServiceClientConstructor } }).inference.GRPCInferenceService;
    // Twice the body limit: a larger message is cut off by grpc-js (RESOURCE_EXHAUSTED) before it is decoded; below
    // that, decodeInputs refuses tensors over the limit with INVALID_ARGUMENT and a message naming the flag.
    const server = new grpc.Server({ 'grpc.max_receive_message_length': this.opts.maxBodyBytes * 2 + 64 * 1024, 'grpc.max_send_message_length': -1 });
    const slot = this.slot;
    server.addService(svc.service, {
      ServerLive: unary(() => ({ live: true })),
      ServerReady: unary(() => ({ ready: !!slot.current })),
      ServerMetadata: unary(() => ({ name: 'fedge-agent', version: '0.1.0', extensions: SERVER_EXTENSIONS })),
      ModelReady: unary((r: { name: string; version: string }) => {
        if (r.name !== slot.name) throw new ServingError(404, `unknown model "${r.name}"; this server serves "${slot.name}"`);
        const m = slot.acquire(r.version || undefined);
        if (m) slot.release(m);
        return { ready: !!m };
      }),
      ModelMetadata: unary((r: { name: string; version: string }) => {
        const m = acquireModel(slot, r.name, r.version || undefined);
        try {
          const versions = [slot.current?.version, slot.previous?.version].filter((v): v is string => v !== undefined);
          const t = (x: { name: string; datatype: string; shape: number[] }) => ({ name: x.name, datatype: x.datatype, shape: x.shape });
          return { name: slot.name, versions, platform: 'onnxruntime_onnx', inputs: m.inputs.map(t), outputs: m.outputs.map(t) };
        } finally {
          slot.release(m);
        }
      }),
      ModelInfer: unary(async (req: unknown) => {
        this.requests++;
        const parsed = inferRequestSchema.safeParse(req);
        if (!parsed.success) {
          const issue = parsed.error.issues[0];
          throw new ServingError(400, `invalid ModelInferRequest: ${issue ? `${issue.path.join('.') || '(request)'}: ${issue.message}` : 'malformed'}`);
        }
        const r = parsed.data;
        const inputs = decodeInputs(r, this.opts.maxBodyBytes);
        // No version named: the A/B split (if any) picks one, sticky by the request id.
        const res = await inferRouted(slot, { name: r.model_name, version: r.model_version || undefined, requestId: r.id || undefined, inputs, outputs: r.outputs.map((o) => o.name), maxBatch: this.opts.maxBatch });
        return {
          model_name: r.model_name,
          model_version: res.version,
          id: r.id,
          outputs: res.outputs.map((o) => ({ name: o.name, datatype: o.datatype, shape: o.shape })),
          raw_output_contents: res.outputs.map((o) => encodeFp32(o.data)),
        };
      }),
    });
    this.server = server;
    return new Promise((resolve, reject) => {
      const h = host.includes(':') ? `[${host}]` : host;
      server.bindAsync(`${h}:${port}`, grpc.ServerCredentials.createInsecure(), (err, bound) => (err ? reject(err) : resolve(bound)));
    });
  }

  async close(): Promise<void> {
    const s = this.server;
    if (!s) return;
    await new Promise<void>((resolve) => s.tryShutdown(() => resolve()));
  }
}
