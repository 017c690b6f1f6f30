/**
 * Converts a TensorFlow.js LayersModel (as a fedge ModelBlob: Keras topology JSON + named float32 weights) to an
 * ONNX graph, float32 or int8.
 *
 * Layout: tfjs is channels-last (NHWC), ONNX Conv/Pool are NCHW. Image tensors are kept NCHW inside the graph
 * (one Transpose on the way in, none when there is a single channel, one before a Flatten so the following Dense
 * kernel sees the tfjs feature order); the graph's input and output keep the tfjs per-sample shapes.
 *
 * int8: weights are quantized symmetrically per output channel (zero point 0). Activations are quantized to
 * uint8 either per call (`dynamic`: DynamicQuantizeLinear, the pattern ORT fuses into DynamicQuantizeMatMul)
 * or with fixed ranges measured on calibration data (`static`: QuantizeLinear). Dense -> MatMulInteger,
 * Conv2D -> ConvInteger, both followed by Cast -> Mul(x_scale * w_scale[c]) -> Add(bias). DequantizeLinear ->
 * MatMul ("QDQ") is deliberately not used: on CPU it re-dequantizes the weights every call and is slower than
 * float.
 */
import { ValidationError, totalParams, type ModelBlob } from '@fedge/proto';
import { AttrType, DataType, encodeModel, type AttributeProtoObj, type DataTypeCode, type ModelProtoObj, type NodeProtoObj, type TensorProtoObj, type ValueInfoObj } from './proto.js';
import { quantizePerChannel, uint8Params } from './quantize.js';

export const ONNX_OPSET = 13;
export const ONNX_IR_VERSION = 8;

export type OnnxQuantization = 'none' | 'int8';
export type ActivationRanges = Record<string, { min: number; max: number }>;

export interface OnnxExportOptions {
  quantize?: OnnxQuantization;
  /** int8 only: 'dynamic' (default) or 'static', which needs `activationRanges` (see calibrateActivationRanges). */
  activations?: 'dynamic' | 'static';
  /** Input range of each Dense/Conv2D layer, keyed by layer name, for static activation quantization. */
  activationRanges?: ActivationRanges;
  /**
   * int8 only: also quantize Conv2D layers (ConvInteger; default true). ORT's CPU ConvInteger is slower than its
   * float Conv (see bench/serving.md); false keeps convolutions float and quantizes Dense layers only.
   */
  quantizeConv?: boolean;
  /** Graph name and ModelProto.model_version (e.g. the global model version). */
  graphName?: string;
  modelVersion?: number;
  /** Extra ModelProto.metadata_props (run id, source sha256, ...). */
  metadata?: Record<string, string>;
}

export interface OnnxTensorInfo { name: string; datatype: 'FP32'; shape: number[] }
export interface OnnxExport {
  bytes: Uint8Array;
  /** Per-tensor shapes with -1 for the batch dimension (KServe v2 convention). */
  input: OnnxTensorInfo;
  output: OnnxTensorInfo;
  quantization: 'none' | 'int8-dynamic' | 'int8-static';
  /** Layer names that became int8 ops. */
  quantizedLayers: string[];
}

export const ONNX_INPUT = 'input';
export const ONNX_OUTPUT = 'output';

interface LayerDef { className: string; name: string; config: Record<string, unknown> }
interface Weight { shape: number[]; data: Float32Array }

/** Layer classes the exporter understands (anything else fails with the layer's name and class). */
export const SUPPORTED_LAYERS = [
  'InputLayer', 'Dense', 'Conv2D', 'MaxPooling2D', 'AveragePooling2D', 'Flatten', 'Reshape', 'Dropout',
  'Activation', 'ReLU', 'Softmax', 'BatchNormalization',
] as const;

function fail(layer: LayerDef, why: string): never {
  throw new ValidationError(`onnx export: layer "${layer.name}" (${layer.className}): ${why}`);
}

function numArray(v: unknown, what: string, layer: LayerDef): number[] {
  if (typeof v === 'number') return [v, v];
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'number')) fail(layer, `${what} must be numbers, got ${JSON.stringify(v)}`);
  return v as number[];
}

/** Flattens Sequential and linear functional topologies into an ordered layer list plus the per-sample input shape. */
export function parseTopology(topology: unknown): { layers: LayerDef[]; inputShape: number[]; name: string } {
  const t = topology as { class_name?: unknown; config?: unknown } | null;
  if (!t || typeof t !== 'object') throw new ValidationError('onnx export: topology is not an object');
  const cfg = t.config as { name?: unknown; layers?: unknown; input_layers?: unknown } | unknown[] | undefined;
  const rawLayers = Array.isArray(cfg) ? cfg : (cfg as { layers?: unknown } | undefined)?.layers;
  if (!Array.isArray(rawLayers) || rawLayers.length === 0) throw new ValidationError('onnx export: topology has no layers');
  const name = !Array.isArray(cfg) && typeof cfg?.name === 'string' ? cfg.name : 'model';
  const layers: LayerDef[] = rawLayers.map((l: { class_name?: unknown; config?: { name?: unknown } & Record<string, unknown> }, i) => ({
    className: String(l.class_name),
    name: typeof l.config?.name === 'string' ? l.config.name : `layer${i}`,
    config: l.config ?? {},
  }));
  if (t.class_name !== 'Sequential') {
    // Functional model: accept a single chain (every layer fed by exactly the one before it).
    if (t.class_name !== 'Model' && t.class_name !== 'Functional') throw new ValidationError(`onnx export: unsupported model class "${String(t.class_name)}"`);
    for (let i = 1; i < rawLayers.length; i++) {
      const inbound = (rawLayers[i] as { inbound_nodes?: unknown }).inbound_nodes as unknown[][][] | undefined;
      const from = inbound?.length === 1 && inbound[0]?.length === 1 ? inbound[0][0]?.[0] : undefined;
      if (from !== layers[i - 1]!.name) fail(layers[i]!, 'only linear chains of layers can be exported (this layer has another input)');
    }
  }
  const first = layers[0]!;
  const bis = (first.config['batch_input_shape'] ?? first.config['batchInputShape']) as unknown;
  if (!Array.isArray(bis) || bis.length < 2 || !bis.slice(1).every((d) => typeof d === 'number' && d > 0))
    fail(first, `needs a fully defined batch_input_shape, got ${JSON.stringify(bis)}`);
  return { layers: layers.filter((l) => l.className !== 'InputLayer'), inputShape: (bis as number[]).slice(1), name };
}

function weightMap(blob: ModelBlob): Map<string, Weight> {
  const n = totalParams(blob.tensors);
  if (blob.weights.length !== n) throw new ValidationError(`onnx export: tensors describe ${n} values but the buffer holds ${blob.weights.length}`);
  const m = new Map<string, Weight>();
  let off = 0;
  for (const s of blob.tensors) {
    const size = s.shape.reduce((a, b) => a * b, 1);
    m.set(s.name, { shape: [...s.shape], data: blob.weights.subarray(off, off + size) });
    off += size;
  }
  return m;
}

const bytesOf = (a: Float32Array | Int8Array | Uint8Array | Int32Array | BigInt64Array): Uint8Array => {
  // Copy into a fresh little-endian buffer (all supported hosts are little-endian, as are ONNX raw_data bytes).
  const out = new Uint8Array(a.byteLength);
  out.set(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
  return out;
};

class GraphBuilder {
  readonly nodes: NodeProtoObj[] = [];
  readonly initializers: TensorProtoObj[] = [];
  private readonly used = new Set<string>();

  unique(base: string): string {
    let n = base;
    for (let i = 1; this.used.has(n); i++) n = `${base}_${i}`;
    this.used.add(n);
    return n;
  }

  init(name: string, dataType: DataTypeCode, dims: number[], data: Float32Array | Int8Array | Uint8Array | Int32Array | BigInt64Array): string {
    const n = this.unique(name);
    this.initializers.push({ name: n, dims, dataType, rawData: bytesOf(data) });
    return n;
  }
  f32(name: string, dims: number[], data: Float32Array | number[]): string {
    return this.init(name, DataType.FLOAT, dims, data instanceof Float32Array ? data : Float32Array.from(data));
  }
  i64(name: string, values: number[]): string {
    return this.init(name, DataType.INT64, [values.length], BigInt64Array.from(values.map((v) => BigInt(v))));
  }

  node(opType: string, name: string, inputs: string[], attrs: Record<string, number | number[] | string> = {}, nOut = 1): string[] {
    const nodeName = this.unique(`${name}/${opType}`);
    const outputs = Array.from({ length: nOut }, (_, i) => this.unique(`${name}/${opType}${nOut > 1 ? `:${i}` : ''}`));
    const attribute: AttributeProtoObj[] = Object.entries(attrs).map(([k, v]) =>
      Array.isArray(v)
        ? { name: k, type: AttrType.INTS, ints: v }
        : typeof v === 'string'
          ? { name: k, type: AttrType.STRING, s: new TextEncoder().encode(v) }
          : Number.isInteger(v) && k !== 'alpha' && k !== 'epsilon'
            ? { name: k, type: AttrType.INT, i: v }
            : { name: k, type: AttrType.FLOAT, f: v },
    );
    this.nodes.push({ name: nodeName, opType, input: inputs, output: outputs, attribute });
    return outputs;
  }
  op(opType: string, name: string, inputs: string[], attrs: Record<string, number | number[] | string> = {}): string {
    return this.node(opType, name, inputs, attrs)[0]!;
  }
}

/** Current value flowing through the chain: ONNX tensor name, tfjs per-sample shape, and whether it is held NCHW. */
interface Cursor { name: string; shape: number[]; nchw: boolean }

function samePads(inSize: number, k: number, s: number, d: number): [number, number, number] {
  const out = Math.ceil(inSize / s);
  const total = Math.max((out - 1) * s + (k - 1) * d + 1 - inSize, 0);
  const begin = Math.floor(total / 2);
  return [begin, total - begin, out];
}

function spatial(layer: LayerDef, shape: number[], kernel: number[], strides: number[], dil: number[]): { pads: number[]; out: number[] } {
  const padding = String(layer.config['padding'] ?? 'valid');
  const pads = [0, 0, 0, 0];
  const out = [0, 0];
  for (let a = 0; a < 2; a++) {
    const inSize = shape[a]!;
    if (padding === 'same') {
      const [b, e, o] = samePads(inSize, kernel[a]!, strides[a]!, dil[a]!);
      pads[a] = b;
      pads[a + 2] = e;
      out[a] = o;
    } else if (padding === 'valid') {
      out[a] = Math.floor((inSize - ((kernel[a]! - 1) * dil[a]! + 1)) / strides[a]!) + 1;
    } else fail(layer, `padding "${padding}" is not supported (valid, same)`);
    if (out[a]! <= 0) fail(layer, `output would be empty for input ${JSON.stringify(shape)}`);
  }
  return { pads, out };
}

export function exportOnnx(blob: ModelBlob, opts: OnnxExportOptions = {}): OnnxExport {
  const quant = opts.quantize ?? 'none';
  if (quant !== 'none' && quant !== 'int8') throw new ValidationError(`onnx export: quantize must be none or int8, got "${String(quant)}"`);
  const staticActs = quant === 'int8' && opts.activations === 'static';
  if (staticActs && !opts.activationRanges) throw new ValidationError('onnx export: static activation quantization needs activation ranges from calibration data');
  const { layers, inputShape, name: modelName } = parseTopology(blob.topology);
  const weights = weightMap(blob);
  const g = new GraphBuilder();
  g.unique(ONNX_INPUT);
  const quantizedLayers: string[] = [];

  const weight = (layer: LayerDef, key: string, required = true): Weight | undefined => {
    const w = weights.get(`${layer.name}/${key}`);
    if (!w && required) fail(layer, `weight "${layer.name}/${key}" is missing from the model's tensors`);
    return w;
  };

  for (const l of layers) {
    if (!(SUPPORTED_LAYERS as readonly string[]).includes(l.className))
      fail(l, `layer type is not supported by the ONNX exporter (supported: ${SUPPORTED_LAYERS.filter((c) => c !== 'InputLayer').join(', ')})`);
    const df = l.config['data_format'];
    if (df !== undefined && df !== null && df !== 'channels_last') fail(l, `data_format "${String(df)}" is not supported (channels_last only)`);
  }

  // BatchNormalization right after a Dense/Conv2D without activation folds into that layer's weights.
  const folded = new Set<string>();
  const override = new Map<string, { kernel: Weight; bias: Float32Array }>();
  const bnAffine = (bn: LayerDef, channels: number): { scale: Float32Array; shift: Float32Array } => {
    const eps = typeof bn.config['epsilon'] === 'number' ? bn.config['epsilon'] : 1e-3;
    const gamma = bn.config['scale'] === false ? undefined : weight(bn, 'gamma')!.data;
    const beta = bn.config['center'] === false ? undefined : weight(bn, 'beta')!.data;
    const mean = weight(bn, 'moving_mean')!.data;
    const variance = weight(bn, 'moving_variance')!.data;
    if (mean.length !== channels) fail(bn, `moving_mean has ${mean.length} values for ${channels} channels`);
    const scale = new Float32Array(channels);
    const shift = new Float32Array(channels);
    for (let c = 0; c < channels; c++) {
      scale[c] = (gamma ? gamma[c]! : 1) / Math.sqrt(variance[c]! + eps);
      shift[c] = (beta ? beta[c]! : 0) - mean[c]! * scale[c]!;
    }
    return { scale, shift };
  };
  for (let i = 1; i < layers.length; i++) {
    const bn = layers[i]!;
    const prev = layers[i - 1]!;
    if (bn.className !== 'BatchNormalization') continue;
    if ((prev.className !== 'Dense' && prev.className !== 'Conv2D') || (prev.config['activation'] ?? 'linear') !== 'linear') continue;
    const k = weight(prev, 'kernel')!;
    const out = k.shape[k.shape.length - 1]!;
    const { scale, shift } = bnAffine(bn, out);
    const kernel = new Float32Array(k.data.length);
    for (let j = 0; j < kernel.length; j++) kernel[j] = k.data[j]! * scale[j % out]!; // output channel is the last axis
    const b = prev.config['use_bias'] === false ? undefined : weight(prev, 'bias')!.data;
    const bias = new Float32Array(out);
    for (let c = 0; c < out; c++) bias[c] = (b ? b[c]! : 0) * scale[c]! + shift[c]!;
    override.set(prev.name, { kernel: { shape: k.shape, data: kernel }, bias });
    folded.add(bn.name);
  }

  let cur: Cursor = { name: ONNX_INPUT, shape: [...inputShape], nchw: false };
  if (inputShape.length === 3) cur = toNchw(g, cur, 'input');
  else if (inputShape.length !== 1) throw new ValidationError(`onnx export: input shape ${JSON.stringify(inputShape)} is not supported (vectors or HxWxC images)`);

  for (const l of layers) {
    switch (l.className) {
      case 'Dropout':
        break;
      case 'Flatten': {
        if (cur.shape.length === 1) break;
        cur = toNhwc(g, cur, l.name);
        const size = cur.shape.reduce((a, b) => a * b, 1);
        cur = { name: g.op('Flatten', l.name, [cur.name], { axis: 1 }), shape: [size], nchw: false };
        break;
      }
      case 'Reshape': {
        const target = numArray(l.config['target_shape'] ?? l.config['targetShape'], 'target_shape', l);
        const size = cur.shape.reduce((a, b) => a * b, 1);
        const known = target.filter((d) => d !== -1).reduce((a, b) => a * b, 1);
        const shape = target.map((d) => (d === -1 ? size / known : d));
        if (shape.reduce((a, b) => a * b, 1) !== size || !shape.every((d) => Number.isInteger(d) && d > 0))
          fail(l, `cannot reshape ${JSON.stringify(cur.shape)} to ${JSON.stringify(target)}`);
        if (shape.length !== 1 && shape.length !== 3) fail(l, `reshape to rank ${shape.length} is not supported (vectors or HxWxC images)`);
        cur = toNhwc(g, cur, l.name);
        if (shape.length === 3 && shape[2] === 1) {
          // NHWC with one channel has the same memory layout as NCHW: reshape straight to [N, 1, H, W].
          cur = { name: g.op('Reshape', l.name, [cur.name, g.i64(`${l.name}/shape`, [0, 1, shape[0]!, shape[1]!])]), shape, nchw: true };
        } else {
          cur = { name: g.op('Reshape', l.name, [cur.name, g.i64(`${l.name}/shape`, [0, ...shape])]), shape, nchw: false };
          if (shape.length === 3) cur = toNchw(g, cur, l.name);
        }
        break;
      }
      case 'Dense': {
        if (cur.shape.length !== 1) fail(l, `input of shape ${JSON.stringify(cur.shape)}: Dense is exported for flat inputs only (add a Flatten)`);
        const units = Number(l.config['units']);
        const o = override.get(l.name);
        const k = o?.kernel ?? weight(l, 'kernel')!;
        if (k.shape.length !== 2 || k.shape[0] !== cur.shape[0] || k.shape[1] !== units) fail(l, `kernel shape ${JSON.stringify(k.shape)} does not fit input ${cur.shape[0]} -> ${units}`);
        const bias = o?.bias ?? (l.config['use_bias'] === false ? undefined : weight(l, 'bias')!.data);
        if (quant === 'int8') {
          const q = quantizePerChannel(k.data, units, (i) => i % units);
          const wq = g.init(`${l.name}/kernel_quantized`, DataType.INT8, k.shape, q.q);
          const wzp = g.init(`${l.name}/kernel_zero_point`, DataType.INT8, [units], new Int8Array(units));
          const x = quantizeInput(g, cur.name, l, staticActs ? opts.activationRanges : undefined);
          const mm = g.op('MatMulInteger', l.name, [x.q, wq, x.zp, wzp]);
          cur = { name: dequantize(g, l.name, mm, x, q.scales, [units], bias), shape: [units], nchw: false };
          quantizedLayers.push(l.name);
        } else {
          const inputs = [cur.name, g.f32(`${l.name}/kernel`, k.shape, k.data)];
          if (bias) inputs.push(g.f32(`${l.name}/bias`, [units], bias));
          cur = { name: g.op('Gemm', l.name, inputs), shape: [units], nchw: false };
        }
        cur = activation(g, cur, l, String(l.config['activation'] ?? 'linear'));
        break;
      }
      case 'Conv2D': {
        if (cur.shape.length !== 3) fail(l, `input of shape ${JSON.stringify(cur.shape)}: Conv2D needs HxWxC input`);
        const filters = Number(l.config['filters']);
        const kernel = numArray(l.config['kernel_size'], 'kernel_size', l);
        const strides = numArray(l.config['strides'] ?? [1, 1], 'strides', l);
        const dil = numArray(l.config['dilation_rate'] ?? [1, 1], 'dilation_rate', l);
        if ((l.config['groups'] ?? 1) !== 1) fail(l, 'grouped convolutions are not supported');
        const o = override.get(l.name);
        const k = o?.kernel ?? weight(l, 'kernel')!;
        const [kh, kw, cin, cout] = k.shape as [number, number, number, number];
        if (k.shape.length !== 4 || kh !== kernel[0] || kw !== kernel[1] || cin !== cur.shape[2] || cout !== filters)
          fail(l, `kernel shape ${JSON.stringify(k.shape)} does not fit input ${JSON.stringify(cur.shape)} -> ${filters} filters`);
        // tfjs [kh, kw, in, out] -> ONNX [out, in, kh, kw]
        const w = new Float32Array(k.data.length);
        for (let y = 0; y < kh; y++)
          for (let x = 0; x < kw; x++)
            for (let ci = 0; ci < cin; ci++)
              for (let co = 0; co < cout; co++) w[((co * cin + ci) * kh + y) * kw + x] = k.data[((y * kw + x) * cin + ci) * cout + co]!;
        const { pads, out } = spatial(l, cur.shape, kernel, strides, dil);
        const attrs = { kernel_shape: kernel, strides, dilations: dil, pads };
        const bias = o?.bias ?? (l.config['use_bias'] === false ? undefined : weight(l, 'bias')!.data);
        const wshape = [cout, cin, kh, kw];
        const per = cin * kh * kw;
        if (quant === 'int8' && opts.quantizeConv !== false) {
          const q = quantizePerChannel(w, cout, (i) => Math.floor(i / per));
          const wq = g.init(`${l.name}/kernel_quantized`, DataType.INT8, wshape, q.q);
          // Symmetric: every channel's zero point is 0, so one scalar serves (ORT's ConvInteger rejects per-channel
          // zero points); the per-channel scales are applied after the integer convolution.
          const wzp = g.init(`${l.name}/kernel_zero_point`, DataType.INT8, [], new Int8Array(1));
          const x = quantizeInput(g, cur.name, l, staticActs ? opts.activationRanges : undefined);
          const conv = g.op('ConvInteger', l.name, [x.q, wq, x.zp, wzp], attrs);
          cur = { name: dequantize(g, l.name, conv, x, q.scales, [cout, 1, 1], bias), shape: [out[0]!, out[1]!, filters], nchw: true };
          quantizedLayers.push(l.name);
        } else {
          const inputs = [cur.name, g.f32(`${l.name}/kernel`, wshape, w)];
          if (bias) inputs.push(g.f32(`${l.name}/bias`, [cout], bias));
          cur = { name: g.op('Conv', l.name, inputs, attrs), shape: [out[0]!, out[1]!, filters], nchw: true };
        }
        cur = activation(g, cur, l, String(l.config['activation'] ?? 'linear'));
        break;
      }
      case 'MaxPooling2D':
      case 'AveragePooling2D': {
        if (cur.shape.length !== 3) fail(l, `input of shape ${JSON.stringify(cur.shape)}: pooling needs HxWxC input`);
        const pool = numArray(l.config['pool_size'] ?? [2, 2], 'pool_size', l);
        const strides = l.config['strides'] == null ? pool : numArray(l.config['strides'], 'strides', l);
        const { pads, out } = spatial(l, cur.shape, pool, strides, [1, 1]);
        const op = l.className === 'MaxPooling2D' ? 'MaxPool' : 'AveragePool';
        // AveragePool's default count_include_pad=0 matches tfjs 'same' (padding excluded from the mean).
        cur = { name: g.op(op, l.name, [cur.name], { kernel_shape: pool, strides, pads }), shape: [out[0]!, out[1]!, cur.shape[2]!], nchw: true };
        break;
      }
      case 'Activation':
        cur = activation(g, cur, l, String(l.config['activation'] ?? 'linear'));
        break;
      case 'ReLU': {
        const max = l.config['max_value'] ?? l.config['maxValue'];
        cur = max == null ? activation(g, cur, l, 'relu') : clip(g, cur, l.name, 0, Number(max));
        break;
      }
      case 'Softmax': {
        const axis = l.config['axis'] ?? -1;
        if (axis !== -1 && axis !== cur.shape.length) fail(l, `softmax over axis ${String(axis)} is not supported (last axis only)`);
        cur = activation(g, cur, l, 'softmax');
        break;
      }
      case 'BatchNormalization': {
        if (folded.has(l.name)) break;
        const axis = l.config['axis'];
        const lastAxis = cur.shape.length; // Keras counts the batch dimension
        const ok = axis === undefined || axis === -1 || axis === lastAxis || (Array.isArray(axis) && axis.length === 1 && (axis[0] === -1 || axis[0] === lastAxis));
        if (!ok) fail(l, `normalization over axis ${JSON.stringify(axis)} is not supported (channels axis only)`);
        const channels = cur.shape[cur.shape.length - 1]!;
        const { scale, shift } = bnAffine(l, channels);
        const dims = cur.nchw ? [channels, 1, 1] : [channels];
        const m = g.op('Mul', l.name, [cur.name, g.f32(`${l.name}/scale`, dims, scale)]);
        cur = { ...cur, name: g.op('Add', l.name, [m, g.f32(`${l.name}/shift`, dims, shift)]) };
        break;
      }
      default:
        fail(l, 'layer type is not supported by the ONNX exporter');
    }
  }
  cur = toNhwc(g, cur, 'output');
  // Name the graph output: an Identity keeps every producer's own tensor name stable.
  g.nodes.push({ name: g.unique('output/Identity'), opType: 'Identity', input: [cur.name], output: [ONNX_OUTPUT], attribute: [] });

  const valueInfo = (name: string, shape: number[]): ValueInfoObj => ({
    name,
    type: { tensorType: { elemType: DataType.FLOAT, shape: { dim: [{ dimParam: 'batch' }, ...shape.map((d) => ({ dimValue: d }))] } } },
  });
  const quantization = quant === 'none' ? 'none' : staticActs ? 'int8-static' : 'int8-dynamic';
  const metadata = { 'fedge.quantization': quantization, 'fedge.source_model': modelName, ...(opts.metadata ?? {}) };
  const model: ModelProtoObj = {
    irVersion: ONNX_IR_VERSION,
    opsetImport: [{ domain: '', version: ONNX_OPSET }],
    producerName: 'fedge',
    producerVersion: '0.1.0',
    docString: `fedge export of tfjs model "${modelName}" (${quantization})`,
    ...(opts.modelVersion !== undefined ? { modelVersion: opts.modelVersion } : {}),
    metadataProps: Object.entries(metadata).map(([key, value]) => ({ key, value })),
    graph: {
      name: opts.graphName ?? modelName,
      node: g.nodes,
      initializer: g.initializers,
      input: [valueInfo(ONNX_INPUT, inputShape)],
      output: [valueInfo(ONNX_OUTPUT, cur.shape)],
    },
  };
  return {
    bytes: encodeModel(model),
    input: { name: ONNX_INPUT, datatype: 'FP32', shape: [-1, ...inputShape] },
    output: { name: ONNX_OUTPUT, datatype: 'FP32', shape: [-1, ...cur.shape] },
    quantization,
    quantizedLayers,
  };
}

function toNchw(g: GraphBuilder, cur: Cursor, name: string): Cursor {
  if (cur.nchw || cur.shape.length !== 3) return cur;
  return { name: g.op('Transpose', name, [cur.name], { perm: [0, 3, 1, 2] }), shape: cur.shape, nchw: true };
}

function toNhwc(g: GraphBuilder, cur: Cursor, name: string): Cursor {
  if (!cur.nchw) return cur;
  if (cur.shape[2] === 1) {
    // One channel: NCHW and NHWC share the memory layout, a Reshape is free where a Transpose copies.
    return { name: g.op('Reshape', name, [cur.name, g.i64(`${name}/nhwc_shape`, [0, ...cur.shape])]), shape: cur.shape, nchw: false };
  }
  return { name: g.op('Transpose', name, [cur.name], { perm: [0, 2, 3, 1] }), shape: cur.shape, nchw: false };
}

function clip(g: GraphBuilder, cur: Cursor, name: string, min: number, max: number): Cursor {
  return { ...cur, name: g.op('Clip', name, [cur.name, g.f32(`${name}/clip_min`, [], [min]), g.f32(`${name}/clip_max`, [], [max])]) };
}

function activation(g: GraphBuilder, cur: Cursor, l: LayerDef, act: string): Cursor {
  switch (act) {
    case 'linear':
      return cur;
    case 'relu':
      return { ...cur, name: g.op('Relu', l.name, [cur.name]) };
    case 'relu6':
      return clip(g, cur, l.name, 0, 6);
    case 'sigmoid':
      return { ...cur, name: g.op('Sigmoid', l.name, [cur.name]) };
    case 'tanh':
      return { ...cur, name: g.op('Tanh', l.name, [cur.name]) };
    case 'softmax':
      // tfjs softmax runs over the last (channels) axis; inside the graph images are NCHW, channels at 1.
      return { ...cur, name: g.op('Softmax', l.name, [cur.name], { axis: cur.nchw ? 1 : -1 }) };
    default:
      return fail(l, `activation "${act}" is not supported (linear, relu, relu6, sigmoid, tanh, softmax)`);
  }
}

interface QuantizedInput { q: string; zp: string; scale: string | number }

/** uint8 activations: DynamicQuantizeLinear per call, or QuantizeLinear with the calibrated range. */
function quantizeInput(g: GraphBuilder, x: string, l: LayerDef, ranges: ActivationRanges | undefined): QuantizedInput {
  if (!ranges) {
    const [q, scale, zp] = g.node('DynamicQuantizeLinear', l.name, [x], {}, 3) as [string, string, string];
    return { q, scale, zp };
  }
  const r = ranges[l.name];
  if (!r || !Number.isFinite(r.min) || !Number.isFinite(r.max)) return fail(l, 'no calibrated activation range for this layer');
  const p = uint8Params(r.min, r.max);
  const zp = g.init(`${l.name}/input_zero_point`, DataType.UINT8, [], Uint8Array.of(p.zeroPoint));
  const q = g.op('QuantizeLinear', l.name, [x, g.f32(`${l.name}/input_scale`, [], [p.scale]), zp]);
  return { q, zp, scale: p.scale };
}

/** int32 accumulator -> float: Cast, Mul by x_scale * w_scale[c] (computed in-graph for dynamic), Add bias. */
function dequantize(g: GraphBuilder, name: string, acc: string, x: QuantizedInput, wScales: Float32Array, dims: number[], bias: Float32Array | undefined): string {
  const f = g.op('Cast', name, [acc], { to: DataType.FLOAT });
  let scale: string;
  if (typeof x.scale === 'number') {
    const s = new Float32Array(wScales.length);
    for (let i = 0; i < s.length; i++) s[i] = wScales[i]! * x.scale;
    scale = g.f32(`${name}/output_scale`, dims, s);
  } else {
    scale = g.op('Mul', name, [x.scale, g.f32(`${name}/kernel_scale`, dims, wScales)]);
  }
  const y = g.op('Mul', name, [f, scale]);
  return bias ? g.op('Add', name, [y, g.f32(`${name}/bias`, dims, bias)]) : y;
}
