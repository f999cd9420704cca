import { elementSize, isDataType, type DataType } from '../../core/datatypes.ts';
import {
  DataSizeMismatch, InvalidBinaryHeader, InvalidParameter, InvalidRequest, InvalidShape, InvalidTensorData,
  MalformedBody, TooManyElements, UnknownDatatype, Unimplemented,
  SequenceParameter,
} from '../../core/errors.ts';
import type { InferRequest, SequenceFlags } from '../../core/inference.ts';
import type { RequestTrace } from '../../core/trace.ts';
import type { SharedMemoryPlan, ShmInput, ShmOutput } from '../../shm/tensors.ts';
import { decodeBytesElements, elementCount, MAX_TENSOR_ELEMENTS, type Tensor } from '../../core/tensor.ts';
import { decodeJsonTensorData } from './json-tensor.ts';

/** Where the decoded request goes and what the HTTP layer knows about it. */
export interface InferContext {
  readonly model: string;
  readonly version: string;
  readonly arrivalMs: number;
  readonly signal?: AbortSignal;
  /** The request's trace when the tracer sampled it. */
  readonly trace?: RequestTrace;
  /** Whether the system shared-memory extension is on (--shared-memory system). */
  readonly sharedMemory?: boolean;
}

/** How the client wants the outputs back (the binary tensor data extension). */
export interface OutputEncoding {
  /** The request's binary_data_output parameter: the default for every output. */
  readonly binaryDefault: boolean;
  /** Per requested output, its own binary_data parameter when given (it wins over the default). */
  readonly binary: ReadonlyMap<string, boolean>;
}

export interface DecodedInfer {
  readonly request: InferRequest;
  readonly encoding: OutputEncoding;
  /** The tensors that live in shared-memory regions; absent when none does. */
  readonly shm?: SharedMemoryPlan;
}

/** The single input of a model, as metadata describes it (a raw binary request needs it). */
export interface RawInputSpec {
  readonly name: string;
  readonly datatype: DataType;
  /** With -1 for variable dimensions (the batch dimension included). */
  readonly shape: readonly number[];
}

type Json = Record<string, unknown>;

const HEADER_LENGTH_PATTERN = /^\d{1,15}$/;

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function optionalObject(v: unknown, what: string): Json {
  if (v === undefined) return {};
  if (!isObject(v)) throw InvalidRequest(`${what} must be a JSON object`);
  return v;
}

/** Parses the Inference-Header-Content-Length header against the body it describes. */
export function parseHeaderLength(header: string | string[] | undefined, bodyLength: number): number | undefined {
  if (header === undefined) return undefined;
  if (Array.isArray(header)) throw InvalidBinaryHeader('the header is given more than once');
  const text = header.trim();
  if (!HEADER_LENGTH_PATTERN.test(text)) throw InvalidBinaryHeader(`'${text.slice(0, 32)}' is not a non-negative integer`);
  const n = Number(text);
  if (n > bodyLength) throw InvalidBinaryHeader(`${n} exceeds the body length ${bodyLength}`);
  return n;
}

function nonNegativeInteger(params: Json, key: string): number {
  const v = params[key];
  if (v === undefined) return 0;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) {
    throw InvalidParameter(key, `expected a non-negative integer${key === 'timeout' ? ' (microseconds)' : ''}, got ${JSON.stringify(v)}`);
  }
  return v;
}

function optionalBool(params: Json, key: string): boolean | undefined {
  const v = params[key];
  if (v === undefined) return undefined;
  if (typeof v !== 'boolean') throw InvalidParameter(key, `expected true or false, got ${JSON.stringify(v)}`);
  return v;
}

function rejectUnsupported(params: Json, where: string): void {
  if (params['classification'] !== undefined) throw InvalidParameter('classification', `${where}: classification is a parameter of a requested output`);
}

/**
 * The shared-memory parameters of a tensor (Triton's: shared_memory_region, shared_memory_byte_size,
 * shared_memory_offset), or undefined when it names no region. Region and byte size come together.
 */
function shmRange(params: Json, where: string, enabled: boolean): ShmInput['range'] | undefined {
  const region = params['shared_memory_region'];
  if (region === undefined) {
    for (const key of ['shared_memory_byte_size', 'shared_memory_offset']) {
      if (params[key] !== undefined) throw InvalidParameter(key, `${where}: '${key}' can not be specified without 'shared_memory_region'`);
    }
    return undefined;
  }
  if (!enabled) throw Unimplemented(`the shared-memory extension (${where}; this server runs with --shared-memory none)`);
  if (typeof region !== 'string' || region === '') throw InvalidParameter('shared_memory_region', `${where}: expected a region name, got ${JSON.stringify(region)}`);
  if (params['shared_memory_byte_size'] === undefined) throw InvalidParameter('shared_memory_byte_size', `${where}: a tensor in shared memory region '${region}' needs its byte size`);
  return { region, byteSize: nonNegativeInteger(params, 'shared_memory_byte_size'), offset: nonNegativeInteger(params, 'shared_memory_offset') };
}

/** The sequence extension's parameters: sequence_id a uint64 or a string (0 and '' mean none), start and end booleans. */
function sequenceOf(params: Json): SequenceFlags | undefined {
  const id = params['sequence_id'];
  const flag = (name: string): boolean => {
    const v = params[name] ?? false;
    if (typeof v !== 'boolean') throw SequenceParameter(name, `expected true or false, got ${JSON.stringify(v)}`);
    return v;
  };
  const start = flag('sequence_start');
  const end = flag('sequence_end');
  if (id === undefined || id === 0 || id === '') {
    if (start || end) throw SequenceParameter('sequence_id', 'sequence_start and sequence_end need a non-zero or non-empty sequence_id');
    return undefined;
  }
  if (typeof id === 'number' && Number.isSafeInteger(id) && id > 0) return { id: String(id), numeric: true, start, end };
  if (typeof id === 'string') return { id, numeric: false, start, end };
  throw SequenceParameter('sequence_id', `expected an unsigned integer (at most 2^53 - 1 in JSON) or a string, got ${JSON.stringify(id)}`);
}

/** The request parameters infer reads (the generate mapping takes them from a generate body's other keys). */
export function requestParameters(params: Json): { readonly sequence: SequenceFlags | undefined; readonly priority: number; readonly timeoutUs: number } {
  return { sequence: checkRequestParameters(params), priority: nonNegativeInteger(params, 'priority'), timeoutUs: nonNegativeInteger(params, 'timeout') };
}

function checkRequestParameters(params: Json): SequenceFlags | undefined {
  const sequence = sequenceOf(params);
  rejectUnsupported(params, 'request parameters');
  return sequence;
}

/** Validates a shape before anything is sized from it. */
export function checkShape(name: string, shape: unknown): { shape: number[]; count: number } {
  if (!Array.isArray(shape)) throw InvalidShape(name, `'shape' must be an array of non-negative integers, got ${JSON.stringify(shape) ?? 'nothing'}`);
  for (const d of shape) {
    if (typeof d !== 'number' || !Number.isSafeInteger(d) || d < 0) throw InvalidShape(name, `dimension ${JSON.stringify(d)} is not a non-negative integer`);
  }
  const count = elementCount(shape as number[]);
  if (count === undefined) throw TooManyElements(name, MAX_TENSOR_ELEMENTS);
  return { shape: shape as number[], count };
}

/** Takes a tensor's binary data from the section after the JSON header, checking its size first. */
function binaryTensorData(name: string, datatype: DataType, count: number, size: unknown, binary: Uint8Array, offset: number): Tensor['data'] {
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) throw InvalidParameter('binary_data_size', `input '${name}': expected a non-negative integer, got ${JSON.stringify(size)}`);
  if (offset + size > binary.byteLength) {
    throw InvalidTensorData(name, `binary_data_size ${size} runs past the end of the body (${binary.byteLength - offset} bytes of binary data left)`);
  }
  const slice = binary.subarray(offset, offset + size);
  const width = elementSize(datatype);
  if (width === 0) {
    const elements = decodeBytesElements(slice, count);
    if (typeof elements === 'string') throw InvalidTensorData(name, elements);
    return elements;
  }
  if (size !== count * width) throw DataSizeMismatch(name, `${count * width} bytes (${count} x ${datatype})`, `binary_data_size ${size}`);
  return slice;
}

function decodeInputs(raw: unknown, binary: Uint8Array, enabled: boolean, shm: ShmInput[]): Tensor[] {
  if (!Array.isArray(raw) || raw.length === 0) throw InvalidRequest("the request must have a non-empty 'inputs' array");
  const inputs: Tensor[] = [];
  let offset = 0;
  for (const [i, item] of raw.entries()) {
    if (!isObject(item)) throw InvalidRequest(`inputs[${i}] must be a JSON object`);
    const name = item['name'];
    if (typeof name !== 'string' || name === '') throw InvalidRequest(`inputs[${i}] needs a non-empty string 'name'`);
    const datatype = item['datatype'];
    if (!isDataType(datatype)) throw UnknownDatatype(name, typeof datatype === 'string' ? datatype : JSON.stringify(datatype) ?? 'nothing');
    const { shape, count } = checkShape(name, item['shape']);
    const params = optionalObject(item['parameters'], `parameters of input '${name}'`);
    rejectUnsupported(params, `input '${name}'`);
    const range = shmRange(params, `input '${name}'`, enabled);
    if (range) {
      if (item['data'] !== undefined || params['binary_data_size'] !== undefined) {
        throw InvalidRequest(`input '${name}' names shared memory region '${range.region}' and also has ${item['data'] !== undefined ? "'data'" : 'binary_data_size'}: send its data one way`);
      }
      shm.push({ index: i, name, datatype, count, range });
      // A placeholder until the front door reads the region (after every check the request can fail).
      inputs.push({ name, datatype, shape, data: elementSize(datatype) === 0 ? [] : new Uint8Array(0) });
      continue;
    }
    const size = params['binary_data_size'];
    let data: Tensor['data'];
    if (size !== undefined) {
      if (item['data'] !== undefined) throw InvalidRequest(`input '${name}' has both 'data' and binary_data_size: send its data one way`);
      data = binaryTensorData(name, datatype, count, size, binary, offset);
      offset += size as number;
    } else {
      if (item['data'] === undefined) throw InvalidRequest(`input '${name}' has neither 'data' nor a binary_data_size parameter`);
      data = decodeJsonTensorData(name, datatype, item['data'], count);
    }
    inputs.push({ name, datatype, shape, data });
  }
  if (offset !== binary.byteLength) {
    throw InvalidBinaryHeader(`${binary.byteLength - offset} bytes of binary data follow the JSON header but no input claims them (binary_data_size total ${offset})`);
  }
  return inputs;
}

function decodeOutputs(raw: unknown, enabled: boolean): { names: string[]; binary: Map<string, boolean>; shm: ShmOutput[]; classification: Record<string, number> | undefined } {
  const names: string[] = [];
  const binary = new Map<string, boolean>();
  const shm: ShmOutput[] = [];
  let classification: Record<string, number> | undefined;
  if (raw === undefined) return { names, binary, shm, classification };
  if (!Array.isArray(raw)) throw InvalidRequest("'outputs' must be an array");
  for (const [i, item] of raw.entries()) {
    if (!isObject(item)) throw InvalidRequest(`outputs[${i}] must be a JSON object`);
    const name = item['name'];
    if (typeof name !== 'string' || name === '') throw InvalidRequest(`outputs[${i}] needs a non-empty string 'name'`);
    if (names.includes(name)) throw InvalidRequest(`output '${name}' is requested more than once`);
    const params = optionalObject(item['parameters'], `parameters of output '${name}'`);
    // The classification extension: 0 (or absent) answers the output itself.
    const k = params['classification'] === undefined ? 0 : nonNegativeInteger(params, 'classification');
    if (k > 0) (classification ??= {})[name] = k;
    const b = optionalBool(params, 'binary_data');
    if (b !== undefined) binary.set(name, b);
    const range = shmRange(params, `output '${name}'`, enabled);
    if (range) {
      if (b === true) throw InvalidRequest(`output '${name}' can't set both 'shared_memory_region' and 'binary_data'`);
      shm.push({ name, range });
    }
    names.push(name);
  }
  return { names, binary, shm, classification };
}

function parseHeader(text: string): Json {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw MalformedBody(e instanceof Error ? e.message : String(e));
  }
  if (!isObject(parsed)) throw MalformedBody('the request must be a JSON object');
  return parsed;
}

/**
 * Decodes an infer request body: the JSON header (all of the body, or its first `headerLength` bytes)
 * and, after it, the binary tensor data in input order. Every size is checked before it is used.
 */
export function decodeInferBody(body: Uint8Array, headerLength: number | undefined, ctx: InferContext): DecodedInfer {
  const jsonEnd = headerLength ?? body.byteLength;
  const header = parseHeader(Buffer.from(body.buffer, body.byteOffset, jsonEnd).toString('utf8'));
  const id = header['id'];
  if (id !== undefined && typeof id !== 'string') throw InvalidRequest(`'id' must be a string, got ${JSON.stringify(id)}`);
  const params = optionalObject(header['parameters'], "the request's 'parameters'");
  const sequence = checkRequestParameters(params);
  const priority = nonNegativeInteger(params, 'priority');
  const timeoutUs = nonNegativeInteger(params, 'timeout');
  const binaryDefault = optionalBool(params, 'binary_data_output') ?? false;
  const enabled = ctx.sharedMemory === true;
  const shmInputs: ShmInput[] = [];
  const inputs = decodeInputs(header['inputs'], body.subarray(jsonEnd), enabled, shmInputs);
  const outputs = decodeOutputs(header['outputs'], enabled);
  const shm = shmInputs.length > 0 || outputs.shm.length > 0 ? { inputs: shmInputs, outputs: outputs.shm } : undefined;
  return {
    request: { id: id ?? '', model: ctx.model, version: ctx.version, inputs, outputs: outputs.names, priority, timeoutUs, arrivalMs: ctx.arrivalMs, signal: ctx.signal, protocol: 'http', trace: ctx.trace, ...(outputs.classification ? { classification: outputs.classification } : {}), ...(sequence && { sequence }) },
    encoding: { binaryDefault, binary: outputs.binary },
    ...(shm ? { shm } : {}),
  };
}

/**
 * A raw binary request (Inference-Header-Content-Length: 0): the whole body is the data of the model's
 * only input. Its shape is deduced from the body size when at most one dimension is variable; a BYTES
 * body is one element. Outputs all come back as JSON.
 */
export function decodeRawBody(body: Uint8Array, input: RawInputSpec | undefined, ctx: InferContext): DecodedInfer {
  if (!input) throw InvalidRequest(`a raw binary request (Inference-Header-Content-Length: 0) needs a model with exactly one input; '${ctx.model}' has more`);
  const width = elementSize(input.datatype);
  const count = width === 0 ? 1 : body.byteLength / width;
  if (!Number.isInteger(count)) throw DataSizeMismatch(input.name, `a multiple of ${width} bytes (${input.datatype})`, `${body.byteLength} bytes`);
  const variable = input.shape.filter((d) => d < 0).length;
  const fixed = input.shape.reduce((p, d) => (d < 0 ? p : p * d), 1);
  if (variable > 1) throw InvalidRequest(`a raw binary request cannot deduce the shape of input '${input.name}' (${JSON.stringify(input.shape)}): more than one variable dimension; send a JSON header`);
  if (fixed === 0 || count % fixed !== 0 || (variable === 0 && count !== fixed)) {
    throw DataSizeMismatch(input.name, `${variable === 0 ? '' : 'a multiple of '}${fixed} elements for shape ${JSON.stringify(input.shape)}`, `${count} elements (${body.byteLength} bytes)`);
  }
  const shape = input.shape.map((d) => (d < 0 ? count / fixed : d));
  const data: Tensor['data'] = width === 0 ? [body] : body;
  return {
    request: { id: '', model: ctx.model, version: ctx.version, inputs: [{ name: input.name, datatype: input.datatype, shape, data }], outputs: [], priority: 0, timeoutUs: 0, arrivalMs: ctx.arrivalMs, signal: ctx.signal, protocol: 'http', trace: ctx.trace },
    encoding: { binaryDefault: false, binary: new Map() },
  };
}
