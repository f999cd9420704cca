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
  SequenceParameter,
} from '../../core/errors.ts';
import type { InferRequest, InferResponse, SequenceFlags } from '../../core/inference.ts';
import { MODEL_NAME_PATTERN, VERSION_PATTERN } from '../../core/model.ts';
import { decodeBytesElements, elementCount, encodeBytesElements, isBytesData, MAX_TENSOR_ELEMENTS, type Tensor } from '../../core/tensor.ts';
import type { SharedMemoryPlan, ShmInput, ShmOutput, WrittenOutput } from '../../shm/tensors.ts';
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
  /** Whether the system shared-memory extension is on (--shared-memory system). */
  readonly sharedMemory?: boolean;
}

/** A decoded request and the tensors of it that live in shared-memory regions (absent when none does). */
export interface DecodedRequest {
  readonly request: InferRequest;
  readonly shm?: SharedMemoryPlan;
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

/** The sequence extension's parameters: sequence_id as int64_param, uint64_param or string_param; start and end as bool_param. */
function sequenceOf(params: Record<string, InferParameterMsg>): SequenceFlags | undefined {
  const flag = (name: string): boolean => {
    const p = params[name];
    if (p === undefined) return false;
    if (p.bool_param === undefined) throw SequenceParameter(name, 'expected bool_param');
    return p.bool_param;
  };
  const start = flag('sequence_start');
  const end = flag('sequence_end');
  const p = params['sequence_id'];
  let sequence: SequenceFlags | undefined;
  if (p !== undefined) {
    const n = p.int64_param ?? p.uint64_param;
    if (n !== undefined) {
      if (n.startsWith('-')) throw SequenceParameter('sequence_id', `a correlation ID is unsigned, got ${n}`);
      if (n !== '0') sequence = { id: n, numeric: true, start, end };
    } else if (p.string_param !== undefined) {
      if (p.string_param !== '') sequence = { id: p.string_param, numeric: false, start, end };
    } else throw SequenceParameter('sequence_id', 'expected int64_param or string_param');
  }
  if (!sequence && (start || end)) throw SequenceParameter('sequence_id', 'sequence_start and sequence_end need a non-zero or non-empty sequence_id');
  return sequence;
}

/**
 * A tensor's shared-memory parameters (shared_memory_region as string_param, shared_memory_byte_size
 * and shared_memory_offset as int64_param), or undefined when it names no region. Off, a region is
 * refused by name: the tensor would otherwise read as "no data".
 */
function shmRange(params: Record<string, InferParameterMsg>, where: string, enabled: boolean): ShmInput['range'] | undefined {
  const region = params['shared_memory_region'];
  if (region === undefined) {
    for (const key of ['shared_memory_byte_size', 'shared_memory_offset']) {
      if (params[key] !== undefined) throw InvalidParameter(key, `'${key}' can not be specified without 'shared_memory_region' parameter for ${where}`);
    }
    return undefined;
  }
  if (!enabled) throw Unimplemented(`shared-memory tensors (parameter 'shared_memory_region' of ${where}; this server runs with --shared-memory none: send data in raw_input_contents)`);
  const name = region.string_param;
  if (name === undefined || name === '') throw InvalidParameter('shared_memory_region', `invalid value for ${where}, expected a region name in string_param`);
  const byteSize = integerParam(params, 'shared_memory_byte_size');
  if (byteSize === undefined) throw InvalidParameter('shared_memory_byte_size', `${where} in shared memory region '${name}' needs its byte size`);
  return { region: name, byteSize, offset: integerParam(params, 'shared_memory_offset') ?? 0 };
}

/** An input read from a region: a placeholder until the handler reads it, once every other check passed. */
function shmInput(input: InferInputTensorMsg, index: number, range: ShmInput['range'], model: string): { tensor: Tensor; shm: ShmInput } {
  const { name } = input;
  if (input.contents !== null) throw InvalidRequest(`unexpected 'contents' provided when using shared memory for input tensor '${name}' for model '${model}'`);
  if (!isDataType(input.datatype)) throw UnknownDatatype(name, input.datatype);
  const datatype = input.datatype;
  const shape = parseShape(input);
  const count = elementCount(shape);
  if (count === undefined) throw TooManyElements(name, MAX_TENSOR_ELEMENTS);
  return { tensor: { name, datatype, shape, data: elementSize(datatype) === 0 ? [] : new Uint8Array(0) }, shm: { index, name, datatype, count, range } };
}

function decodeInput(input: InferInputTensorMsg, raw: Buffer | undefined): Tensor {
  const { name } = input;
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
  return decodeInfer(msg, { ...ctx, sharedMemory: false }).request;
}

/**
 * decodeInferRequest with the shared-memory extension: inputs that name a region get a placeholder and
 * an entry in the plan (raw_input_contents then holds one entry per other input, in order, as in
 * Triton), outputs that name one are listed for the handler to write.
 */
export function decodeInfer(msg: ModelInferRequestMsg, ctx: DecodeContext): DecodedRequest {
  const model = msg.model_name;
  checkModelRef(model, msg.model_version);
  const enabled = ctx.sharedMemory === true;
  const ranges = msg.inputs.map((input) => {
    if (input.name === '') throw InvalidRequest('every input needs a name');
    return shmRange(input.parameters, `input '${input.name}'`, enabled);
  });
  const inline = ranges.filter((r) => r === undefined).length;
  const raw = msg.raw_input_contents;
  if (raw.length > 0) {
    // As Triton: raw contents are all-or-nothing, so a tensor with both would be ambiguous.
    for (const [i, input] of msg.inputs.entries()) if (input.contents !== null && ranges[i] === undefined) throw MixedTensorContents(input.name, model);
    if (raw.length !== inline) {
      throw InvalidRequest(`expected ${inline} raw_input_contents (one per input not in shared memory, in order) for model '${model}', got ${raw.length}`);
    }
  }
  const seen = new Set<string>();
  const inputs: Tensor[] = [];
  const shmInputs: ShmInput[] = [];
  let rawIndex = 0;
  for (let i = 0; i < msg.inputs.length; i++) {
    const input = msg.inputs[i]!;
    if (seen.has(input.name)) throw DuplicateInput(input.name, model);
    seen.add(input.name);
    const range = ranges[i];
    if (range) {
      const { tensor, shm } = shmInput(input, i, range, model);
      inputs.push(tensor);
      shmInputs.push(shm);
      continue;
    }
    inputs.push(decodeInput(input, raw.length > 0 ? raw[rawIndex++] : undefined));
  }
  const outputs: string[] = [];
  const shmOutputs: ShmOutput[] = [];
  let classification: Record<string, number> | undefined;
  for (const o of msg.outputs) {
    const range = shmRange(o.parameters, `output '${o.name}'`, enabled);
    if (range) shmOutputs.push({ name: o.name, range });
    const k = integerParam(o.parameters, 'classification') ?? 0;
    if (k > 0) (classification ??= {})[o.name] = k;
    outputs.push(o.name);
  }
  const sequence = sequenceOf(msg.parameters);
  const priority = integerParam(msg.parameters, 'priority') ?? 0;
  const requested = integerParam(msg.parameters, 'timeout') ?? 0;
  // The tighter of the request's own timeout and the transport deadline, both counted from arrival.
  const timeoutUs = requested > 0 && ctx.deadlineUs > 0 ? Math.min(requested, ctx.deadlineUs) : requested || ctx.deadlineUs;
  const request: InferRequest = {
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
    ...(classification ? { classification } : {}),
    ...(sequence && { sequence }),
  };
  return shmInputs.length > 0 || shmOutputs.length > 0 ? { request, shm: { inputs: shmInputs, outputs: shmOutputs } } : { request };
}

function asBuffer(data: Uint8Array): Buffer {
  return Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}

const EMPTY = Buffer.alloc(0);

/**
 * InferResponse -> ModelInferResponse. As Triton, every output travels in raw_output_contents, except
 * those written into shared memory (`inShm`): their entry is empty, so that raw_output_contents stays
 * one per output, in order, and their parameters name the region and the bytes written there.
 */
export function encodeInferResponse(response: InferResponse, inShm?: ReadonlyMap<string, WrittenOutput>): ModelInferResponseMsg {
  const outputs = new Array<ModelInferResponseMsg['outputs'][number]>(response.outputs.length);
  const raw = new Array<Buffer>(response.outputs.length);
  for (let i = 0; i < response.outputs.length; i++) {
    const t = response.outputs[i]!;
    const shm = inShm?.get(t.name);
    if (shm) {
      const parameters: Record<string, InferParameterMsg> = { shared_memory_region: { string_param: shm.region }, shared_memory_byte_size: { int64_param: String(shm.byteSize) } };
      if (shm.offset !== 0) parameters['shared_memory_offset'] = { int64_param: String(shm.offset) };
      outputs[i] = { name: t.name, datatype: t.datatype, shape: [...t.shape], parameters };
      raw[i] = EMPTY;
      continue;
    }
    outputs[i] = { name: t.name, datatype: t.datatype, shape: [...t.shape] };
    raw[i] = asBuffer(isBytesData(t.data) ? encodeBytesElements(t.data) : t.data);
  }
  return { model_name: response.model, model_version: response.version, id: response.id, outputs, raw_output_contents: raw };
}
