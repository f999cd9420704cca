import { readFile } from 'node:fs/promises';
import { fromOnnxTypeNumber } from '../core/datatypes.ts';
import type { DataType } from '../core/datatypes.ts';
import { TO_PLAIN, onnxTypes } from './onnx-proto.ts';

/** One graph input or output as the ONNX file declares it. */
export interface OnnxTensorInfo {
  readonly name: string;
  /** TensorProto.DataType number, 0 when the file gives none. */
  readonly elemType: number;
  /** The protocol datatype, or undefined when sluice cannot carry this element type. */
  readonly datatype: DataType | undefined;
  /** -1 for a symbolic or missing size; undefined when the file gives no shape (unknown rank). */
  readonly shape: readonly number[] | undefined;
}

/** What the repository needs from a model file: its signature and versions. */
export interface OnnxMetadata {
  readonly irVersion: number;
  readonly opsets: readonly { readonly domain: string; readonly version: number }[];
  /** Graph inputs that are not initializers: what a caller must (or may) feed. */
  readonly inputs: readonly OnnxTensorInfo[];
  readonly outputs: readonly OnnxTensorInfo[];
}

// Plain shapes of the decoded messages (protobufjs camelCases field names); only what is read here.
interface PlainDim {
  dimValue?: bigint;
  dimParam?: string;
}
interface PlainValueInfo {
  name?: string;
  type?: { tensorType?: { elemType?: number; shape?: { dim?: PlainDim[] } } };
}
interface PlainModel {
  irVersion?: bigint;
  opsetImport?: { domain?: string; version?: bigint }[];
  graph?: { input?: PlainValueInfo[]; output?: PlainValueInfo[]; initializer?: { name?: string }[] };
}

function tensorInfo(v: PlainValueInfo, role: string, index: number): OnnxTensorInfo {
  const name = v.name ?? '';
  if (name === '') throw new Error(`graph ${role} #${index} has no name`);
  const tensor = v.type?.tensorType;
  if (tensor === undefined) throw new Error(`graph ${role} '${name}' is not a tensor (sequences, maps and optionals cannot be served)`);
  const elemType = tensor.elemType ?? 0;
  const shape = tensor.shape?.dim?.map((d) => (d.dimValue !== undefined && d.dimParam === undefined ? Number(d.dimValue) : -1));
  return { name, elemType, datatype: fromOnnxTypeNumber(elemType), shape };
}

/** Decodes a model file's bytes; throws an Error saying why they are not a usable ONNX model. */
export function decodeOnnxMetadata(bytes: Uint8Array): OnnxMetadata {
  const { ModelProto } = onnxTypes();
  let model: PlainModel;
  try {
    model = ModelProto.toObject(ModelProto.decode(bytes), TO_PLAIN);
  } catch (e) {
    throw new Error(`not a valid ONNX model (protobuf decoding failed: ${e instanceof Error ? e.message : String(e)})`, { cause: e });
  }
  // Bytes that happen to decode as protobuf still lack these: the usual sign of a file that is not ONNX.
  const irVersion = Number(model.irVersion ?? 0n);
  if (irVersion <= 0) throw new Error('not a valid ONNX model (no ir_version)');
  const graph = model.graph;
  if (graph === undefined) throw new Error('not a valid ONNX model (no graph)');
  const initializers = new Set((graph.initializer ?? []).map((t) => t.name ?? ''));
  const inputs = (graph.input ?? []).filter((v) => !initializers.has(v.name ?? '')).map((v, i) => tensorInfo(v, 'input', i));
  const outputs = (graph.output ?? []).map((v, i) => tensorInfo(v, 'output', i));
  if (outputs.length === 0) throw new Error('not a valid ONNX model (the graph has no outputs)');
  const opsets = (model.opsetImport ?? []).map((o) => ({ domain: o.domain ?? '', version: Number(o.version ?? 0n) }));
  return { irVersion, opsets, inputs, outputs };
}

/** Reads and decodes a model file; throws an Error naming what is wrong. */
export async function readOnnxMetadata(file: string): Promise<OnnxMetadata> {
  return decodeOnnxMetadata(await readFile(file));
}
