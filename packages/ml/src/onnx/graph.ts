/** Builds ONNX graph nodes and initializers with unique tensor names; shared by the model and preprocessing exporters. */
import { AttrType, DataType, type AttributeProtoObj, type DataTypeCode, type NodeProtoObj, type TensorProtoObj } from './proto.js';

type RawArray = Float32Array | Int8Array | Uint8Array | Int32Array | BigInt64Array;
export type AttrValue = number | number[] | string | string[];

export const bytesOf = (a: RawArray): Uint8Array => {
  // Copy into a fresh little-endian buffer (all supported hosts are little-endian, as are ONNX raw_data bytes).
  const out = new Uint8Array(a.byteLength);
  out.set(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
  return out;
};

const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);

function attribute(k: string, v: AttrValue): AttributeProtoObj {
  if (Array.isArray(v)) {
    // An empty list is taken as INTS: no exporter attribute is an empty list of strings.
    if (v.length > 0 && typeof v[0] === 'string') return { name: k, type: AttrType.STRINGS, strings: (v as string[]).map(utf8) };
    return { name: k, type: AttrType.INTS, ints: v as number[] };
  }
  if (typeof v === 'string') return { name: k, type: AttrType.STRING, s: utf8(v) };
  // alpha/epsilon are FLOAT attributes even when their value happens to be integral.
  return Number.isInteger(v) && k !== 'alpha' && k !== 'epsilon' ? { name: k, type: AttrType.INT, i: v } : { name: k, type: AttrType.FLOAT, f: v };
}

export class GraphBuilder {
  readonly nodes: NodeProtoObj[] = [];
  readonly initializers: TensorProtoObj[] = [];
  private readonly used = new Set<string>();

  unique(base: string): string {
    let n = base;
    for (let i = 1; this.used.has(n); i++) n = `${base}_${i}`;
    this.used.add(n);
    return n;
  }

  init(name: string, dataType: DataTypeCode, dims: number[], data: RawArray): string {
    const n = this.unique(name);
    this.initializers.push({ name: n, dims, dataType, rawData: bytesOf(data) });
    return n;
  }
  f32(name: string, dims: number[], data: Float32Array | number[]): string {
    return this.init(name, DataType.FLOAT, dims, data instanceof Float32Array ? data : Float32Array.from(data));
  }
  i64(name: string, values: number[], dims: number[] = [values.length]): string {
    return this.init(name, DataType.INT64, dims, BigInt64Array.from(values.map((v) => BigInt(v))));
  }

  node(opType: string, name: string, inputs: string[], attrs: Record<string, AttrValue> = {}, nOut = 1, domain?: string): string[] {
    const nodeName = this.unique(`${name}/${opType}`);
    const outputs = Array.from({ length: nOut }, (_, i) => this.unique(`${name}/${opType}${nOut > 1 ? `:${i}` : ''}`));
    const attr = Object.entries(attrs).map(([k, v]) => attribute(k, v));
    this.nodes.push({ name: nodeName, opType, ...(domain ? { domain } : {}), input: inputs, output: outputs, attribute: attr });
    return outputs;
  }
  op(opType: string, name: string, inputs: string[], attrs: Record<string, AttrValue> = {}): string {
    return this.node(opType, name, inputs, attrs)[0]!;
  }
  /** A node whose output is a given (graph output) name rather than a generated one. */
  named(opType: string, output: string, inputs: string[], attrs: Record<string, AttrValue> = {}): void {
    this.nodes.push({ name: this.unique(`${output}/${opType}`), opType, input: inputs, output: [output], attribute: Object.entries(attrs).map(([k, v]) => attribute(k, v)) });
  }
}
