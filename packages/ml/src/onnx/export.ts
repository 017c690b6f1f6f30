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
 *
 * With the fleet's preprocessing (and task) the graph takes raw columns and encodes them in front of the model
 * (preprocess.ts), and names its outputs after the task (outputs.ts); int8 applies to the model's layers only, the
 * encoding stays float.
 */
import { ValidationError, type ModelBlob, type Preprocessing, type ResolvedTask } from '@fedge/proto';
import { DataType, encodeModel, type DataTypeCode, type ModelProtoObj, type ValueInfoObj } from './proto.js';
import { quantizePerChannel } from './quantize.js';
import { GraphBuilder } from './graph.js';
import {
  activation, clip, dequantize, fail, numArray, parseTopology, quantizeInput, spatial, SUPPORTED_LAYERS, toNchw, toNhwc, weightMap,
  type ActivationRanges, type Cursor, type LayerDef, type Weight,
} from './layers.js';
import { buildPreprocessing, checkPreprocessing, isIdentity, ML_DOMAIN, ML_OPSET, type GraphInput, type OnnxInputColumns } from './preprocess.js';
import { buildOutputs, checkOutputs, planOutputs, type OnnxOutputColumns } from './outputs.js';

export { ONNX_OUTPUT, type OnnxOutputColumns } from './outputs.js';
export { NUMERIC_INPUT, sanitizeTensorName, type OnnxInputColumns } from './preprocess.js';

export const ONNX_OPSET = 13;
export const ONNX_IR_VERSION = 8;

export type OnnxQuantization = 'none' | 'int8';
export { parseTopology, SUPPORTED_LAYERS, type ActivationRanges } from './layers.js';

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
  /**
   * The fleet's preprocessing the model was trained with: the graph then takes raw feature values (see
   * preprocess.ts for the inputs) and records the preprocessing and the input mapping in its metadata.
   */
  preprocessing?: Preprocessing;
  /** The model's task: names the outputs (see outputs.ts) and is checked against the output layer's width. */
  task?: ResolvedTask;
}

export interface OnnxTensorInfo { name: string; datatype: 'FP32' | 'BYTES'; shape: number[] }
export interface OnnxExport {
  bytes: Uint8Array;
  /** Per-tensor shapes with -1 for the batch dimension (KServe v2 convention). */
  inputs: OnnxTensorInfo[];
  outputs: OnnxTensorInfo[];
  /** The first input and output (the only ones without preprocessing or with a single regression target). */
  input: OnnxTensorInfo;
  output: OnnxTensorInfo;
  /** Which columns each input and output carries (also in the model metadata as fedge.inputs / fedge.outputs). */
  columns: { inputs: OnnxInputColumns[]; outputs: OnnxOutputColumns[] };
  quantization: 'none' | 'int8-dynamic' | 'int8-static';
  /** Layer names that became int8 ops. */
  quantizedLayers: string[];
}

export const ONNX_INPUT = 'input';


export function exportOnnx(blob: ModelBlob, opts: OnnxExportOptions = {}): OnnxExport {
  const quant = opts.quantize ?? 'none';
  if (quant !== 'none' && quant !== 'int8') throw new ValidationError(`onnx export: quantize must be none or int8, got "${String(quant)}"`);
  const staticActs = quant === 'int8' && opts.activations === 'static';
  if (staticActs && !opts.activationRanges) throw new ValidationError('onnx export: static activation quantization needs activation ranges from calibration data');
  const { layers, inputShape, name: modelName } = parseTopology(blob.topology);
  const weights = weightMap(blob);
  const g = new GraphBuilder();
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

  if (inputShape.length !== 1 && inputShape.length !== 3) throw new ValidationError(`onnx export: input shape ${JSON.stringify(inputShape)} is not supported (vectors or HxWxC images)`);
  const prep = opts.preprocessing;
  if (prep) checkPreprocessing(prep, inputShape);
  let plan: ReturnType<typeof planOutputs> | undefined;
  const reserveOutputs = () => void (plan = planOutputs(g, opts.task, prep));
  let inputs: GraphInput[];
  let inputColumns: OnnxInputColumns[];
  let cur: Cursor;
  if (prep && !isIdentity(prep)) {
    const built = buildPreprocessing(g, prep, reserveOutputs);
    inputs = built.inputs;
    inputColumns = built.columns;
    cur = { name: built.encoded, shape: [...inputShape], nchw: false };
    if (inputShape.length === 3) cur = { ...cur, name: g.op('Reshape', 'preprocessing', [cur.name, g.i64('preprocessing/image_shape', [0, ...inputShape])]) };
  } else {
    // No preprocessing, or one raw block: the model's own input, unchanged (MNIST clients send `input`).
    const name = g.unique(ONNX_INPUT);
    reserveOutputs();
    inputs = [{ name, elemType: DataType.FLOAT, shape: [...inputShape], datatype: 'FP32' }];
    inputColumns = [{ name, kind: 'raw', columns: prep ? [prep.features[0]!.name] : [] }];
    cur = { name, shape: [...inputShape], nchw: false };
  }
  const outputs = plan!;
  if (inputShape.length === 3) cur = toNchw(g, cur, 'input');

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
  checkOutputs(cur.shape, opts.task, outputs);
  // Name the graph outputs: an Identity keeps every producer's own tensor name stable.
  buildOutputs(g, cur.name, outputs);
  const outShapes = outputs.names.length > 1 ? outputs.names.map(() => [1]) : [cur.shape];

  const valueInfo = (name: string, elemType: DataTypeCode, shape: number[]): ValueInfoObj => ({
    name,
    type: { tensorType: { elemType, shape: { dim: [{ dimParam: 'batch' }, ...shape.map((d) => ({ dimValue: d }))] } } },
  });
  const quantization = quant === 'none' ? 'none' : staticActs ? 'int8-static' : 'int8-dynamic';
  const metadata: Record<string, string> = {
    'fedge.quantization': quantization,
    'fedge.source_model': modelName,
    'fedge.inputs': JSON.stringify(inputColumns),
    'fedge.outputs': JSON.stringify(outputs.columns),
    ...(prep ? { 'fedge.preprocessing': JSON.stringify(prep) } : {}),
    ...(opts.task ? { 'fedge.task': JSON.stringify(opts.task) } : {}),
    ...(opts.metadata ?? {}),
  };
  const usesMl = g.nodes.some((n) => n.domain === ML_DOMAIN);
  const model: ModelProtoObj = {
    irVersion: ONNX_IR_VERSION,
    opsetImport: [{ domain: '', version: ONNX_OPSET }, ...(usesMl ? [{ domain: ML_DOMAIN, version: ML_OPSET }] : [])],
    producerName: 'fedge',
    producerVersion: '0.1.0',
    docString: `fedge export of tfjs model "${modelName}" (${quantization}${prep && !isIdentity(prep) ? ', with preprocessing' : ''})`,
    ...(opts.modelVersion !== undefined ? { modelVersion: opts.modelVersion } : {}),
    metadataProps: Object.entries(metadata).map(([key, value]) => ({ key, value })),
    graph: {
      name: opts.graphName ?? modelName,
      node: g.nodes,
      initializer: g.initializers,
      input: inputs.map((i) => valueInfo(i.name, i.elemType, i.shape)),
      output: outputs.names.map((n, i) => valueInfo(n, DataType.FLOAT, outShapes[i]!)),
    },
  };
  const inputInfo = inputs.map((i): OnnxTensorInfo => ({ name: i.name, datatype: i.datatype, shape: [-1, ...i.shape] }));
  const outputInfo = outputs.names.map((n, i): OnnxTensorInfo => ({ name: n, datatype: 'FP32', shape: [-1, ...outShapes[i]!] }));
  return {
    bytes: encodeModel(model),
    inputs: inputInfo,
    outputs: outputInfo,
    input: inputInfo[0]!,
    output: outputInfo[0]!,
    columns: { inputs: inputColumns, outputs: outputs.columns },
    quantization,
    quantizedLayers,
  };
}

