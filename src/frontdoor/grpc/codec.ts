import { elementSize, isDataType } from '../../core/datatypes.ts';
import {
  DataSizeMismatch,
  DuplicateInput,
  InvalidModelName,
  InvalidParameter,
  InvalidRequest,
  InvalidShape,
  InvalidTensorData,
  InvalidVersion,
  MixedTensorContents,
  TooManyElements,
  Unimplemented,
  UnknownDatatype,
} from '../../core/errors.ts';
import type { InferRequest, InferResponse } from '../../core/inference.ts';
import { MODEL_NAME_PATTERN, VERSION_PATTERN } from '../../core/model.ts';
import { decodeBytesElements, elementCount, encodeBytesElements, isBytesData, MAX_TENSOR_ELEMENTS, type Tensor } from '../../core/tensor.ts';
import { tensorDataFromContents } from './contents.ts';
import type { InferInputTensorMsg, InferParameterMsg, ModelInferRequestMsg, ModelInferResponseMsg } from './proto.ts';

/** What the server knows about a request beyond its message. */
export interface DecodeContext {
  /** performance.now() when the call arrived. */
  readonly arrivalMs: number;
  /** Aborted when the client cancels or its deadline passes. */
  readonly signal?: AbortSignal;
  /** Time left to the client's grpc-timeout deadline at arrival, in microseconds; 0 = no deadline. */
  readonly deadlineUs: number;
}

/** Model names become repository paths: a path-like name is refused here, before any lookup. */
export function checkModelRef(name: string, version: string): void {
  if (!MODEL_NAME_PATTERN.test(name)) throw InvalidModelName(name);
  if (version !== '' && !VERSION_PATTERN.test(version)) throw InvalidVersion(version);
}

function shapeText(shape: readonly (number | string)[]): string {
  return `[${shape.join(',')}]`;
}

/** int64 shape dims arrive as decimal strings; each must be a non-negative safe integer. */
function parseShape(input: InferInputTensorMsg): number[] {
  const shape = new Array<number>(input.shape.length);
  for (let i = 0; i < input.shape.length; i++) {
    const d = Number(input.shape[i]);
    if (!Number.isSafeInteger(d) || d < 0) {
      throw InvalidShape(input.name, `dimension ${i} of ${shapeText(input.shape)} is ${input.shape[i]}; dimensions are non-negative integers`);
    }
    shape[i] = d;
  }
  return shape;
}

/** A non-negative integer parameter (int64_param or uint64_param); undefined when absent. */
function integerParam(params: Record<string, InferParameterMsg>, name: string): number | undefined {
  const p = params[name];
  if (p === undefined) return undefined;
  const raw = p.int64_param ?? p.uint64_param;
  if (raw === undefined) throw InvalidParameter(name, `expected int64_param or uint64_param, got ${p.parameter_choice ?? 'no value'}`);
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < 0) throw InvalidParameter(name, `expected a non-negative integer, got ${raw}`);
  return n;
}

/** Sequence batching parameters name a feature sluice lacks: a request relying on it must not run as if stateless. */
function rejectSequenceParams(params: Record<string, InferParameterMsg>): void {
  for (const name of ['sequence_id', 'sequence_start', 'sequence_end']) {
    const p = params[name];
    if (p === undefined) continue;
    const set = p.bool_param === true || (p.int64_param ?? p.uint64_param ?? '0') !== '0' || (p.string_param ?? '') !== '';
    if (set) throw Unimplemented(`sequence batching (request parameter '${name}')`);
  }
}

/** Tensors placed in shared memory would otherwise read as "no data": say what is really missing. */
function rejectSharedMemory(params: Record<string, InferParameterMsg>, where: string): void {
  if (params['shared_memory_region'] !== undefined) throw Unimplemented(`shared-memory tensors (parameter 'shared_memory_region' of ${where}; send data in raw_input_contents)`);
}

function decodeInput(input: InferInputTensorMsg, raw: Buffer | undefined): Tensor {
  const { name } = input;
  if (name === '') throw InvalidRequest('every input needs a name');
  rejectSharedMemory(input.parameters, `input '${name}'`);
  if (!isDataType(input.datatype)) throw UnknownDatatype(name, input.datatype);
  const datatype = input.datatype;
  const shape = parseShape(input);
  const count = elementCount(shape);
  if (count === undefined) throw TooManyElements(name, MAX_TENSOR_ELEMENTS);
  const size = elementSize(datatype);
  if (raw !== undefined) {
    if (size > 0) {
      if (raw.byteLength !== count * size) {
        throw DataSizeMismatch(name, `${count * size} bytes (${shapeText(shape)} x ${datatype})`, `${raw.byteLength} bytes in raw_input_contents`);
      }
      return { name, datatype, shape, data: raw };
    }
    // Each BYTES element takes at least its 4-byte length: a claim of more elements than that cannot fit.
    if (count * 4 > raw.byteLength) {
      throw DataSizeMismatch(name, `${count} length-prefixed BYTES elements (at least ${count * 4} bytes)`, `${raw.byteLength} bytes in raw_input_contents`);
    }
    const elements = decodeBytesElements(raw, count);
    if (typeof elements === 'string') throw InvalidTensorData(name, elements);
    return { name, datatype, shape, data: elements };
  }
  if (input.contents === null) {
    if (count === 0) return { name, datatype, shape, data: size > 0 ? new Uint8Array(0) : [] };
    throw InvalidTensorData(name, `no data: set the input's contents or the request's raw_input_contents`);
  }
  return { name, datatype, shape, data: tensorDataFromContents(name, datatype, count, input.contents) };
}

/**
 * ModelInferRequest -> InferRequest. Checks what the message alone can tell (names, datatypes, shape
 * against data size, element bounds, raw/typed mixing, reserved parameters) before allocating anything;
 * checks against the model's configuration are the scheduler's.
 */
export function decodeInferRequest(msg: ModelInferRequestMsg, ctx: DecodeContext): InferRequest {
  const model = msg.model_name;
  checkModelRef(model, msg.model_version);
  const raw = msg.raw_input_contents;
  if (raw.length > 0) {
    // As Triton: raw contents are all-or-nothing, so a tensor with both would be ambiguous.
    for (const input of msg.inputs) if (input.contents !== null) throw MixedTensorContents(input.name, model);
    if (raw.length !== msg.inputs.length) {
      throw InvalidRequest(`expected ${msg.inputs.length} raw_input_contents (one per input, in order) for model '${model}', got ${raw.length}`);
    }
  }
  const seen = new Set<string>();
  const inputs: Tensor[] = [];
  for (let i = 0; i < msg.inputs.length; i++) {
    const input = msg.inputs[i]!;
    if (seen.has(input.name)) throw DuplicateInput(input.name, model);
    seen.add(input.name);
    inputs.push(decodeInput(input, raw.length > 0 ? raw[i] : undefined));
  }
  const outputs: string[] = [];
  for (const o of msg.outputs) {
    rejectSharedMemory(o.parameters, `output '${o.name}'`);
    const classification = o.parameters['classification'];
    if (classification !== undefined && (classification.int64_param ?? classification.uint64_param ?? '0') !== '0') {
      throw Unimplemented(`the classification extension (parameter 'classification' of output '${o.name}')`);
    }
    outputs.push(o.name);
  }
  rejectSequenceParams(msg.parameters);
  const priority = integerParam(msg.parameters, 'priority') ?? 0;
  const requested = integerParam(msg.parameters, 'timeout') ?? 0;
  // The tighter of the request's own timeout and the transport deadline, both counted from arrival.
  const timeoutUs = requested > 0 && ctx.deadlineUs > 0 ? Math.min(requested, ctx.deadlineUs) : requested || ctx.deadlineUs;
  return {
    id: msg.id,
    model,
    version: msg.model_version,
    inputs,
    outputs,
    priority,
    timeoutUs,
    arrivalMs: ctx.arrivalMs,
    ...(ctx.signal ? { signal: ctx.signal } : {}),
    protocol: 'grpc',
  };
}

function asBuffer(data: Uint8Array): Buffer {
  return Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}

/** InferResponse -> ModelInferResponse. As Triton, every output travels in raw_output_contents. */
export function encodeInferResponse(response: InferResponse): ModelInferResponseMsg {
  const outputs = new Array<ModelInferResponseMsg['outputs'][number]>(response.outputs.length);
  const raw = new Array<Buffer>(response.outputs.length);
  for (let i = 0; i < response.outputs.length; i++) {
    const t = response.outputs[i]!;
    outputs[i] = { name: t.name, datatype: t.datatype, shape: [...t.shape] };
    raw[i] = asBuffer(isBytesData(t.data) ? encodeBytesElements(t.data) : t.data);
  }
  return { model_name: response.model, model_version: response.version, id: response.id, outputs, raw_output_contents: raw };
}
