// A real Executor for scheduler tests: it runs each batch on a real ONNX Runtime session in this
// process (the sample models are tiny), with two knobs the tests turn: how many batches may run at once
// (slots) and a gate that holds started batches until the test releases them.
import { fileURLToPath } from 'node:url';
import ort from 'onnxruntime-node';
import { fromOrtTypeName, ortTypeName } from '../../src/core/datatypes.ts';
import { InferenceFailed, UploadMissing } from '../../src/core/errors.ts';
import type { Acquired, BatchCost, BatchJob, BatchResult, Executor } from '../../src/core/execution.ts';
import { isBytesData, type Tensor } from '../../src/core/tensor.ts';

export const MODELS_ROOT = fileURLToPath(new URL('../../models', import.meta.url));

const encoder = new TextEncoder();
const decoder = new TextDecoder();

type TypedArrayCtor = new (buffer: ArrayBuffer) => ort.Tensor['data'];

const TYPED: Record<string, TypedArrayCtor> = {
  bool: Uint8Array, uint8: Uint8Array, int8: Int8Array, uint16: Uint16Array, int16: Int16Array,
  uint32: Uint32Array, int32: Int32Array, uint64: BigUint64Array, int64: BigInt64Array,
  float16: Uint16Array, float32: Float32Array, float64: Float64Array,
};

function toOrt(t: Tensor): ort.Tensor {
  const type = ortTypeName(t.datatype);
  if (isBytesData(t.data)) return new ort.Tensor('string', t.data.map((e) => decoder.decode(e)), [...t.shape]);
  const Ctor = TYPED[type];
  if (!Ctor) throw new Error(`no typed array for ${type}`);
  // A fresh, aligned buffer: the tensor's bytes may sit at any offset of a larger one.
  const data = new Ctor(new Uint8Array(t.data).buffer);
  return new ort.Tensor(type as 'int32', data as Int32Array, [...t.shape]);
}

function fromOrt(name: string, t: ort.Tensor): Tensor {
  const datatype = fromOrtTypeName(t.type);
  if (!datatype) throw new Error(`unknown ORT type ${t.type}`);
  const shape = t.dims.map(Number);
  if (t.type === 'string') return { name, datatype, shape, data: (t.data as string[]).map((s) => encoder.encode(s)) };
  const view = t.data as Uint8Array;
  return { name, datatype, shape, data: new Uint8Array(new Uint8Array(view.buffer, view.byteOffset, view.byteLength)) };
}

/** One batch as the executor saw it. */
export interface ExecutedBatch {
  readonly job: BatchJob;
  /** Row count per input tensor's leading dim (equals job.rows for batching models). */
  readonly rows: number;
}

export class OrtTestExecutor implements Executor {
  /** Batches that may run at once; tryAcquire says busy while that many are reserved and unanswered. */
  slots: number;
  readonly batches: ExecutedBatch[] = [];
  readonly loads: string[] = [];
  readonly unloads: string[] = [];
  readonly #root: string;
  readonly #sessions = new Map<string, Promise<ort.InferenceSession>>();
  readonly #listeners: (() => void)[] = [];
  #busy = 0;
  #gateOpen = true;
  readonly #held: (() => void)[] = [];

  constructor(options: { root?: string; slots?: number } = {}) {
    this.#root = options.root ?? MODELS_ROOT;
    this.slots = options.slots ?? 1;
  }

  get busy(): number {
    return this.#busy;
  }

  /** Batches started and waiting at the closed gate. */
  get held(): number {
    return this.#held.length;
  }

  /** From now on, started batches wait at the gate until released. */
  hold(): void {
    this.#gateOpen = false;
  }

  /** Lets `n` held batches run (all when n is omitted); with no n the gate stays open afterwards. */
  release(n?: number): void {
    if (n === undefined) this.#gateOpen = true;
    const count = n ?? this.#held.length;
    for (const go of this.#held.splice(0, count)) go();
  }

  /** Tells the scheduler capacity may have appeared (as a worker coming up does). */
  notify(): void {
    for (const l of this.#listeners) l();
  }

  /** What costOf reports (tests of admission set it). */
  cost: BatchCost | undefined;

  tryAcquire(_batch: { model: string; version: string; rows: number }): Acquired {
    if (this.#busy >= this.slots) return { kind: 'busy' };
    this.#busy++;
    let used = false;
    return {
      kind: 'slot',
      slot: {
        worker: 'in-test',
        run: (job) => {
          if (used) return Promise.reject(new Error('slot used twice'));
          used = true;
          return this.#run(job);
        },
        release: () => {
          if (used) return;
          used = true;
          this.#busy--;
          setImmediate(() => this.notify());
        },
      },
    };
  }

  onDrain(listener: () => void): void {
    this.#listeners.push(listener);
  }

  costOf(_model: string, _version: string): BatchCost | undefined {
    return this.cost;
  }

  async #run(job: BatchJob): Promise<BatchResult> {
    this.batches.push({ job, rows: job.inputs[0]?.shape[0] ?? 0 });
    try {
      if (!this.#gateOpen) await new Promise<void>((resolve) => this.#held.push(resolve));
      // It holds no uploaded files: a version made of them must never run the repository's file instead.
      if (job.source !== undefined) throw UploadMissing(job.model, job.version, job.source, 'the test executor takes no uploads');
      const session = await this.#session(job.model, job.version);
      const feeds: Record<string, ort.Tensor> = {};
      for (const t of job.inputs) feeds[t.name] = toOrt(t);
      const started = performance.now();
      let out: ort.InferenceSession.OnnxValueMapType;
      try {
        out = await session.run(feeds, [...job.outputs]);
      } catch (e) {
        throw InferenceFailed(job.model, e instanceof Error ? e.message : String(e));
      }
      const inferNs = Math.round((performance.now() - started) * 1e6);
      const outputs = job.outputs.map((name) => fromOrt(name, out[name] as ort.Tensor));
      return { outputs, computeInputNs: 1000, computeInferNs: inferNs, computeOutputNs: 2000, worker: 'in-test', cacheHit: true };
    } finally {
      this.#busy--;
      // After the caller's continuation has run, as a worker's answer arrives on a later tick.
      setImmediate(() => this.notify());
    }
  }

  async load(model: string, version: string, source?: string): Promise<void> {
    if (source !== undefined) throw UploadMissing(model, version, source, 'the test executor takes no uploads');
    this.loads.push(`${model}/${version}`);
    await this.#session(model, version);
  }

  async unload(model: string, version: string): Promise<void> {
    this.unloads.push(`${model}/${version}`);
    const key = `${model}/${version}`;
    const s = this.#sessions.get(key);
    this.#sessions.delete(key);
    if (s) await (await s).release();
  }

  async close(): Promise<void> {
    for (const s of this.#sessions.values()) await (await s.catch(() => undefined))?.release();
    this.#sessions.clear();
  }

  #session(model: string, version: string): Promise<ort.InferenceSession> {
    const key = `${model}/${version}`;
    let s = this.#sessions.get(key);
    if (!s) {
      s = ort.InferenceSession.create(`${this.#root}/${model}/${version}/model.onnx`, { intraOpNumThreads: 1, interOpNumThreads: 1 });
      this.#sessions.set(key, s);
      void s.catch(() => this.#sessions.delete(key));
    }
    return s;
  }
}
