/**
 * The built-in repeat backend (Triton's repeat test backend) for one model version: a decoupled model
 * that answers each request once per element of IN, OUT = IN[i] and IDX = i, waiting DELAY[i] ms before
 * answer i, and holds its one instance for WAIT ms from the start of a request (the next request starts
 * then, even while earlier answers are still going out). Its queue is the model's one queue, bounded by
 * max_queue_size. A cancelled request stops before its next answer.
 */
import { DecoupledModel, InvalidTensorData, QueueFull, RequestCancelled, ShapeMismatch, type SluiceError } from '../core/errors.ts';
import type { InferRequest, InferResponse } from '../core/inference.ts';
import type { ModelConfig } from '../core/model.ts';
import type { Tensor } from '../core/tensor.ts';
import { maxQueueSizeOf, queuePolicyOf } from './policy.ts';
import type { DispatchResult, ModelScheduler, RequestPlan } from './scheduler.ts';
import { nsBetween, type ModelStatsRecorder } from './stats.ts';

interface Job {
  readonly request: InferRequest;
  readonly plan: RequestPlan;
  readonly emit: (r: InferResponse) => void;
  resolve(): void;
  reject(e: SluiceError): void;
}

function values(t: Tensor | undefined): Int32Array | Uint32Array {
  if (!t || !(t.data instanceof Uint8Array)) return new Int32Array(0);
  const bytes = new Uint8Array(t.data);
  return t.datatype === 'UINT32' ? new Uint32Array(bytes.buffer) : new Int32Array(bytes.buffer);
}

function scalar(name: string, datatype: 'INT32' | 'UINT32', v: number): Tensor {
  const data = new Uint8Array(4);
  if (datatype === 'INT32') new DataView(data.buffer).setInt32(0, v, true);
  else new DataView(data.buffer).setUint32(0, v, true);
  return { name, datatype, shape: [1], data };
}

const sleep = (ms: number, signal: AbortSignal | undefined): Promise<void> => new Promise((resolve) => {
  if (ms <= 0 || signal?.aborted) return resolve();
  const timer = setTimeout(resolve, ms);
  signal?.addEventListener('abort', () => {
    clearTimeout(timer);
    resolve();
  }, { once: true });
});

export class RepeatScheduler implements ModelScheduler {
  readonly #model: string;
  readonly #version: string;
  readonly #maxQueue: number;
  readonly #queue: Job[] = [];
  #busy = false;
  #running = 0;
  #closed: Error | undefined;
  #drainWaiters: (() => void)[] = [];

  readonly #stats: ModelStatsRecorder;

  constructor(options: { readonly model: string; readonly version: string; readonly config: ModelConfig; readonly stats: ModelStatsRecorder }) {
    this.#stats = options.stats;
    this.#model = options.model;
    this.#version = options.version;
    this.#maxQueue = maxQueueSizeOf(queuePolicyOf(options.config, 1));
  }

  enqueue(): Promise<InferResponse> {
    return Promise.reject(DecoupledModel(this.#model));
  }

  stream(request: InferRequest, plan: RequestPlan, emit: (r: InferResponse) => void): Promise<void> {
    if (this.#closed) return Promise.reject(this.#closed);
    const input = (n: string): Tensor | undefined => request.inputs.find((t) => t.name === n);
    const [inT, delayT, waitT] = [input('IN'), input('DELAY'), input('WAIT')];
    if (JSON.stringify(inT?.shape) !== JSON.stringify(delayT?.shape)) return Promise.reject(ShapeMismatch('DELAY', this.#model, `the shape of IN (${JSON.stringify(inT?.shape)})`, JSON.stringify(delayT?.shape)));
    if (values(waitT).length !== 1) return Promise.reject(InvalidTensorData('WAIT', 'unexpected size for WAIT input: it holds one value, the milliseconds the instance is held'));
    if (this.#queue.length >= this.#maxQueue) return Promise.reject(QueueFull(this.#model, this.#maxQueue));
    return new Promise<void>((resolve, reject) => {
      this.#queue.push({ request, plan, emit, resolve, reject });
      request.signal?.addEventListener('abort', () => {
        const at = this.#queue.findIndex((j) => j.request === request);
        if (at >= 0) this.#queue.splice(at, 1)[0]!.reject(RequestCancelled(this.#model));
      }, { once: true });
      this.#next();
    });
  }

  #next(): void {
    if (this.#busy || this.#closed) return;
    const job = this.#queue.shift();
    if (!job) return this.#wake();
    this.#busy = true;
    this.#running++;
    const { request } = job;
    const wait = values(request.inputs.find((t) => t.name === 'WAIT'))[0] ?? 0;
    // The instance is held for WAIT ms; the answers go on on their own timeline.
    void sleep(wait, undefined).then(() => {
      this.#busy = false;
      this.#next();
    });
    void this.#answer(job).finally(() => {
      this.#running--;
      this.#wake();
    });
  }

  async #answer(job: Job): Promise<void> {
    const { request, plan } = job;
    const ins = values(request.inputs.find((t) => t.name === 'IN'));
    const delays = values(request.inputs.find((t) => t.name === 'DELAY'));
    for (let i = 0; i < ins.length; i++) {
      await sleep(delays[i] ?? 0, request.signal);
      if (request.signal?.aborted) {
        this.#stats.fail(nsBetween(request.arrivalMs, performance.now()));
        return job.reject(RequestCancelled(this.#model));
      }
      const all = [scalar('OUT', 'INT32', ins[i]!), scalar('IDX', 'UINT32', i)];
      job.emit({ id: request.id, model: this.#model, version: this.#version, outputs: plan.outputs.map((n) => all.find((t) => t.name === n)!) });
    }
    this.#stats.success(nsBetween(request.arrivalMs, performance.now()));
    job.resolve();
  }

  refuseOnArrival(): SluiceError | undefined {
    return undefined;
  }

  depth(): number {
    return this.#queue.length;
  }

  inflight(): number {
    return this.#running;
  }

  dispatchOne(): DispatchResult {
    return 'idle';
  }

  drain(): Promise<void> {
    if (this.#queue.length === 0 && this.#running === 0) return Promise.resolve();
    return new Promise((resolve) => this.#drainWaiters.push(resolve));
  }

  #wake(): void {
    if (this.#queue.length > 0 || this.#running > 0) return;
    for (const w of this.#drainWaiters.splice(0)) w();
  }

  close(error: Error): void {
    this.#closed = error;
    for (const j of this.#queue.splice(0)) j.reject(error as SluiceError);
    this.#wake();
  }
}
