/**
 * One ONNX Runtime session and the conversions between sluice tensors (raw little-endian bytes) and
 * onnxruntime-node tensors (typed arrays). The SessionFactory owns the choice of execution provider,
 * including the CUDA probe and its fallback. In a worker process these live in the ORT thread
 * (ort-thread.ts): every call here blocks the calling thread for the whole creation or run.
 */
import { isGpu, providerLabel, type Device } from '../core/device.ts';
import { availableParallelism } from 'node:os';
import * as ort from 'onnxruntime-node';
import { elementSize, fromOrtTypeName, ortTypeName, type DataType } from '../core/datatypes.ts';
import { DatatypeMismatch, InferenceFailed, InvalidTensorData, MissingInput, ModelLoadFailed, ShapeMismatch, Unimplemented, UnknownInput, UnknownOutput } from '../core/errors.ts';
import { isBytesData, type Tensor } from '../core/tensor.ts';

/** The two log calls the factory makes; a pino Logger fits, and so does the ORT thread's forwarder. */
export interface LogSink {
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

/** Where sessions run. */
export interface DeviceOptions {
  readonly device: Device;
  readonly deviceId: number;
  /** What to do when the GPU device's provider (CUDA or WebGPU) cannot load: run on the CPU, or fail the model. */
  readonly cudaFallback: 'cpu' | 'fail';
  /** ONNX Runtime intra-op threads per session; 0 = every core of this machine. */
  readonly intraOpThreads: number;
  readonly logger: LogSink;
}

/** Outputs of one run with the time spent in each stage. */
export interface RunResult {
  readonly outputs: Tensor[];
  readonly computeInputNs: number;
  readonly computeInferNs: number;
  readonly computeOutputNs: number;
  /** Nanoseconds the batch waited in the worker between RunOptions.enqueuedNs and the start of its run. */
  readonly queueNs?: number;
  /** When the run was entered, when ONNX Runtime began and ended: trace-clock ns (src/core/trace.ts). */
  readonly enteredNs: number;
  readonly ortStartNs: number;
  readonly ortEndNs: number;
}

/** How a caller hands a batch over: `transfer` matters to the ORT thread proxy only. */
export interface RunOptions {
  /**
   * ArrayBuffers the inputs lie in that the caller gives away: they move to the ORT thread without a
   * copy and are detached here. Without it the proxy copies each tensor's bytes.
   */
  readonly transfer?: readonly ArrayBuffer[];
  /** process.hrtime.bigint() when the worker accepted the batch, to report its queue wait. */
  readonly enqueuedNs?: bigint;
}

/**
 * A loaded model as the cache sees it: ModelSession in the thread that owns ONNX Runtime, ThreadSession
 * (ort-client.ts) on the worker's main thread.
 */
export interface SessionHandle {
  readonly model: string;
  readonly provider: Device;
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  run(inputs: readonly Tensor[], outputs: readonly string[], options?: RunOptions): Promise<RunResult>;
  release(): Promise<void>;
}

type TypedArrayCtor = new (buffer: ArrayBufferLike, byteOffset: number, length: number) => ort.Tensor.DataType;

const TYPED_ARRAYS: Partial<Record<DataType, TypedArrayCtor>> = {
  BOOL: Uint8Array,
  UINT8: Uint8Array,
  INT8: Int8Array,
  UINT16: Uint16Array,
  INT16: Int16Array,
  // onnxruntime-node represents float16 as Uint16Array: the raw bits pass through untouched.
  FP16: Uint16Array,
  UINT32: Uint32Array,
  INT32: Int32Array,
  FP32: Float32Array,
  UINT64: BigUint64Array,
  INT64: BigInt64Array,
  FP64: Float64Array,
};

const utf8 = new TextDecoder('utf-8', { fatal: true });
const utf8Encoder = new TextEncoder();

/**
 * A sluice tensor as an ORT tensor. Fixed-size data becomes a typed-array view over the same bytes when
 * its offset is aligned to the element size; a misaligned view is impossible in JS, so then (only) the
 * bytes are copied into a fresh buffer. Assumes a little-endian host, as ONNX Runtime itself does.
 */
export function toOrtTensor(t: Tensor): ort.Tensor {
  if (isBytesData(t.data)) return new ort.Tensor('string', toStrings(t.name, t.data), t.shape);
  const Ctor = TYPED_ARRAYS[t.datatype];
  if (!Ctor) throw Unimplemented(`datatype ${t.datatype} in onnxruntime-node (tensor '${t.name}')`);
  const size = elementSize(t.datatype);
  // new Uint8Array(x) copies; Buffer#slice would return a view with the same misalignment.
  const bytes = t.data.byteOffset % size === 0 ? t.data : new Uint8Array(t.data);
  const view = new Ctor(bytes.buffer, bytes.byteOffset, bytes.byteLength / size);
  const tensor = new ort.Tensor(ortTypeName(t.datatype) as 'float32', view as Float32Array, t.shape);
  // Where the runtime has a native Float16Array (Node 24), onnxruntime-common 1.30 rewraps a float16
  // tensor's Uint16Array as one, and onnxruntime-node's binding reads such an array as 0 bytes: keep
  // the Uint16Array view it reads on every runtime (the bits are the same).
  if (t.datatype === 'FP16' && !(tensor.data instanceof Uint16Array)) (tensor as unknown as { cpuData: Uint16Array }).cpuData = view as Uint16Array;
  return tensor;
}

/**
 * BYTES elements as JS strings. onnxruntime-node passes strings to C++ as UTF-8 C strings, so an element
 * with invalid UTF-8 would be silently replaced and one with a NUL byte silently cut: both are refused.
 */
function toStrings(name: string, elements: readonly Uint8Array[]): string[] {
  return elements.map((e, i) => {
    if (e.includes(0)) throw InvalidTensorData(name, `BYTES element ${i} contains a NUL byte, which ONNX Runtime string tensors cannot carry`);
    try {
      return utf8.decode(e);
    } catch {
      throw InvalidTensorData(name, `BYTES element ${i} is not valid UTF-8, which ONNX Runtime string tensors require`);
    }
  });
}

/** An ORT output tensor back as raw bytes (a view, no copy) or UTF-8 elements for strings. */
export function fromOrtTensor(name: string, value: ort.Tensor): Tensor {
  const datatype = fromOrtTypeName(value.type);
  if (!datatype) throw Unimplemented(`output '${name}' of ONNX Runtime type ${value.type}`);
  const shape = value.dims.map(Number);
  if (datatype === 'BYTES') {
    return { name, datatype, shape, data: (value.data as string[]).map((s) => utf8Encoder.encode(s)) };
  }
  const data = value.data as Exclude<ort.Tensor.DataType, string[]>;
  return { name, datatype, shape, data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) };
}

interface InputSpec {
  readonly datatype: DataType | undefined;
  readonly rank: number | undefined;
}

/** A loaded model: run() serves batches, release() frees native memory. Lives in the ORT thread. */
export class ModelSession implements SessionHandle {
  readonly model: string;
  readonly provider: Device;
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  #session: ort.InferenceSession;
  #inputs = new Map<string, InputSpec>();

  constructor(model: string, session: ort.InferenceSession, provider: Device) {
    this.model = model;
    this.provider = provider;
    this.#session = session;
    this.inputNames = session.inputNames;
    this.outputNames = session.outputNames;
    for (const m of session.inputMetadata) {
      this.#inputs.set(m.name, m.isTensor ? { datatype: fromOrtTypeName(m.type), rank: m.shape.length || undefined } : { datatype: undefined, rank: undefined });
    }
  }

  /**
   * Runs one batch. Inputs are checked against the model's own signature first, so a wrong name, type
   * or rank is an INVALID_ARG error naming the tensor rather than ONNX Runtime's message.
   */
  async run(inputs: readonly Tensor[], outputs: readonly string[], options?: RunOptions): Promise<RunResult> {
    const t0 = process.hrtime.bigint();
    const queueNs = options?.enqueuedNs === undefined ? undefined : Math.max(0, Number(t0 - options.enqueuedNs));
    const feeds: Record<string, ort.Tensor> = {};
    for (const t of inputs) {
      const spec = this.#inputs.get(t.name);
      if (!spec) throw UnknownInput(t.name, this.model);
      if (spec.datatype && spec.datatype !== t.datatype) throw DatatypeMismatch(t.name, this.model, spec.datatype, t.datatype);
      if (spec.rank !== undefined && spec.rank !== t.shape.length) throw ShapeMismatch(t.name, this.model, `rank ${spec.rank}`, JSON.stringify(t.shape));
      feeds[t.name] = toOrtTensor(t);
    }
    for (const name of this.inputNames) {
      if (!feeds[name]) throw MissingInput(this.model, this.inputNames.length, inputs.length, name);
    }
    const fetches = outputs.length > 0 ? [...outputs] : [...this.outputNames];
    for (const name of fetches) if (!this.outputNames.includes(name)) throw UnknownOutput(name, this.model);
    const t1 = process.hrtime.bigint();
    let results: ort.InferenceSession.ReturnType;
    try {
      results = await this.#session.run(feeds, fetches);
    } catch (e) {
      throw InferenceFailed(this.model, (e as Error).message);
    }
    const t2 = process.hrtime.bigint();
    const out = fetches.map((name) => fromOrtTensor(name, results[name]!));
    const t3 = process.hrtime.bigint();
    const result = {
      outputs: out, computeInputNs: Number(t1 - t0), computeInferNs: Number(t2 - t1), computeOutputNs: Number(t3 - t2),
      enteredNs: Number(t0), ortStartNs: Number(t1), ortEndNs: Number(t2),
    };
    return queueNs === undefined ? result : { ...result, queueNs };
  }

  async release(): Promise<void> {
    await this.#session.release();
  }
}

/**
 * Creates sessions on the configured device. onnxruntime-node has no automatic fallback (creation with
 * the cuda provider throws when its library is missing, with webgpu when no Vulkan adapter exists), so
 * the first GPU session doubles as a probe: if it fails but the same model opens on the CPU, the
 * provider is what failed, and the result is remembered so later models do not repeat the failing
 * attempt.
 */
export class SessionFactory {
  #options: DeviceOptions;
  #gpuUsable: boolean | undefined;
  #gpuError = '';

  constructor(options: DeviceOptions) {
    this.#options = options;
  }

  /** The provider sessions actually use (the GPU device's until a probe shows it cannot load). */
  get provider(): Device {
    return isGpu(this.#options.device) && this.#gpuUsable !== false ? this.#options.device : 'cpu';
  }

  async open(model: string, file: string): Promise<ModelSession> {
    const { device, cudaFallback, logger } = this.#options;
    const label = providerLabel(device);
    if (isGpu(device) && this.#gpuUsable !== false) {
      if (this.#gpuUsable === undefined) {
        // Before the first session only: the native logger prints its own error line when the provider
        // cannot load; the clear message below replaces it.
        ort.env.logLevel = 'fatal';
      }
      try {
        const session = await ort.InferenceSession.create(file, this.#sessionOptions(device));
        this.#gpuUsable = true;
        return new ModelSession(model, session, device);
      } catch (e) {
        if (this.#gpuUsable === true) throw ModelLoadFailed(model, (e as Error).message);
        const cpu = await this.#tryCpu(file);
        if (!cpu) throw ModelLoadFailed(model, (e as Error).message);
        this.#gpuUsable = false;
        this.#gpuError = (e as Error).message;
        if (cudaFallback === 'fail') {
          await cpu.release();
          logger.error({ model, device, deviceId: this.#options.deviceId, err: this.#gpuError }, `${label} execution provider cannot load; cuda-fallback=fail, so models fail to load`);
        } else {
          logger.warn({ model, device, deviceId: this.#options.deviceId, err: this.#gpuError }, `${label} execution provider cannot load; falling back to the CPU provider (cuda-fallback=cpu)`);
          return new ModelSession(model, cpu, 'cpu');
        }
      }
    }
    if (isGpu(device) && cudaFallback === 'fail') {
      throw ModelLoadFailed(model, `the ${label} execution provider cannot load${device === 'cuda' ? ` on device ${this.#options.deviceId}` : ''} and cuda-fallback is 'fail': ${this.#gpuError}`);
    }
    try {
      return new ModelSession(model, await ort.InferenceSession.create(file, this.#sessionOptions('cpu')), 'cpu');
    } catch (e) {
      throw ModelLoadFailed(model, (e as Error).message);
    }
  }

  async #tryCpu(file: string): Promise<ort.InferenceSession | undefined> {
    try {
      return await ort.InferenceSession.create(file, this.#sessionOptions('cpu'));
    } catch {
      return undefined;
    }
  }

  #sessionOptions(provider: Device): ort.InferenceSession.SessionOptions {
    const providers: Record<Device, ort.InferenceSession.SessionOptions['executionProviders']> = {
      cpu: ['cpu'],
      cuda: [{ name: 'cuda', deviceId: this.#options.deviceId }],
      webgpu: ['webgpu'],
    };
    const threads = this.#options.intraOpThreads > 0 ? this.#options.intraOpThreads : availableParallelism();
    return {
      executionProviders: providers[provider],
      intraOpNumThreads: threads,
      // Batches run one at a time per worker: parallel branches would only compete with intra-op threads.
      interOpNumThreads: 1,
      graphOptimizationLevel: 'all',
      // ONNX Runtime's pool threads spin after each run by default. On a box whose cores the gateway and
      // other workers share, that spinning steals the CPU they need to feed this worker its next batch.
      extra: process.env['SLUICE_ORT_SPIN'] === '1' ? {} : { session: { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } } },
    };
  }
}
