/**
 * The inference step both protocols share (KServe v2 HTTP in server.ts, its gRPC form in grpc-server.ts): decoded
 * request tensors are checked against the model's inputs, run through its ORT session, and the asked-for outputs come
 * back as float32 arrays. Errors are ServingError with an HTTP status; the gRPC server maps them to status codes.
 */
import * as ort from 'onnxruntime-node';
import type { LoadedModel, ModelSlot, TensorMeta } from './model-slot.js';

/** A request failure: `status` is the HTTP status (400 bad request, 404 unknown model/version, 413 too large...). */
export class ServingError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

export type Leaf = number | string | null;

/**
 * One request input after transport decoding: JSON data flattened row-major (null: missing), or the binary tensor
 * extension's / gRPC's raw bytes decoded (Float32Array for FP32, strings for BYTES).
 */
export interface DecodedInput {
  name: string;
  shape: number[];
  datatype: string;
  values: Leaf[] | Float32Array | string[];
  /** Where it came from, for error messages: "inputs.0.data", "raw_input_contents[0]". */
  where: string;
}

export interface OutputTensor { name: string; datatype: 'FP32'; shape: number[]; data: Float32Array }

/** One decoded input as an ORT tensor, checked against the model's input `spec`; errors name the input and the fix. */
function toTensor(spec: TensorMeta, inp: DecodedInput, maxBatch: number): ort.Tensor {
  const kind = spec.parameters?.kind;
  if (inp.datatype !== spec.datatype) {
    const how = spec.datatype === 'BYTES' ? `send the ${kind === 'categorical' ? 'column\'s values' : 'values'} as JSON strings` : 'send numbers';
    throw new ServingError(400, `input "${spec.name}": datatype ${inp.datatype} is not supported; expected ${spec.datatype} (${how})`);
  }
  // A column sent as a flat list ([N] for [-1, 1]) is what most clients build; take it as N rows.
  const shape = spec.shape.length === 2 && spec.shape[1] === 1 && inp.shape.length === 1 ? [inp.shape[0]!, 1] : inp.shape;
  const ok = shape.length === spec.shape.length && spec.shape.every((d, i) => d === -1 || d === shape[i]);
  if (!ok) {
    const cols = spec.parameters?.columns;
    const hint = kind === 'numeric' && cols ? `; one row of ${cols.length} values per example: ${cols.join(', ')}` : '';
    throw new ServingError(400, `input "${spec.name}": shape ${JSON.stringify(inp.shape)} does not match ${JSON.stringify(spec.shape)} (-1: any batch size${hint})`);
  }
  const batch = shape[0]!;
  if (batch < 1 || batch > maxBatch) throw new ServingError(400, `input "${spec.name}": batch size ${batch} is outside 1..${maxBatch}`);
  const want = shape.reduce((a, b) => a * b, 1);
  const flat = inp.values;
  if (flat.length !== want) throw new ServingError(400, `input "${spec.name}" (${inp.where}): ${flat.length} values for shape ${JSON.stringify(inp.shape)} (needs ${want})`);
  if (spec.datatype === 'BYTES') return new ort.Tensor('string', Array.from(flat as Leaf[], (v) => (v === null ? '' : String(v))), shape);
  if (flat instanceof Float32Array) {
    const nan = kind === 'numeric' ? -1 : flat.findIndex((v) => Number.isNaN(v));
    if (nan >= 0) throw new ServingError(400, `input "${spec.name}": NaN at position ${nan}; this input has no missing-value handling, send a number`);
    return new ort.Tensor('float32', flat, shape);
  }
  const missing = (flat as Leaf[]).indexOf(null);
  // Only the preprocessing's numeric input replaces NaN with the fleet mean; elsewhere NaN would reach the model.
  if (missing >= 0 && kind !== 'numeric')
    throw new ServingError(400, `input "${spec.name}": null at position ${missing}; this input has no missing-value handling, send a number`);
  return new ort.Tensor('float32', Float32Array.from(flat as Leaf[], (v) => (v === null ? NaN : (v as number))), shape);
}

/** The model `name` at `version` (the current one without it), referenced; the caller must slot.release() it. */
export function acquireModel(slot: ModelSlot, name: string, version: string | undefined): LoadedModel {
  if (name !== slot.name) throw new ServingError(404, `unknown model "${name}"; this server serves "${slot.name}"`);
  const m = slot.acquire(version);
  if (!m) throw new ServingError(404, version ? `model "${name}" has no loaded version "${version}"` : `model "${name}" is not loaded yet`);
  return m;
}

/**
 * Runs `inputs` through the referenced model `m`; `outputs`: the names asked for (undefined or empty: all). Returns
 * the outputs in the order asked, each name once.
 */
export async function infer(m: LoadedModel, modelName: string, inputs: DecodedInput[], outputs: string[] | undefined, maxBatch: number): Promise<{ outputs: OutputTensor[]; batch: number }> {
  const feeds: Record<string, ort.Tensor> = {};
  let batch = 0;
  let first = '';
  const names = m.inputs.map((i) => i.name).join(', ');
  for (const spec of m.inputs) {
    const inp = inputs.find((i) => i.name === spec.name);
    if (!inp) throw new ServingError(400, `missing input "${spec.name}" (model inputs: ${names}; GET /v2/models/${modelName} lists each input's columns)`);
    const t = toTensor(spec, inp, maxBatch);
    const n = t.dims[0]!;
    if (first && n !== batch) throw new ServingError(400, `input "${spec.name}": batch size ${n} differs from input "${first}" (${batch}); send one row per example in every input`);
    if (!first) [first, batch] = [spec.name, n];
    feeds[spec.name] = t;
  }
  const extra = inputs.find((i) => !m.inputs.some((s) => s.name === i.name));
  if (extra) throw new ServingError(400, `unknown input "${extra.name}" (model inputs: ${names})`);
  // KServe v2: without `outputs` every output is returned; an empty list asks for no subset either (onnxruntime
  // refuses an empty fetch list with a 500). A name asked twice is computed and returned once.
  const wanted = outputs?.length ? [...new Set(outputs)] : m.outputs.map((o) => o.name);
  const unknown = wanted.find((n) => !m.outputs.some((o) => o.name === n));
  if (unknown) throw new ServingError(400, `unknown output "${unknown}" (model outputs: ${m.outputs.map((o) => o.name).join(', ')})`);
  const result = await m.session.run(feeds, wanted);
  const out = { batch, outputs: wanted.map((n) => ({ name: n, datatype: 'FP32' as const, shape: [...result[n]!.dims], data: result[n]!.data as Float32Array })) };
  for (const o of observers) {
    try {
      o(m, modelName, inputs, out.outputs, batch);
    } catch {
      // An observer (drift bookkeeping) never fails a request.
    }
  }
  return out;
}

/** Sees every successful inference (the served model, its decoded inputs and outputs): data drift (drift/tracker.ts). Synchronous, so keep it cheap. */
export type InferObserver = (m: LoadedModel, modelName: string, inputs: readonly DecodedInput[], outputs: readonly OutputTensor[], batch: number) => void;
const observers = new Set<InferObserver>();

/** Adds an observer; returns its removal. */
export function addInferObserver(o: InferObserver): () => void {
  observers.add(o);
  return () => observers.delete(o);
}

/** Triton's model configuration (GET /v2/models/NAME/config, what tritonclient's get_model_config reads). */
export function modelConfig(name: string, m: LoadedModel): Record<string, unknown> {
  // max_batch_size 0: the batch dimension is part of dims (-1), as the metadata's shapes show it.
  const io = (t: TensorMeta) => ({ name: t.name, data_type: `TYPE_${t.datatype === 'BYTES' ? 'STRING' : t.datatype}`, dims: t.shape });
  return { name, platform: 'onnxruntime_onnx', backend: 'onnxruntime', max_batch_size: 0, input: m.inputs.map(io), output: m.outputs.map(io), version_policy: { latest: { num_versions: 2 } } };
}

/** Extensions advertised in server metadata (HTTP GET /v2 and gRPC ServerMetadata). */
export const SERVER_EXTENSIONS = ['binary_tensor_data', 'model_configuration', 'fedge_rollback'];
