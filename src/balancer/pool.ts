import type { Config } from '../config/schema.ts';
import { ModelLoadFailed, NoWorkerAvailable, ShuttingDown, WorkerBusy, toSluiceError, type SluiceError } from '../core/errors.ts';
import { BatchNotRun, type Acquired, type BatchCost, type BatchJob, type BatchResult, type BatchSlot, type Executor } from '../core/execution.ts';
import { traceNow } from '../core/trace.ts';
import type { Logger } from '../telemetry/logger.ts';
import type { Metrics, WorkerSnapshot } from '../telemetry/metrics.ts';
import type { PickJob, Picker } from './picker.ts';
import { HealthProber } from './health.ts';
import { createPicker } from './policies.ts';
import { PooledWorker, type SlotLease, type WorkerInfo } from './pooled-worker.ts';
import { DiscoveredWorkers } from './discovery.ts';
import { startWorkers, type StartedWorkers } from './startup.ts';
import { RetryableFailure, TransportError, WorkerAnswerError } from './link.ts';
import type { UploadStore } from '../repository/uploads.ts';

/**
 * How long a local worker that went down may take to come back (it is being restarted) before the pool
 * calls the model unavailable instead of busy. Meanwhile batches wait in their model's queue.
 */
export const RESTART_WAIT_MS = 15_000;

export interface WorkerPoolOptions {
  readonly config: Config;
  readonly metrics: Metrics;
  readonly logger: Logger;
  /** The ONNX Runtime thread's module for thread workers, when not the standard one (tests substitute one that dies). */
  readonly threadEntry?: URL;
  /** The gateway's staged uploads (load requests with files): shared with in-process workers, sent to the others. */
  readonly uploads?: UploadStore;
}

/**
 * Runs batches on workers (the scheduler's Executor): local workers it supervises (threads of this
 * process or processes of their own) and remote worker hosts, each reached through a WorkerLink. A
 * picker chooses the worker; this class owns slots, health, ejection and the per-batch metrics. It
 * never queues a batch: tryAcquire hands out a free slot or says busy, and the drain signal tells the
 * scheduler when to ask again. A batch that a worker failed comes back as BatchNotRun for its
 * scheduler to run again.
 */
export class WorkerPool implements Executor {
  /** Every worker, in place: the health prober iterates this same array, discovery adds and removes. */
  readonly #workers: PooledWorker[];
  #discovered: DiscoveredWorkers | undefined;
  readonly #picker: Picker;
  readonly #metrics: Metrics;
  readonly #log: Logger;
  readonly #drainTimeoutMs: number;
  readonly #cleanup: () => void;
  /** Reads the worker link's token and TLS files again (rotation); throws when they cannot be read. */
  readonly rotateLink: () => void;
  readonly #listeners: (() => void)[] = [];
  readonly #health: HealthProber;
  #drainQueued = false;
  #wakeTimer: NodeJS.Timeout | undefined;
  /** performance.now() at which #wakeTimer fires. */
  #wakeAt = Infinity;
  #active = 0;
  #drained: (() => void) | undefined;
  #closing: Promise<void> | undefined;

  private constructor(opts: WorkerPoolOptions, started: StartedWorkers, log: Logger) {
    this.#workers = [...started.workers];
    this.#cleanup = started.cleanup;
    this.rotateLink = started.rotateLink;
    this.#picker = createPicker(opts.config.balancer.policy);
    this.#metrics = opts.metrics;
    this.#log = log;
    this.#drainTimeoutMs = opts.config.drainTimeoutMs;
    this.#health = new HealthProber(this.#workers, log, () => this.#drain());
    this.#health.start();
  }

  /**
   * Starts the local workers (waiting until each is ready; fails naming the one that did not start),
   * probes the remote ones (an unreachable one starts ejected and is probed until it answers).
   */
  static async create(opts: WorkerPoolOptions): Promise<WorkerPool> {
    const log = opts.logger;
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
    }, undefined, opts.threadEntry, opts.uploads);
    const pool = new WorkerPool(opts, started, log);
    ref.pool = pool;
    // Local workers are up (start waited for them); remote ones get their first probe now.
    for (const w of pool.#workers) if (w.local) w.markUp();
    await Promise.all(pool.#workers.map((w) => pool.#health.probe(w)));
    if (opts.config.workers.discovery !== '') {
      pool.#discovered = new DiscoveredWorkers({
        config: opts.config, workers: pool.#workers, make: started.remote, probe: (w) => pool.#health.probe(w),
        changed: () => pool.#drain(), closing: () => pool.#closing !== undefined, logger: log,
      });
      // The first answer is awaited, and its workers probed, so a gateway serves from its first request.
      await pool.#discovered.start();
    }
    return pool;
  }

  tryAcquire(job: PickJob): Acquired {
    if (this.#closing) return { kind: 'unavailable', error: ShuttingDown() };
    const now = performance.now();
    const views = this.#workers.map((w) => w.view(job, now));
    const picked = this.#picker.pick(views, job);
    if (picked !== undefined) {
      const worker = this.#workers[views.indexOf(picked)];
      // A picker must return one of the views it was given, healthy and with a slot; trust but verify.
      if (worker?.canTake) return { kind: 'slot', slot: this.#slot(worker, worker.reserve(job.rows, now)) };
      this.#log.error({ policy: this.#picker.name, picked: picked.id }, 'balancer policy picked a worker that cannot take a batch');
    }
    if (this.#workers.some((w) => w.healthy)) return BUSY;
    // A local worker that just went down is being restarted: its batches wait in the queue for it.
    const restarting = this.#workers.filter((w) => w.local && w.downFor(now) < RESTART_WAIT_MS);
    if (restarting.length > 0) {
      this.#wakeIn(Math.min(...restarting.map((w) => RESTART_WAIT_MS - w.downFor(now))));
      return BUSY;
    }
    return { kind: 'unavailable', error: NoWorkerAvailable(job.model, this.#downSummary()) };
  }

  onDrain(listener: () => void): void {
    this.#listeners.push(listener);
  }

  costOf(model: string, version: string): BatchCost | undefined {
    const now = performance.now();
    let perRow = 0;
    let perBatch = 0;
    let measured = 0;
    let workers = 0;
    for (const w of this.#workers) {
      if (!w.healthy) continue;
      workers++;
      const c = w.costOf(model, version, now);
      if (!c) continue;
      measured++;
      perRow += c.perRow;
      perBatch += c.perBatch;
    }
    if (measured === 0) return undefined;
    return { perRowMs: (perRow / measured) * 1000, perBatchMs: (perBatch / measured) * 1000, workers };
  }

  async load(model: string, version: string, source?: string): Promise<void> {
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
        const r = await w.client.load({ model, version, source });
        w.markHot(model, version);
        for (const evicted of r.evicted ?? []) this.#metrics.modelEvictions.inc({ model: evicted });
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

  async unload(model: string, version: string, source?: string): Promise<void> {
    await Promise.all(this.#workers.map(async (w) => {
      w.markCold(model, version);
      if (!w.healthy) return; // a worker that is down is probed again before use and reports its models
      try {
        await w.client.unload({ model, version, source });
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
    if (!this.#closing) {
      this.#closing = this.#shutdown();
      this.#drain();
    }
    return this.#closing;
  }

  async #shutdown(): Promise<void> {
    this.#discovered?.stop();
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
    if (this.#wakeTimer) clearTimeout(this.#wakeTimer);
    await Promise.all(this.#workers.map(async (w) => w.local?.stop()));
    await Promise.all(this.#workers.map((w) => w.client.close()));
    this.#cleanup();
  }

  /** A reserved slot as the scheduler sees it: run() once, or release() unused. */
  #slot(worker: PooledWorker, lease: SlotLease): BatchSlot {
    let used = false;
    // Counted from the reservation: close() waits for every slot handed out, run or given back.
    this.#active++;
    const settled = (): void => {
      this.#active--;
      if (this.#active === 0) this.#drained?.();
    };
    return {
      worker: worker.id,
      run: (job) => {
        if (used) return Promise.reject(new Error(`slot on ${worker.id} used twice`));
        used = true;
        return this.#attempt(job, lease).finally(settled);
      },
      release: () => {
        if (used) return;
        used = true;
        worker.release(lease, performance.now(), undefined);
        settled();
        this.#discovered?.reap(worker);
        this.#drain();
      },
    };
  }

  /** Sends the batch on a reserved slot; converts every failure into BatchNotRun or the error to report. */
  async #attempt(job: BatchJob, lease: SlotLease): Promise<BatchResult> {
    const w = lease.worker;
    const sentNs = traceNow();
    try {
      const r = await w.client.infer(job, lease.cancel.signal);
      // A miss includes the model load: measuring it would make the worker look slow for many batches.
      const now = performance.now();
      w.release(lease, now, { model: job.model, version: job.version, measure: r.cacheHit });
      if (r.heldBatches !== undefined) w.noteHeld(r.heldBatches, now);
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
      for (const evicted of r.evicted ?? []) m.modelEvictions.inc({ model: evicted });
      const { stamps, ...rest } = r;
      return stamps ? { ...rest, worker: w.id, timestamps: {
        workerSendNs: sentNs, workerRecvNs: stamps.recvNs, computeInputEndNs: stamps.ortStartNs,
        computeOutputStartNs: stamps.ortEndNs, workerReplyNs: stamps.replyNs,
      } } : { ...rest, worker: w.id };
    } catch (e) {
      w.release(lease, performance.now(), undefined);
      const failure = this.#classify(w, e, job.model);
      throw failure instanceof RetryableFailure ? new BatchNotRun(failure.worker, failure.message, { cause: e, busy: failure.busy }) : failure;
    } finally {
      this.#discovered?.reap(w);
      this.#drain();
    }
  }

  /**
   * Failures that leave the batch unanswered for reasons of the worker (transport, UNAVAILABLE) eject
   * the worker and come back as RetryableFailure; a worker's verdict on the batch or the model itself
   * (bad input, failed load, inference error) is returned as the SluiceError to report, not retried.
   */
  #classify(w: PooledWorker, e: unknown, model: string): RetryableFailure | SluiceError {
    if (e instanceof WorkerAnswerError && e.error.code === WorkerBusy.code) {
      // A host shared with other gateways is full: not a failure of the worker (no ejection) nor of the
      // batch (no retry used); pass it over for a moment, and look again when that moment ends.
      const now = performance.now();
      this.#wakeIn(w.markFull(now) - now);
      this.#metrics.workerBusy.inc({ worker: w.id });
      return new RetryableFailure(w.id, e.error.message, true);
    }
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

  #downSummary(): string {
    return `every worker is down (${summarize(this.#workers)})`;
  }

  /** Tells the schedulers a slot may have freed. Deferred and coalesced: never re-enters a caller. */
  #drain(): void {
    if (this.#drainQueued || this.#listeners.length === 0) return;
    this.#drainQueued = true;
    queueMicrotask(() => {
      this.#drainQueued = false;
      // Also while closing: a scheduler waiting for a slot must hear that none will come.
      for (const listener of this.#listeners) {
        try {
          listener();
        } catch (e) {
          this.#log.error({ err: e }, 'drain listener threw');
        }
      }
    });
  }

  /**
   * Wakes the schedulers in `ms`: when the wait for a restarting worker runs out (they then see it
   * unavailable), or when a worker that said busy may be tried again. One timer, at the earliest time asked.
   */
  #wakeIn(ms: number): void {
    const at = performance.now() + Math.max(1, ms);
    if (this.#wakeTimer && this.#wakeAt <= at) return;
    if (this.#wakeTimer) clearTimeout(this.#wakeTimer);
    this.#wakeAt = at;
    this.#wakeTimer = setTimeout(() => {
      this.#wakeTimer = undefined;
      this.#wakeAt = Infinity;
      this.#drain();
    }, Math.max(1, Math.ceil(ms)));
    this.#wakeTimer.unref();
  }

  #eject(w: PooledWorker, reason: string): void {
    if (w.healthy) this.#log.warn({ worker: w.id, reason }, `ejecting worker ${w.id}: ${reason}`);
    w.markDown(reason);
    // Queued batches that only this worker could have served must hear that it is gone.
    this.#drain();
  }

  #workerReady(w: PooledWorker): void {
    w.forgetModels();
    if (this.#closing) return;
    if (w.markUp()) this.#log.info({ worker: w.id }, `worker ${w.id} is up`);
    this.#drain();
    void this.#health.probe(w);
  }

  #workerExited(w: PooledWorker, reason: string): void {
    w.forgetModels();
    this.#eject(w, `process ${reason}; respawning`);
  }
}

const BUSY: Acquired = { kind: 'busy' };

function summarize(workers: readonly PooledWorker[]): string {
  return workers.map((w) => `${w.id}: ${w.healthy ? 'up' : w.downReason}`).join('; ');
}
