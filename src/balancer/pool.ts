import type { Config } from '../config/schema.ts';
import { ModelLoadFailed, NoWorkerAvailable, ShuttingDown, WorkerFailed, toSluiceError, type SluiceError } from '../core/errors.ts';
import type { BatchJob, BatchResult, Executor } from '../core/execution.ts';
import type { Logger } from '../telemetry/logger.ts';
import type { Metrics, WorkerSnapshot } from '../telemetry/metrics.ts';
import type { Picker } from './picker.ts';
import { HealthProber } from './health.ts';
import { createPicker } from './policies.ts';
import { PooledWorker, type SlotLease, type WorkerInfo } from './pooled-worker.ts';
import { startWorkers, type StartedWorkers } from './startup.ts';
import { TransportError, WorkerAnswerError } from './worker-client.ts';

/** How long a batch waits for a slot when every healthy worker is busy (a retry, or a call without capacity). */
export const SLOT_WAIT_MS = 30_000;
/** Batches that may wait for a slot at once; beyond it execute() fails at once instead of queueing here. */
export const MAX_SLOT_WAITERS = 4096;

export interface WorkerPoolOptions {
  readonly config: Config;
  readonly metrics: Metrics;
  readonly logger: Logger;
}

/** A batch's first attempt failed in a way that says nothing about the batch: it may run elsewhere. */
class RetryableFailure extends Error {
  readonly worker: string;
  constructor(worker: string, reason: string) {
    super(reason);
    this.worker = worker;
  }
}

interface SlotWaiter {
  readonly job: BatchJob;
  readonly exclude: PooledWorker | undefined;
  readonly failure: RetryableFailure | undefined;
  readonly resolve: (lease: SlotLease) => void;
  readonly reject: (e: SluiceError) => void;
  readonly timer: NodeJS.Timeout;
}

/**
 * Runs batches on workers (the scheduler's Executor): local worker processes it supervises and remote
 * worker hosts, all reached the same way through a WorkerClient. A picker chooses the worker; this
 * class owns slots, health, failover and the per-batch metrics.
 */
export class WorkerPool implements Executor {
  readonly #workers: readonly PooledWorker[];
  readonly #picker: Picker;
  readonly #metrics: Metrics;
  readonly #log: Logger;
  readonly #drainTimeoutMs: number;
  readonly #cleanup: () => void;
  readonly #listeners: (() => void)[] = [];
  readonly #waiters: SlotWaiter[] = [];
  readonly #health: HealthProber;
  #notifyQueued = false;
  #active = 0;
  #drained: (() => void) | undefined;
  #closing: Promise<void> | undefined;

  private constructor(opts: WorkerPoolOptions, started: StartedWorkers, log: Logger) {
    this.#workers = started.workers;
    this.#cleanup = started.cleanup;
    this.#picker = createPicker(opts.config.balancer.policy);
    this.#metrics = opts.metrics;
    this.#log = log;
    this.#drainTimeoutMs = opts.config.drainTimeoutMs;
    this.#health = new HealthProber(this.#workers, log, () => this.#slotFreed());
    this.#health.start();
  }

  /**
   * Starts the local workers (waiting until each is ready; fails naming the one that did not start),
   * probes the remote ones (an unreachable one starts ejected and is probed until it answers).
   */
  static async create(opts: WorkerPoolOptions): Promise<WorkerPool> {
    const log = opts.logger.child({ component: 'balancer' });
    // Assigned once the workers run; lifecycle events before that are covered by create() itself.
    const ref: { pool?: WorkerPool } = {};
    const started = await startWorkers(opts.config, log, {
      onReady: (w) => {
        if (ref.pool) ref.pool.#workerReady(w);
      },
      onExit: (w, reason) => {
        if (ref.pool) ref.pool.#workerExited(w, reason);
      },
      onRestart: (w) => opts.metrics.workerRestarts.inc({ worker: w.id }),
    });
    const pool = new WorkerPool(opts, started, log);
    ref.pool = pool;
    // Local workers are up (start waited for them); remote ones get their first probe now.
    for (const w of pool.#workers) if (w.local) w.markUp();
    await Promise.all(pool.#workers.map((w) => pool.#health.probe(w)));
    return pool;
  }

  hasCapacity(_model: string, _version: string): boolean {
    if (this.#closing || this.#waiters.length > 0) return false;
    return this.#workers.some((w) => w.canTake);
  }

  onCapacity(listener: () => void): void {
    this.#listeners.push(listener);
  }

  execute(job: BatchJob): Promise<BatchResult> {
    if (this.#closing) return Promise.reject(ShuttingDown());
    this.#active++;
    // #run reserves its slot before its first await, so the caller's hasCapacity() still holds.
    return this.#run(job).finally(() => {
      this.#active--;
      if (this.#active === 0) this.#drained?.();
    });
  }

  async load(model: string, version: string): Promise<void> {
    if (this.#closing) throw ShuttingDown();
    // A worker that already holds the model hot confirms it (and refreshes its LRU position); otherwise
    // the one holding (or loading) the fewest models loads it, so distinct models spread out.
    const order = this.#workers
      .filter((w) => w.healthy)
      .sort((a, b) => Number(b.isHot(model, version)) - Number(a.isHot(model, version)) || a.modelLoadCount - b.modelLoadCount || a.inflightBatches - b.inflightBatches);
    if (order.length === 0) throw NoWorkerAvailable(model, this.#downSummary());
    const failures: string[] = [];
    for (const w of order) {
      w.loadStarted();
      try {
        const r = await w.client.load({ model, version });
        w.markHot(model, version);
        if (!r.cacheHit) {
          this.#metrics.modelLoads.inc({ model, result: 'success' });
          this.#metrics.modelLoadDuration.observe({ model }, r.loadMs / 1000);
        }
        return;
      } catch (e) {
        const failure = this.#classify(w, e, model);
        // The model's own failure (a bad file, too big for the budget) would repeat on every worker.
        if (!(failure instanceof RetryableFailure)) throw failure;
        failures.push(`${w.id}: ${failure.message}`);
      } finally {
        w.loadFinished();
      }
    }
    throw NoWorkerAvailable(model, `loading failed on every worker (${failures.join('; ')})`);
  }

  async unload(model: string, version: string): Promise<void> {
    await Promise.all(this.#workers.map(async (w) => {
      w.markCold(model, version);
      if (!w.healthy) return; // a worker that is down is probed again before use and reports its models
      try {
        await w.client.unload({ model, version });
      } catch (e) {
        this.#log.warn({ worker: w.id, model, version, err: e }, `unloading ${model} version ${version} from ${w.id} failed`);
      }
    }));
  }

  /** One snapshot per worker, read by metrics at scrape time. */
  snapshot(): WorkerSnapshot[] {
    return this.#workers.map((w) => w.snapshot());
  }

  /** How many healthy workers hold the model version hot. */
  hotWorkers(model: string, version: string): number {
    return this.#workers.filter((w) => w.healthy && w.isHot(model, version)).length;
  }

  /** Details of every worker (ids, addresses, pids, health): for operators' status and for tests. */
  workers(): WorkerInfo[] {
    return this.#workers.map((w) => w.info());
  }

  /**
   * Stops taking batches, waits for those accepted (at most config.drainTimeoutMs), then stops the local
   * workers (SIGTERM, waiting for their exit) and closes every connection pool.
   */
  close(): Promise<void> {
    this.#closing ??= this.#shutdown();
    return this.#closing;
  }

  async #shutdown(): Promise<void> {
    if (this.#active > 0) {
      let timer: NodeJS.Timeout | undefined;
      await new Promise<void>((resolve) => {
        this.#drained = resolve;
        timer = setTimeout(resolve, this.#drainTimeoutMs);
        timer.unref();
      });
      clearTimeout(timer);
      if (this.#active > 0) this.#log.warn(`closing with ${this.#active} batches unanswered after ${this.#drainTimeoutMs} ms`);
    }
    this.#health.stop();
    // Down first, so that a batch still running when the workers stop fails without a pointless retry.
    for (const w of this.#workers) w.markDown('pool closed');
    for (const waiter of this.#waiters.splice(0)) {
      clearTimeout(waiter.timer);
      waiter.reject(ShuttingDown());
    }
    await Promise.all(this.#workers.map(async (w) => w.local?.stop()));
    await Promise.all(this.#workers.map((w) => w.client.close()));
    this.#cleanup();
  }

  async #run(job: BatchJob): Promise<BatchResult> {
    const first = (this.#waiters.length === 0 ? this.#acquire(job, undefined) : undefined) ?? await this.#waitForSlot(job, undefined, undefined);
    let failure: RetryableFailure;
    try {
      return await this.#attempt(job, first);
    } catch (e) {
      if (!(e instanceof RetryableFailure)) throw e;
      failure = e;
    }
    this.#metrics.batchRetries.inc({ model: job.model });
    this.#log.warn({ worker: failure.worker, model: job.model, rows: job.rows }, `batch failed on ${failure.worker} (${failure.message}); retrying on another worker`);
    const second = this.#acquire(job, first.worker) ?? await this.#waitForSlot(job, first.worker, failure);
    try {
      return await this.#attempt(job, second);
    } catch (e) {
      if (!(e instanceof RetryableFailure)) throw e;
      throw WorkerFailed(e.worker, `${e.message} (the batch had first failed on ${failure.worker}: ${failure.message})`);
    }
  }

  /** Sends the batch on a reserved slot; converts every failure into a RetryableFailure or the error to report. */
  async #attempt(job: BatchJob, lease: SlotLease): Promise<BatchResult> {
    const w = lease.worker;
    try {
      const r = await w.client.infer(job, lease.cancel.signal);
      // A miss includes the model load: measuring it would make the worker look slow for many batches.
      w.release(lease, performance.now(), { model: job.model, version: job.version, measure: r.cacheHit });
      w.markHot(job.model, job.version);
      const m = this.#metrics;
      const labels = { model: job.model };
      m.batches.inc(labels);
      // Padding rows ran but answered no one: Triton's inference_count leaves them out, and so does this.
      m.inferences.inc(labels, job.requestRows ?? job.rows);
      m.batchSize.observe(labels, job.rows);
      m.batchCompute.observe(labels, (r.computeInputNs + r.computeInferNs + r.computeOutputNs) / 1e9);
      m.cacheLookups.inc({ model: job.model, result: r.cacheHit ? 'hit' : 'miss' });
      if (!r.cacheHit) m.modelLoads.inc({ model: job.model, result: 'success' });
      return { ...r, worker: w.id };
    } catch (e) {
      w.release(lease, performance.now(), undefined);
      throw this.#classify(w, e, job.model);
    } finally {
      this.#slotFreed();
    }
  }

  /**
   * Failures that leave the batch unanswered for reasons of the worker (transport, UNAVAILABLE) eject
   * the worker and come back as RetryableFailure; a worker's verdict on the batch or the model itself
   * (bad input, failed load, inference error) is returned as the SluiceError to report, not retried.
   */
  #classify(w: PooledWorker, e: unknown, model: string): RetryableFailure | SluiceError {
    if (e instanceof TransportError || (e instanceof WorkerAnswerError && e.error.kind === 'UNAVAILABLE')) {
      const reason = e instanceof WorkerAnswerError ? e.error.message : e.message;
      this.#eject(w, reason);
      return new RetryableFailure(w.id, reason);
    }
    if (e instanceof WorkerAnswerError) {
      if (e.error.code === ModelLoadFailed.code) this.#metrics.modelLoads.inc({ model, result: 'failure' });
      return e.error;
    }
    return toSluiceError(e);
  }

  #acquire(job: BatchJob, exclude: PooledWorker | undefined): SlotLease | undefined {
    const now = performance.now();
    const workers = exclude ? this.#workers.filter((w) => w !== exclude) : this.#workers;
    const views = workers.map((w) => w.view(job, now));
    const picked = this.#picker.pick(views, job);
    if (picked === undefined) return undefined;
    const worker = workers[views.indexOf(picked)];
    // A picker must return one of the views it was given, healthy and with a slot; trust but verify.
    if (worker === undefined || !worker.canTake) {
      this.#log.error({ policy: this.#picker.name, picked: picked.id }, 'balancer policy picked a worker that cannot take a batch');
      return undefined;
    }
    return worker.reserve(job.rows, now);
  }

  #waitForSlot(job: BatchJob, exclude: PooledWorker | undefined, failure: RetryableFailure | undefined): Promise<SlotLease> {
    const refusal = this.#refusal(job, exclude, failure);
    if (refusal) return Promise.reject(refusal);
    if (this.#waiters.length >= MAX_SLOT_WAITERS) {
      return Promise.reject(NoWorkerAvailable(job.model, `every worker is busy and ${MAX_SLOT_WAITERS} batches already wait for a slot`));
    }
    return new Promise<SlotLease>((resolve, reject) => {
      const timer = setTimeout(() => {
        const i = this.#waiters.indexOf(waiter);
        if (i >= 0) this.#waiters.splice(i, 1);
        reject(failure
          ? WorkerFailed(failure.worker, `${failure.message}; no other worker freed a slot for the retry within ${SLOT_WAIT_MS} ms`)
          : NoWorkerAvailable(job.model, `no worker freed a slot within ${SLOT_WAIT_MS} ms`));
      }, SLOT_WAIT_MS);
      timer.unref();
      const waiter: SlotWaiter = { job, exclude, failure, resolve, reject, timer };
      this.#waiters.push(waiter);
    });
  }

  /** The error for a batch that no healthy worker (other than `exclude`) could ever take, if that is the case. */
  #refusal(job: BatchJob, exclude: PooledWorker | undefined, failure: RetryableFailure | undefined): SluiceError | undefined {
    if (this.#workers.some((w) => w !== exclude && w.healthy)) return undefined;
    if (failure) {
      const others = this.#workers.filter((w) => w !== exclude);
      const rest = others.length === 0 ? 'there is no other worker to retry on' : `no other worker is up to retry on (${summarize(others)})`;
      return WorkerFailed(failure.worker, `${failure.message}; ${rest}`);
    }
    return NoWorkerAvailable(job.model, this.#downSummary());
  }

  #downSummary(): string {
    return `every worker is down (${summarize(this.#workers)})`;
  }

  /** Hands free slots to waiting batches first, then tells the scheduler capacity may have appeared. */
  #slotFreed(): void {
    for (let i = 0; i < this.#waiters.length;) {
      const waiter = this.#waiters[i]!;
      const refusal = this.#refusal(waiter.job, waiter.exclude, waiter.failure);
      const lease = refusal ? undefined : this.#acquire(waiter.job, waiter.exclude);
      if (refusal === undefined && lease === undefined) {
        i++;
        continue;
      }
      this.#waiters.splice(i, 1);
      clearTimeout(waiter.timer);
      if (lease) waiter.resolve(lease);
      else waiter.reject(refusal!);
    }
    if (this.#waiters.length > 0 || this.#listeners.length === 0 || this.#notifyQueued) return;
    this.#notifyQueued = true;
    // Deferred so a listener that calls execute() never re-enters the pool while it updates its state.
    queueMicrotask(() => {
      this.#notifyQueued = false;
      if (this.#closing) return;
      for (const listener of this.#listeners) {
        try {
          listener();
        } catch (e) {
          this.#log.error({ err: e }, 'capacity listener threw');
        }
      }
    });
  }

  #eject(w: PooledWorker, reason: string): void {
    if (w.healthy) this.#log.warn({ worker: w.id, reason }, `ejecting worker ${w.id}: ${reason}`);
    w.markDown(reason);
    // Waiting batches that only this worker could have served must not wait for nothing.
    this.#slotFreed();
  }

  #workerReady(w: PooledWorker): void {
    w.forgetModels();
    if (this.#closing) return;
    if (w.markUp()) this.#log.info({ worker: w.id }, `worker ${w.id} is up`);
    this.#slotFreed();
    void this.#health.probe(w);
  }

  #workerExited(w: PooledWorker, reason: string): void {
    w.forgetModels();
    this.#eject(w, `process ${reason}; respawning`);
  }
}

function summarize(workers: readonly PooledWorker[]): string {
  return workers.map((w) => `${w.id}: ${w.healthy ? 'up' : w.downReason}`).join('; ');
}
