/**
 * A local worker inside the gateway process, in one of two modes:
 *
 * - `inline`: ONNX Runtime runs on the gateway's own event-loop thread. onnxruntime-node runs a session
 *   synchronously on the calling thread, so a batch costs no thread hop at all: no message, no thread
 *   to wake, no copy of a one-request batch's inputs (ONNX Runtime only reads them). The event loop
 *   stops for the length of one batch, and a run can never overlap the decode of the next requests.
 *   That is the cheapest path when ONNX Runtime's intra-op threads take every core during a run anyway
 *   (a CPU worker), and the default there.
 * - `thread`: ONNX Runtime runs on a worker_thread of the gateway (one message to the thread, inputs
 *   moved, not copied, and one message back). The event loop keeps serving while a batch runs, which
 *   pays where the run leaves the cores idle (a CUDA device computing) or a batch takes long.
 *
 * The sessions and the hot-model cache are those of a worker process (src/worker); what both modes give
 * up is containment of a native crash, which takes the gateway down with it (as it does Triton, whose
 * backends run in-process). Use `--worker-isolation process` for that. A thread that dies of anything
 * else (an uncaught error) is replaced, and its batches fail over as a dead process's do.
 */
import type { Device } from '../core/device.ts';
import { toSluiceError } from '../core/errors.ts';
import type { BatchJob } from '../core/execution.ts';
import { traceNow } from '../core/trace.ts';
import type { Logger } from '../telemetry/logger.ts';
import { ModelCache } from '../worker/cache.ts';
import { startRun } from '../worker/engine.ts';
import { OrtThread } from '../worker/ort-client.ts';
import { SessionFactory } from '../worker/session.ts';
import { packCopies, type Packed } from '../worker/ort-messages.ts';
import { workerStatusOf, type FrameResult, type LoadResult, type ModelRef, type UnloadResult, type WorkerHealth } from '../worker/protocol.ts';
import { repositoryResolver } from '../worker/resolve.ts';
import type { UploadStore } from '../repository/uploads.ts';
import { TransportError, WorkerAnswerError, type WorkerLink } from './link.ts';
import type { LocalWorkerEvents } from './local-worker.ts';
import { RespawnSchedule } from './respawn.ts';

const BACKOFF_FIRST_MS = 50;
const BACKOFF_MAX_MS = 10_000;

export interface InProcessWorkerOptions {
  readonly id: string;
  readonly modelRepository: string;
  readonly device: Device;
  readonly deviceId: number;
  readonly cudaFallback: 'cpu' | 'fail';
  readonly intraOpThreads: number;
  readonly memoryBudgetBytes: number;
  readonly logger: Logger;
  readonly events: LocalWorkerEvents;
  /** The ORT thread's module, when not the standard one (tests substitute one that dies). */
  readonly entry?: URL;
  /** Where ONNX Runtime runs: on the gateway's event-loop thread, or on a worker_thread of its own. */
  readonly mode: 'inline' | 'thread';
  /** The gateway's staged uploads: this worker shares its files (never drops them; the gateway does). */
  readonly uploads?: UploadStore;
}

interface Engine {
  /** The ORT thread (mode 'thread'); absent inline. */
  readonly ort: OrtThread | undefined;
  /** The session factory of the event-loop thread (mode 'inline'). */
  readonly factory: SessionFactory | undefined;
  readonly cache: ModelCache;
  dead: boolean;
}

export class InProcessWorker implements WorkerLink {
  readonly worker: string;
  readonly address: string;
  readonly #o: InProcessWorkerOptions;
  readonly #log: Logger;
  #engine: Engine;
  #restarts = 0;
  readonly #respawn = new RespawnSchedule({ firstMs: BACKOFF_FIRST_MS, maxMs: BACKOFF_MAX_MS });
  #stopping = false;
  #running = 0;

  constructor(opts: InProcessWorkerOptions) {
    this.worker = opts.id;
    this.address = `${opts.mode}:${opts.id}`;
    this.#o = opts;
    this.#log = opts.logger.child({ worker: opts.id });
    this.#engine = this.#spawn();
  }

  /** The gateway's own pid: the thread lives in it. */
  get pid(): number | undefined {
    return this.#engine.dead ? undefined : process.pid;
  }

  get restarts(): number {
    return this.#restarts;
  }

  health(): Promise<WorkerHealth> {
    const e = this.#engine;
    if (e.dead || this.#stopping) return Promise.reject(new TransportError(this.worker, this.#stopping ? 'worker stopped' : 'its ONNX Runtime thread is not running'));
    const s = e.cache.snapshot();
    return Promise.resolve({
      id: this.worker, pid: process.pid, device: this.#o.device, deviceId: this.#o.deviceId, provider: e.ort?.provider ?? e.factory!.provider,
      models: s.models, memoryUsedBytes: s.memoryUsedBytes, memoryBudgetBytes: this.#o.memoryBudgetBytes,
      running: this.#running > 0, loads: s.loads, evictions: s.evictions, cacheHits: s.cacheHits, cacheMisses: s.cacheMisses,
      warmupRuns: s.warmupRuns, queuedBatches: Math.max(0, this.#running - 1),
    });
  }

  async load(ref: ModelRef): Promise<LoadResult> {
    const e = this.#live();
    const r = await this.#answering(e, () => e.cache.load(ref.model, ref.version, ref.source));
    return { model: ref.model, version: ref.version, loadMs: r.loadMs, cacheHit: r.cacheHit, ...(r.evicted.length > 0 ? { evicted: r.evicted } : {}) };
  }

  async unload(ref: ModelRef): Promise<UnloadResult> {
    const e = this.#live();
    return { unloaded: await this.#answering(e, () => e.cache.unload(ref.model, ref.version, ref.source)) };
  }

  async infer(job: BatchJob, cancel?: AbortSignal): Promise<FrameResult> {
    const e = this.#live();
    const recvNs = process.hrtime.bigint();
    this.#running++;
    try {
      const run = this.#answering(e, async () => {
        const lease = await e.cache.acquire(job.model, job.version, job.source);
        // Inline, ONNX Runtime reads the batch's inputs where they are: nothing crosses a thread.
        return startRun(lease, job, job.inputs, e.ort ? () => handOver(job) : () => ({ tensors: [...job.inputs], transfer: [] }), recvNs);
      });
      const r = await (cancel ? raceCancel(run, cancel, this.worker) : run);
      return r.stamps ? { ...r, stamps: { ...r.stamps, replyNs: traceNow() } } : r;
    } finally {
      this.#running--;
    }
  }

  /** Stops respawning, then lets the thread finish what it holds and release its sessions. */
  async stop(): Promise<void> {
    this.#stopping = true;
    this.#respawn.cancel();
    const e = this.#engine;
    if (e.dead) return;
    await e.cache.close();
    await e.ort?.close();
  }

  close(): Promise<void> {
    return this.stop();
  }

  #live(): Engine {
    const e = this.#engine;
    if (e.dead || this.#stopping) throw new TransportError(this.worker, this.#stopping ? 'worker stopped' : 'its ONNX Runtime thread died and is being replaced');
    return e;
  }

  /** The engine's own verdicts become WorkerAnswerError; its thread dying under the call, a TransportError. */
  async #answering<T>(e: Engine, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      if (e.dead) throw new TransportError(this.worker, `its ONNX Runtime thread died: ${toSluiceError(err).message}`, { cause: err });
      const se = toSluiceError(err);
      throw new WorkerAnswerError(workerStatusOf(se.kind), se);
    }
  }

  #spawn(): Engine {
    const { device, deviceId, cudaFallback, intraOpThreads, memoryBudgetBytes, modelRepository } = this.#o;
    const engine: Engine = { dead: false } as Engine;
    if (this.#o.mode === 'inline') {
      const factory = new SessionFactory({ device, deviceId, cudaFallback, intraOpThreads, logger: this.#log });
      const cache = new ModelCache({ budgetBytes: memoryBudgetBytes, resolver: repositoryResolver(modelRepository, this.#o.uploads), opener: factory, logger: this.#log });
      Object.assign(engine, { ort: undefined, factory, cache });
      return engine;
    }
    const ort = new OrtThread({
      device, deviceId, cudaFallback, intraOpThreads, worker: this.worker, logger: this.#log,
      ...(this.#o.entry ? { entry: this.#o.entry } : {}),
      onDeath: (err) => this.#died(engine, err.message),
    });
    const cache = new ModelCache({ budgetBytes: memoryBudgetBytes, resolver: repositoryResolver(modelRepository, this.#o.uploads), opener: ort, logger: this.#log });
    Object.assign(engine, { ort, factory: undefined, cache });
    return engine;
  }

  #died(engine: Engine, reason: string): void {
    engine.dead = true;
    if (this.#stopping) return;
    this.#log.error({ reason }, `worker ${this.worker}: ${reason}`);
    this.#o.events.onExit(`ONNX Runtime thread died (${reason})`);
    this.#respawn.schedule(() => {
      if (this.#stopping) return;
      this.#restarts++;
      this.#o.events.onRestart();
      this.#engine = this.#spawn();
      this.#o.events.onReady(process.pid);
    });
  }
}

/**
 * The batch's inputs move to the thread when they were written for it (a batch of several requests,
 * or padded): nobody else holds them. A one-request batch is the request's own tensors, which the
 * scheduler keeps until the request is answered (a retry re-reads them): those are copied, once.
 */
function handOver(job: BatchJob): Packed {
  if (!job.inputsOwned) return packCopies(job.inputs);
  const transfer = new Set<ArrayBuffer>();
  for (const t of job.inputs) {
    if (t.data instanceof Uint8Array && t.data.buffer instanceof ArrayBuffer && t.data.byteOffset === 0 && t.data.byteLength === t.data.buffer.byteLength) {
      transfer.add(t.data.buffer);
    } else {
      return packCopies(job.inputs);
    }
  }
  return { tensors: [...job.inputs], transfer: [...transfer] };
}

function raceCancel<T>(run: Promise<T>, cancel: AbortSignal, worker: string): Promise<T> {
  if (cancel.aborted) return Promise.reject(new TransportError(worker, String((cancel.reason as Error | undefined)?.message ?? 'cancelled')));
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(new TransportError(worker, String((cancel.reason as Error | undefined)?.message ?? 'cancelled')));
    cancel.addEventListener('abort', onAbort, { once: true });
    run.then(
      (v) => {
        cancel.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e: unknown) => {
        cancel.removeEventListener('abort', onAbort);
        reject(e instanceof Error ? e : new Error(String(e)));
      },
    );
  });
}

