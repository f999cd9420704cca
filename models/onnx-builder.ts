// Small helpers that assemble ONNX graphs as plain objects shaped like protos/onnx.proto (protobufjs
// turns field names into camelCase) and encode them. Only what the sample models need.
import { onnxTypes } from '../src/repository/onnx-proto.ts';

/** ONNX element type numbers (TensorProto.DataType) used by the sample models. */
export const ELEM = {
  FLOAT: 1,
  UINT8: 2,
  INT8: 3,
  UINT16: 4,
  INT16: 5,
  INT32: 6,
  INT64: 7,
  STRING: 8,
  BOOL: 9,
  FLOAT16: 10,
  DOUBLE: 11,
  UINT32: 12,
  UINT64: 13,
} as const;

// AttributeProto.AttributeType numbers.
const ATTR_FLOAT = 1;
const ATTR_INT = 2;
const ATTR_INTS = 7;

/**
 * A graph input or output: a string dim is symbolic (dim_param), a number is fixed (dim_value);
 * no dims at all leaves the shape out (unknown rank).
 */
export interface ValueSpec {
  readonly name: string;
  readonly elemType: number;
  readonly dims?: readonly (number | string)[];
}

/** One node attribute, already in AttributeProto form. */
export interface Attribute {
  readonly name: string;
  readonly type: number;
  readonly i?: number;
  readonly f?: number;
  readonly ints?: readonly number[];
}

export function attrInt(name: string, i: number): Attribute {
  return { name, type: ATTR_INT, i };
}

export function attrInts(name: string, ints: readonly number[]): Attribute {
  return { name, type: ATTR_INTS, ints };
}

export function attrFloat(name: string, f: number): Attribute {
  return { name, type: ATTR_FLOAT, f };
}

/** A NodeProto; the node's name is derived from its first output, which is unique in a valid graph. */
export interface NodeSpec {
  readonly name: string;
  readonly opType: string;
  readonly input: readonly string[];
  readonly output: readonly string[];
  readonly attribute: readonly Attribute[];
}

export function node(opType: string, input: readonly string[], output: readonly string[], attribute: readonly Attribute[] = []): NodeSpec {
  return { name: `${opType}_${output[0] ?? ''}`, opType, input, output, attribute };
}

/** A float initializer stored as raw little-endian bytes (compact, and fast to decode again). */
export interface InitializerSpec {
  readonly name: string;
  readonly dims: readonly number[];
  readonly dataType: number;
  readonly rawData: Uint8Array;
}

export function floatInitializer(name: string, dims: readonly number[], data: Float32Array): InitializerSpec {
  const expected = dims.reduce((a, b) => a * b, 1);
  if (data.length !== expected) throw new Error(`initializer ${name}: ${data.length} values for dims [${dims.join(',')}]`);
  // Float32Array is host-endian; every platform ONNX Runtime ships for is little-endian, but say so.
  const bytes = new Uint8Array(data.length * 4);
  const view = new DataView(bytes.buffer);
  for (let i = 0; i < data.length; i++) view.setFloat32(i * 4, data[i] ?? 0, true);
  return { name, dims, dataType: ELEM.FLOAT, rawData: bytes };
}

export interface GraphSpec {
  readonly name: string;
  readonly doc: string;
  readonly inputs: readonly ValueSpec[];
  readonly outputs: readonly ValueSpec[];
  readonly nodes: readonly NodeSpec[];
  readonly initializers?: readonly InitializerSpec[];
}

// IR version 8 with opset 17: both well inside what onnxruntime-node 1.30 and python onnx 1.12 accept.
export const IR_VERSION = 8;
export const OPSET_VERSION = 17;

function valueInfo(v: ValueSpec): object {
  const shape = v.dims && { shape: { dim: v.dims.map((d) => (typeof d === 'string' ? { dimParam: d } : { dimValue: d })) } };
  return { name: v.name, type: { tensorType: { elemType: v.elemType, ...shape } } };
}

/** Encodes a whole model; the same spec always gives the same bytes. */
export function encodeModel(spec: GraphSpec): Uint8Array {
  const { ModelProto } = onnxTypes();
  const model = {
    irVersion: IR_VERSION,
    producerName: 'sluice-models',
    producerVersion: '1',
    docString: spec.doc,
    opsetImport: [{ domain: '', version: OPSET_VERSION }],
    graph: {
      name: spec.name,
      node: spec.nodes,
      initializer: spec.initializers ?? [],
      input: spec.inputs.map(valueInfo),
      output: spec.outputs.map(valueInfo),
    },
  };
  const problem = ModelProto.verify(model);
  if (problem !== null) throw new Error(`model ${spec.name}: ${problem}`);
  return ModelProto.encode(ModelProto.fromObject(model)).finish();
}

/** An INT64 initializer (shapes for Reshape, indices), raw little-endian. */
export function int64Initializer(name: string, dims: readonly number[], data: readonly number[]): InitializerSpec {
  const bytes = new Uint8Array(data.length * 8);
  const view = new DataView(bytes.buffer);
  for (let i = 0; i < data.length; i++) view.setBigInt64(i * 8, BigInt(data[i] ?? 0), true);
  return { name, dims, dataType: ELEM.INT64, rawData: bytes };
}
