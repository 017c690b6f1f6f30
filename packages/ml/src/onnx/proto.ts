/**
 * The ONNX file format through protobufjs and the official schema (packages/ml/proto/onnx.proto, vendored
 * unchanged from onnx 1.23.2, Apache-2.0): no hand-rolled protobuf bytes.
 */
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
// protobufjs is CommonJS; its full build (with the .proto parser) is the package's main entry.
const protobuf = require('protobufjs') as typeof import('protobufjs');

/** TensorProto.DataType values used by the exporter. */
export const DataType = { FLOAT: 1, UINT8: 2, INT8: 3, INT32: 6, INT64: 7, STRING: 8 } as const;
export type DataTypeCode = (typeof DataType)[keyof typeof DataType];

/** AttributeProto.AttributeType values used by the exporter. */
export const AttrType = { FLOAT: 1, INT: 2, STRING: 3, FLOATS: 6, INTS: 7, STRINGS: 8 } as const;

/** Plain-object forms of the protobuf messages the exporter writes (field names as protobufjs spells them). */
export interface TensorProtoObj { name: string; dims: number[]; dataType: DataTypeCode; rawData: Uint8Array }
export interface AttributeProtoObj { name: string; type: number; f?: number; i?: number; s?: Uint8Array; floats?: number[]; ints?: number[]; strings?: Uint8Array[] }
export interface NodeProtoObj { name: string; opType: string; domain?: string; input: string[]; output: string[]; attribute: AttributeProtoObj[] }
export interface DimObj { dimValue?: number; dimParam?: string }
export interface ValueInfoObj { name: string; type: { tensorType: { elemType: DataTypeCode; shape: { dim: DimObj[] } } } }
export interface ModelProtoObj {
  irVersion: number;
  opsetImport: { domain: string; version: number }[];
  producerName: string;
  producerVersion: string;
  docString?: string;
  modelVersion?: number;
  metadataProps: { key: string; value: string }[];
  graph: { name: string; node: NodeProtoObj[]; initializer: TensorProtoObj[]; input: ValueInfoObj[]; output: ValueInfoObj[] };
}

let modelType: import('protobufjs').Type | undefined;

function ModelProto(): import('protobufjs').Type {
  if (!modelType) {
    const path = fileURLToPath(new URL('../../proto/onnx.proto', import.meta.url));
    modelType = protobuf.loadSync(path).lookupType('onnx.ModelProto');
  }
  return modelType;
}

export function encodeModel(model: ModelProtoObj): Uint8Array {
  const T = ModelProto();
  const err = T.verify(model);
  if (err) throw new Error(`onnx: invalid ModelProto: ${err}`);
  return T.encode(T.fromObject(model)).finish();
}

/** Decodes an ONNX file to a plain object (int64 as numbers, bytes as Buffers); used by tests and metadata. */
export function decodeModel(bytes: Uint8Array): ModelProtoObj {
  const T = ModelProto();
  return T.toObject(T.decode(bytes), { longs: Number, bytes: Buffer as never, defaults: false }) as ModelProtoObj;
}
