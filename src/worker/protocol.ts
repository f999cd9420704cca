/**
 * The wire format between the gateway (src/balancer) and a worker process (src/worker/host.ts): HTTP/1.1
 * over a unix socket or TCP. Control calls carry JSON; /infer carries a binary frame so tensors travel
 * as raw little-endian bytes without a JSON detour. Pure functions, no I/O: both sides import this file.
 * docs/worker-protocol.md describes the same format in prose.
 */
import type { Device } from '../core/device.ts';
import { isDataType, type DataType } from '../core/datatypes.ts';
import { InvalidRequest, SluiceError, WorkerFailed, type ErrorKind } from '../core/errors.ts';
import { httpStatusOf, isErrorKind } from '../core/http-status.ts';
import type { BatchJob } from '../core/execution.ts';
import { MODEL_NAME_PATTERN, SOURCE_PATTERN, VERSION_PATTERN } from '../core/model.ts';
import { decodeBytesElements, elementCount, encodeBytesElements, fixedByteLength, isBytesData, type Tensor } from '../core/tensor.ts';

export const WORKER_PATHS = Object.freeze({
  health: '/health',
  load: '/load',
  unload: '/unload',
  infer: '/infer',
  upload: '/upload',
} as const);

/** Content type of /infer bodies in both directions. */
export const FRAME_CONTENT_TYPE = 'application/x-sluice-frame';

/** A frame header larger than this is refused before it is parsed (names and shapes never need more). */
export const MAX_FRAME_HEADER_BYTES = 1024 * 1024;
/** Tensors per frame: far above any real model, low enough that a hostile header stays cheap. */
export const MAX_FRAME_TENSORS = 4096;

/** One model held by a worker, as /health reports it. */
export interface WorkerModelInfo {
  readonly model: string;
  readonly version: string;
  /** Estimated footprint charged against the memory budget. */
  readonly bytes: number;
  readonly pinned: boolean;
  /** Date.now() when the load (including warmup) finished. */
  readonly loadedAt: number;
}

/** GET /health. */
export interface WorkerHealth {
  /**
   * The worker's name and process id: absent when an open host (no token, no client certificates)
   * listens beyond loopback, since its default name is hostname-pid and any peer may ask.
   */
  readonly id?: string;
  readonly pid?: number;
  readonly device: Device;
  readonly deviceId: number;
  /** The provider sessions really use: 'cpu' when the device is a GPU whose provider could not load. */
  readonly provider: Device;
  readonly models: readonly WorkerModelInfo[];
  readonly memoryUsedBytes: number;
  readonly memoryBudgetBytes: number;
  /** Whether a batch is running right now. */
  readonly running: boolean;
  /** Completed loads (each one a session creation plus warmup). */
  readonly loads: number;
  readonly evictions: number;
  /** Requests (/infer or /load) that found the model already loaded. */
  readonly cacheHits: number;
  /** Requests that had to load (or join a load already in progress). */
  readonly cacheMisses: number;
  /** Warmup runs made by completed loads (model_warmup samples times their count). */
  readonly warmupRuns: number;
  /** Batches accepted and waiting behind the running one. */
  readonly queuedBatches: number;
  /**
   * A worker host's bound on the batches it holds for all its gateways together (queued plus in the
   * ORT thread) and the most it has held at once since it started; absent for in-process workers.
   */
  readonly heldBatches?: { readonly bound: number; readonly peak: number };
}

/** POST /load and POST /unload request body. */
export interface ModelRef {
  readonly model: string;
  readonly version: string;
  /** An uploaded version's source (src/repository/uploads.ts): the worker runs those files, never the repository's. */
  readonly source?: string | undefined;
}

/** POST /load response. */
export interface LoadResult {
  readonly model: string;
  readonly version: string;
  /** Time this call waited for the model to become ready (0 on a hit). */
  readonly loadMs: number;
  readonly cacheHit: boolean;
  /** Models the worker evicted to make room for this load (absent: none, or an older worker). */
  readonly evicted?: readonly string[];
}

/** POST /unload response. */
export interface UnloadResult {
  /** false when the model was not loaded. */
  readonly unloaded: boolean;
}

/** Error body of every non-200 answer. */
export interface WorkerErrorBody {
  readonly code: string;
  readonly kind: ErrorKind;
  readonly message: string;
}

/** Describes one tensor's bytes inside a frame. */
export interface TensorDescriptor {
  readonly name: string;
  readonly datatype: DataType;
  readonly shape: readonly number[];
  readonly byteLength: number;
}

/** Header of a POST /infer request frame. */
export interface InferFrameHeader {
  readonly model: string;
  readonly version: string;
  /** As ModelRef's; absent for the repository's files. */
  readonly source?: string;
  readonly rows: number;
  readonly inputs: readonly TensorDescriptor[];
  readonly outputs: readonly string[];
}

/** Header of a POST /infer response frame. */
export interface ResultFrameHeader {
  readonly outputs: readonly TensorDescriptor[];
  readonly computeInputNs: number;
  readonly computeInferNs: number;
  readonly computeOutputNs: number;
  readonly cacheHit: boolean;
  /** Models evicted to make room for this batch's model (absent: none, or an older worker). */
  readonly evicted?: readonly string[];
  /** Nanoseconds the batch waited inside the worker before its run started (absent from older workers). */
  readonly workerQueueNs?: number;
  /** Batches the worker still holds as it answers, every gateway's (absent from older workers). */
  readonly heldBatches?: number;
  /** The worker's trace-clock stamps of the batch (absent from older workers). */
  readonly stamps?: WorkerStamps;
}

/** What a worker returns for one batch (BatchResult without the worker name the client adds). */
export interface FrameResult {
  readonly outputs: readonly Tensor[];
  readonly computeInputNs: number;
  readonly computeInferNs: number;
  readonly computeOutputNs: number;
  readonly cacheHit: boolean;
  /** Models evicted to make room for this batch's model. */
  readonly evicted?: readonly string[];
  /** Time waited in the worker's queue, when the worker reports it. */
  readonly workerQueueNs?: number;
  /**
   * Batches the worker holds when it answers (running or queued, this one not counted), from every
   * gateway it serves: what a gateway cannot see from its own in-flight count.
   */
  readonly heldBatches?: number;
  /**
   * The worker's own clock (trace-clock ns) when it received the batch, when ONNX Runtime began and
   * ended, and when it replied; absent from workers that do not report them.
   */
  readonly stamps?: WorkerStamps;
}

export interface WorkerStamps {
  readonly recvNs: number;
  readonly ortStartNs: number;
  readonly ortEndNs: number;
  readonly replyNs: number;
}

/** HTTP status a worker answers for an error of this kind: the REST front door's, from one table. */
export function workerStatusOf(kind: ErrorKind): number {
  return httpStatusOf(kind);
}

/** The JSON error body for anything thrown inside the worker. */
export function encodeWorkerError(e: SluiceError): WorkerErrorBody {
  return { code: e.code, kind: e.kind, message: e.message };
}

/**
 * Rebuilds the worker's SluiceError from a non-200 answer on the client side. A body that is not a
 * worker error (a proxy page, a truncated answer) becomes WorkerFailed naming the worker and status.
 */
export function errorFromWorker(worker: string, status: number, body: Buffer | string): SluiceError {
  const text = typeof body === 'string' ? body : body.toString('utf8');
  try {
    const json = JSON.parse(text) as unknown;
    if (isRecord(json) && typeof json['code'] === 'string' && typeof json['message'] === 'string' && typeof json['kind'] === 'string' && isErrorKind(json['kind'])) {
      return new SluiceError(json['code'], json['kind'], json['message']);
    }
  } catch {
    // not JSON: reported below with the raw text
  }
  return WorkerFailed(worker, `HTTP ${status}: ${text.slice(0, 200)}`);
}

/** Request frame for a batch: chunks to write in order; fixed-size tensors are referenced, not copied. */
export function encodeInferRequest(job: BatchJob): Buffer[] {
  const { descriptors, chunks } = tensorChunks(job.inputs);
  const header: InferFrameHeader = job.source === undefined
    ? { model: job.model, version: job.version, rows: job.rows, inputs: descriptors, outputs: [...job.outputs] }
    : { model: job.model, version: job.version, source: job.source, rows: job.rows, inputs: descriptors, outputs: [...job.outputs] };
  return [headerChunk(header), ...chunks];
}

/** Parses and validates a request frame; every failure is an INVALID_ARG SluiceError. */
export function decodeInferRequest(body: Buffer): { header: InferFrameHeader; inputs: Tensor[] } {
  const { json, payload } = splitFrame(body, 'request');
  if (!isRecord(json)) throw frameError('request header must be a JSON object');
  const { model, version, rows, outputs } = json;
  if (typeof model !== 'string' || !MODEL_NAME_PATTERN.test(model)) throw frameError(`invalid model name ${JSON.stringify(model)}`);
  if (typeof version !== 'string' || !VERSION_PATTERN.test(version)) throw frameError(`invalid version ${JSON.stringify(version)}`);
  if (typeof rows !== 'number' || !Number.isSafeInteger(rows) || rows < 0) throw frameError(`rows must be a non-negative integer, got ${JSON.stringify(rows)}`);
  if (!Array.isArray(outputs) || outputs.length > MAX_FRAME_TENSORS || !outputs.every((o) => typeof o === 'string' && o !== '')) {
    throw frameError('outputs must be an array of output names');
  }
  const { source } = json;
  if (source !== undefined && (typeof source !== 'string' || !SOURCE_PATTERN.test(source))) throw frameError(`invalid source ${JSON.stringify(source)}`);
  const descriptors = parseDescriptors(json['inputs'], 'inputs');
  const inputs = sliceTensors(descriptors, payload);
  const header = { model, version, rows, inputs: descriptors, outputs: outputs as string[] };
  return { header: source === undefined ? header : { ...header, source }, inputs };
}

/** Response frame for a finished batch. */
export function encodeInferResponse(result: FrameResult): Buffer[] {
  const { descriptors, chunks } = tensorChunks(result.outputs);
  const header: ResultFrameHeader = {
    outputs: descriptors,
    computeInputNs: result.computeInputNs,
    computeInferNs: result.computeInferNs,
    computeOutputNs: result.computeOutputNs,
    cacheHit: result.cacheHit,
    // Optional and unknown to older readers, which ignore fields they do not use: the format stays compatible.
    ...(result.workerQueueNs === undefined ? {} : { workerQueueNs: result.workerQueueNs }),
    ...(result.heldBatches === undefined ? {} : { heldBatches: result.heldBatches }),
    ...(result.stamps === undefined ? {} : { stamps: result.stamps }),
    ...(result.evicted === undefined ? {} : { evicted: result.evicted }),
  };
  return [headerChunk(header), ...chunks];
}

/** Parses a response frame; a malformed one is an INVALID_ARG SluiceError (the client may wrap it). */
export function decodeInferResponse(body: Buffer): FrameResult {
  const { json, payload } = splitFrame(body, 'response');
  if (!isRecord(json)) throw frameError('response header must be a JSON object');
  const num = (key: string): number => {
    const v = json[key];
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw frameError(`response header field ${key} must be a non-negative number`);
    return v;
  };
  if (typeof json['cacheHit'] !== 'boolean') throw frameError('response header field cacheHit must be a boolean');
  const descriptors = parseDescriptors(json['outputs'], 'outputs');
  return {
    outputs: sliceTensors(descriptors, payload),
    computeInputNs: num('computeInputNs'),
    computeInferNs: num('computeInferNs'),
    computeOutputNs: num('computeOutputNs'),
    cacheHit: json['cacheHit'],
    ...(json['workerQueueNs'] === undefined ? {} : { workerQueueNs: num('workerQueueNs') }),
    ...(json['heldBatches'] === undefined ? {} : { heldBatches: num('heldBatches') }),
    ...(json['stamps'] === undefined ? {} : { stamps: parseStamps(json['stamps']) }),
    ...(json['evicted'] === undefined ? {} : { evicted: modelNames(json['evicted'], 'evicted') }),
  };
}

/** A list of model names a worker reports (bounded: they become metric labels). */
export function modelNames(v: unknown, field: string): string[] {
  if (!Array.isArray(v) || v.length > 1024 || !v.every((x) => typeof x === 'string' && MODEL_NAME_PATTERN.test(x))) throw frameError(`response header field ${field} must be a list of model names`);
  return v as string[];
}

function parseStamps(v: unknown): WorkerStamps {
  if (!isRecord(v)) throw frameError('response header field stamps must be an object');
  const num = (key: string): number => {
    const n = v[key];
    if (typeof n !== 'number' || !Number.isFinite(n) || n < 0) throw frameError(`response header field stamps.${key} must be a non-negative number`);
    return n;
  };
  return { recvNs: num('recvNs'), ortStartNs: num('ortStartNs'), ortEndNs: num('ortEndNs'), replyNs: num('replyNs') };
}

/** Total byte length of a frame given as chunks (for Content-Length). */
export function chunksByteLength(chunks: readonly Uint8Array[]): number {
  let n = 0;
  for (const c of chunks) n += c.byteLength;
  return n;
}

// --- internals ---

export function isRecord(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function frameError(reason: string): SluiceError {
  return InvalidRequest(`malformed worker frame: ${reason}`);
}

function tensorChunks(tensors: readonly Tensor[]): { descriptors: TensorDescriptor[]; chunks: Buffer[] } {
  const descriptors: TensorDescriptor[] = [];
  const chunks: Buffer[] = [];
  for (const t of tensors) {
    let bytes: Uint8Array;
    if (isBytesData(t.data)) {
      bytes = encodeBytesElements(t.data);
    } else {
      bytes = t.data;
      const expected = fixedByteLength(t.datatype, t.shape);
      if (expected !== bytes.byteLength) throw frameError(`tensor '${t.name}' (${t.datatype} ${JSON.stringify(t.shape)}) needs ${expected ?? '?'} bytes, has ${bytes.byteLength}`);
    }
    chunks.push(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
    descriptors.push({ name: t.name, datatype: t.datatype, shape: [...t.shape], byteLength: bytes.byteLength });
  }
  return { descriptors, chunks };
}

/**
 * The header chunk: u32 LE length, then the JSON. The JSON is padded with trailing spaces (valid JSON
 * whitespace) so the first tensor starts 8-byte aligned in the frame; when the receiver's body buffer is
 * itself aligned, typed-array views over it need no copy.
 */
function headerChunk(header: object): Buffer {
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const padded = Math.ceil((4 + json.byteLength) / 8) * 8 - 4;
  if (padded > MAX_FRAME_HEADER_BYTES) throw frameError(`header of ${padded} bytes exceeds ${MAX_FRAME_HEADER_BYTES}`);
  const out = Buffer.alloc(4 + padded, 0x20);
  out.writeUInt32LE(padded, 0);
  json.copy(out, 4);
  return out;
}

function splitFrame(body: Buffer, what: string): { json: unknown; payload: Buffer } {
  if (body.byteLength < 4) throw frameError(`${what} of ${body.byteLength} bytes is shorter than its 4-byte header length`);
  const headerLength = body.readUInt32LE(0);
  if (headerLength > MAX_FRAME_HEADER_BYTES) throw frameError(`header length ${headerLength} exceeds ${MAX_FRAME_HEADER_BYTES}`);
  if (4 + headerLength > body.byteLength) throw frameError(`header length ${headerLength} runs past the end of the ${body.byteLength}-byte ${what}`);
  let json: unknown;
  try {
    json = JSON.parse(body.toString('utf8', 4, 4 + headerLength));
  } catch (e) {
    throw frameError(`header is not JSON: ${(e as Error).message}`);
  }
  return { json, payload: body.subarray(4 + headerLength) };
}

function parseDescriptors(value: unknown, field: string): TensorDescriptor[] {
  if (!Array.isArray(value)) throw frameError(`${field} must be an array`);
  if (value.length > MAX_FRAME_TENSORS) throw frameError(`${field} lists ${value.length} tensors, more than ${MAX_FRAME_TENSORS}`);
  const seen = new Set<string>();
  return value.map((d: unknown, i): TensorDescriptor => {
    if (!isRecord(d)) throw frameError(`${field}[${i}] must be an object`);
    const { name, datatype, shape, byteLength } = d;
    if (typeof name !== 'string' || name === '') throw frameError(`${field}[${i}].name must be a non-empty string`);
    if (seen.has(name)) throw frameError(`tensor '${name}' appears twice in ${field}`);
    seen.add(name);
    if (!isDataType(datatype)) throw frameError(`tensor '${name}' has unknown datatype ${JSON.stringify(datatype)}`);
    if (!Array.isArray(shape) || shape.length > 64 || elementCount(shape as number[]) === undefined) {
      throw frameError(`tensor '${name}' has an invalid shape ${JSON.stringify(shape)}`);
    }
    if (typeof byteLength !== 'number' || !Number.isSafeInteger(byteLength) || byteLength < 0) {
      throw frameError(`tensor '${name}' has an invalid byteLength ${JSON.stringify(byteLength)}`);
    }
    const expected = fixedByteLength(datatype, shape as number[]);
    if (expected !== undefined && expected !== byteLength) {
      throw frameError(`tensor '${name}' (${datatype} ${JSON.stringify(shape)}) needs ${expected} bytes but declares ${byteLength}`);
    }
    if (datatype === 'BYTES' && byteLength < 4 * elementCount(shape as number[])!) {
      throw frameError(`tensor '${name}' declares ${byteLength} bytes, too few for its length prefixes`);
    }
    return { name, datatype, shape: shape as number[], byteLength };
  });
}

/** Cuts the payload into tensors after checking the declared lengths add up to exactly its size. */
function sliceTensors(descriptors: readonly TensorDescriptor[], payload: Buffer): Tensor[] {
  let total = 0;
  for (const d of descriptors) total += d.byteLength;
  if (total !== payload.byteLength) throw frameError(`tensors declare ${total} bytes but the frame carries ${payload.byteLength}`);
  let off = 0;
  return descriptors.map((d): Tensor => {
    const bytes = payload.subarray(off, off + d.byteLength);
    off += d.byteLength;
    if (d.datatype !== 'BYTES') return { name: d.name, datatype: d.datatype, shape: d.shape, data: bytes };
    const elements = decodeBytesElements(bytes, elementCount(d.shape)!);
    if (typeof elements === 'string') throw frameError(`tensor '${d.name}': ${elements}`);
    return { name: d.name, datatype: d.datatype, shape: d.shape, data: elements };
  });
}
