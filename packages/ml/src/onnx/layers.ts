/**
 * Per-layer pieces of the tfjs -> ONNX conversion: topology parsing, weights by name, spatial padding, layout
 * changes (tfjs NHWC vs ONNX NCHW), activations and the int8 quantize/dequantize patterns (see export.ts).
 */
import { ValidationError, totalParams, type ModelBlob } from '@fedge/proto';
import { DataType } from './proto.js';
import { uint8Params } from './quantize.js';
import type { GraphBuilder } from './graph.js';

export type ActivationRanges = Record<string, { min: number; max: number }>;

export interface LayerDef { className: string; name: string; config: Record<string, unknown> }
export interface Weight { shape: number[]; data: Float32Array }

/** Layer classes the exporter understands (anything else fails with the layer's name and class). */
export const SUPPORTED_LAYERS = [
  'InputLayer', 'Dense', 'Conv2D', 'MaxPooling2D', 'AveragePooling2D', 'Flatten', 'Reshape', 'Dropout',
  'Activation', 'ReLU', 'Softmax', 'BatchNormalization',
] as const;

export function fail(layer: LayerDef, why: string): never {
  throw new ValidationError(`onnx export: layer "${layer.name}" (${layer.className}): ${why}`);
}

export function numArray(v: unknown, what: string, layer: LayerDef): number[] {
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

export function weightMap(blob: ModelBlob): Map<string, Weight> {
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

/** Current value flowing through the chain: ONNX tensor name, tfjs per-sample shape, and whether it is held NCHW. */
export interface Cursor { name: string; shape: number[]; nchw: boolean }

export function samePads(inSize: number, k: number, s: number, d: number): [number, number, number] {
  const out = Math.ceil(inSize / s);
  const total = Math.max((out - 1) * s + (k - 1) * d + 1 - inSize, 0);
  const begin = Math.floor(total / 2);
  return [begin, total - begin, out];
}

export function spatial(layer: LayerDef, shape: number[], kernel: number[], strides: number[], dil: number[]): { pads: number[]; out: number[] } {
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
export function toNchw(g: GraphBuilder, cur: Cursor, name: string): Cursor {
  if (cur.nchw || cur.shape.length !== 3) return cur;
  return { name: g.op('Transpose', name, [cur.name], { perm: [0, 3, 1, 2] }), shape: cur.shape, nchw: true };
}

export function toNhwc(g: GraphBuilder, cur: Cursor, name: string): Cursor {
  if (!cur.nchw) return cur;
  if (cur.shape[2] === 1) {
    // One channel: NCHW and NHWC share the memory layout, a Reshape is free where a Transpose copies.
    return { name: g.op('Reshape', name, [cur.name, g.i64(`${name}/nhwc_shape`, [0, ...cur.shape])]), shape: cur.shape, nchw: false };
  }
  return { name: g.op('Transpose', name, [cur.name], { perm: [0, 2, 3, 1] }), shape: cur.shape, nchw: false };
}

export function clip(g: GraphBuilder, cur: Cursor, name: string, min: number, max: number): Cursor {
  return { ...cur, name: g.op('Clip', name, [cur.name, g.f32(`${name}/clip_min`, [], [min]), g.f32(`${name}/clip_max`, [], [max])]) };
}

export function activation(g: GraphBuilder, cur: Cursor, l: LayerDef, act: string): Cursor {
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

export interface QuantizedInput { q: string; zp: string; scale: string | number }

/** uint8 activations: DynamicQuantizeLinear per call, or QuantizeLinear with the calibrated range. */
export function quantizeInput(g: GraphBuilder, x: string, l: LayerDef, ranges: ActivationRanges | undefined): QuantizedInput {
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
export function dequantize(g: GraphBuilder, name: string, acc: string, x: QuantizedInput, wScales: Float32Array, dims: number[], bias: Float32Array | undefined): string {
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
