import { performance } from 'node:perf_hooks';
import { QueueFull, RequestCancelled, RequestMemoryFull, RequestTimeout, toSluiceError } from '../core/errors.ts';
import type { BatchJob, BatchResult, Executor } from '../core/execution.ts';
import type { InferRequest, InferResponse } from '../core/inference.ts';
import type { ModelConfig } from '../core/model.ts';
import type { Tensor } from '../core/tensor.ts';
import type { Metrics } from '../telemetry/metrics.ts';
import type { Logger } from '../telemetry/logger.ts';
import { requestBytes, type RequestMemory } from './memory.ts';
import { batchLimitsOf, levelCount, maxQueueSizeOf, queuePolicyOf, timeoutUsOf } from './policy.ts';
import { RequestQueue, type QueueNode } from './queue.ts';
import type { RequestPlan, Scheduler } from './scheduler.ts';
import { selectBatch, type BatchLimits, type Candidate } from './select.ts';
import { nsBetween, type ModelStatsRecorder } from './stats.ts';
import { concatInputs, paddedSize, pickOutputs, splitOutputs, type BatchMember } from './tensors.ts';

/** What one model version's batcher is built from. */
export interface BatcherOptions {
  readonly model: string;
  /** The concrete version its batches run as. */
  readonly version: string;
  readonly config: ModelConfig;
  readonly executor: Executor;
  readonly metrics: Metrics;
  readonly stats: ModelStatsRecorder;
  readonly logger: Logger;
  /** The gateway-wide bound on bytes held by accepted requests (none: unbounded, as in unit tests). */
  readonly memory?: RequestMemory;
}

interface Pending extends QueueNode, Candidate {
  readonly request: InferRequest;
  readonly plan: RequestPlan;
  deadlineMs: number;
  readonly timeoutUs: number;
  /** Triton's timeout_action DELAY: past its deadline the request moves behind every other, not out. */
  readonly delayOnTimeout: boolean;
  readonly resolve: (response: InferResponse) => void;
  readonly reject: (error: Error) => void;
  abort: (() => void) | undefined;
}

type ShedReason = 'queue_full' | 'timeout' | 'cancelled';

/**
 * The queue and dynamic batcher of one model version. Batches form only when the executor has a free
 * slot (on enqueue, on capacity, or when a queue delay ends), so an idle worker never waits on a timer
 * unless the model asks for a max queue delay; under load batches grow because slots are full. One
 * unref'd timer per queue tracks the earliest deadline, and one the queue delay.
 */
export class DynamicBatcher implements Scheduler {
  readonly #o: BatcherOptions;
  readonly #limits: BatchLimits;
  readonly #allowed: readonly number[];
  readonly #levels: number;
  readonly #queue: RequestQueue<Pending>;
  #inflight = 0;
  #closedError: Error | undefined;
  #dispatching = false;
  #repump = false;
  #deadlineAt = Infinity;
  #deadlineTimer: NodeJS.Timeout | undefined;
  #delayAt = Infinity;
  #delayTimer: NodeJS.Timeout | undefined;
  #idleWaiters: (() => void)[] = [];

  constructor(options: BatcherOptions) {
    this.#o = options;
    this.#limits = batchLimitsOf(options.config);
    this.#allowed = options.config.dynamicBatching.allowedBatchSizes;
    this.#levels = levelCount(options.config);
    // One list per level, plus a last one for requests past a DELAY deadline.
    this.#queue = new RequestQueue<Pending>(this.#levels + 1);
  }

  depth(): number {
    return this.#queue.size;
  }

  inflight(): number {
    return this.#inflight;
  }

  enqueue(request: InferRequest, plan: RequestPlan): Promise<InferResponse> {
    const { model } = this.#o;
    if (this.#closedError) return Promise.reject(this.#closedError);
    const now = performance.now();
    const policy = queuePolicyOf(this.#o.config, plan.level);
    if (request.signal?.aborted) return this.#refuse(request, 'cancelled', RequestCancelled(model), now);
    const timeoutUs = timeoutUsOf(policy, request.timeoutUs);
    const delayOnTimeout = policy.timeoutAction === 'DELAY';
    let deadlineMs = timeoutUs > 0 ? request.arrivalMs + timeoutUs / 1000 : Infinity;
    let list = plan.level - 1;
    if (deadlineMs <= now) {
      if (!delayOnTimeout) return this.#refuse(request, 'timeout', RequestTimeout(model, timeoutUs), now);
      list = this.#levels;
      deadlineMs = Infinity;
    }
    const max = maxQueueSizeOf(policy);
    if (this.#queue.sizeOf(list) >= max) {
      return this.#refuse(request, 'queue_full', QueueFull(model, max), now);
    }
    const { memory } = this.#o;
    let release: (() => void) | undefined;
    if (memory) {
      const bytes = requestBytes(request);
      release = memory.reserve(bytes);
      if (!release) return this.#refuse(request, 'queue_full', RequestMemoryFull(model, bytes, memory.heldBytes, memory.limitBytes), now);
    }
    return new Promise<InferResponse>((resolve, reject) => {
      // Held from here until the request is answered, whichever way (result, error, expiry, cancel).
      const done = release;
      const p: Pending = {
        list: -1, prev: undefined, next: undefined,
        request, plan, rows: plan.rows, shapeKey: plan.shapeKey, arrivalMs: request.arrivalMs,
        deadlineMs, timeoutUs, delayOnTimeout,
        resolve: done ? (r) => { done(); resolve(r); } : resolve,
        reject: done ? (e) => { done(); reject(e); } : reject,
        abort: undefined,
      };
      if (request.signal) {
        p.abort = () => this.#cancel(p);
        request.signal.addEventListener('abort', p.abort, { once: true });
      }
      this.#queue.push(list, p);
      if (deadlineMs !== Infinity) this.#armDeadline(deadlineMs, now);
      this.#pump();
    });
  }

  dispatchOne(): boolean {
    if (this.#dispatching) {
      // The executor called back into us from inside execute(): finish this dispatch first.
      this.#repump = true;
      return false;
    }
    const { executor, model, version } = this.#o;
    if (this.#closedError || this.#queue.size === 0 || !executor.hasCapacity(model, version)) return false;
    const now = performance.now();
    if (now >= this.#deadlineAt) this.#expire(now);
    const selection = selectBatch(this.#queue, this.#limits, now);
    if (selection.kind === 'empty') return false;
    if (selection.kind === 'wait') {
      this.#armDelay(selection.untilMs, now);
      return false;
    }
    this.#dispatching = true;
    try {
      this.#dispatch(selection.items, selection.rows, now);
    } finally {
      this.#dispatching = false;
    }
    if (this.#repump) {
      this.#repump = false;
      queueMicrotask(() => this.#pump());
    }
    return true;
  }

  drain(): Promise<void> {
    if (this.#isIdle()) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  close(error: Error): void {
    this.#closedError = error;
    this.#clearTimers();
    const now = performance.now();
    for (const p of [...this.#queue]) {
      this.#unqueue(p);
      this.#o.stats.fail(nsBetween(p.arrivalMs, now));
      p.reject(error);
    }
    this.#checkIdle();
  }

  #pump(): void {
    while (this.dispatchOne()) {
      // Each dispatch takes at least one request off the queue, so this ends.
    }
  }

  #refuse(request: InferRequest, reason: ShedReason, error: Error, now: number): Promise<never> {
    this.#o.metrics.requestsShed.inc({ model: this.#o.model, reason });
    this.#o.stats.fail(nsBetween(request.arrivalMs, now));
    return Promise.reject(error);
  }

  #shed(p: Pending, reason: ShedReason, error: Error, now: number): void {
    this.#unqueue(p);
    this.#o.metrics.requestsShed.inc({ model: this.#o.model, reason });
    this.#o.stats.fail(nsBetween(p.arrivalMs, now));
    p.reject(error);
  }

  #unqueue(p: Pending): void {
    this.#queue.remove(p);
    if (p.abort) {
      p.request.signal?.removeEventListener('abort', p.abort);
      p.abort = undefined;
    }
  }

  #cancel(p: Pending): void {
    if (p.list === -1) return; // already dispatched: the result is dropped by the front door
    this.#shed(p, 'cancelled', RequestCancelled(this.#o.model), performance.now());
    this.#checkIdle();
  }

  #dispatch(items: readonly Pending[], rows: number, now: number): void {
    const { model, version, config, metrics, stats, executor } = this.#o;
    for (const p of items) {
      this.#unqueue(p);
      const ns = nsBetween(p.arrivalMs, now);
      metrics.queueDuration.observe({ model }, ns / 1e9);
      stats.queued(ns);
    }
    const padded = this.#limits.batching ? paddedSize(rows, this.#allowed) : rows;
    const members: BatchMember[] = items.map((p) => ({ inputs: p.request.inputs, rows: p.plan.rows, outputs: p.plan.outputs }));
    let running: Promise<BatchResult>;
    try {
      const wanted = new Set<string>();
      for (const p of items) for (const name of p.plan.outputs) wanted.add(name);
      const all = items.some((p) => p.plan.allOutputs);
      const outputs = config.outputs.map((o) => o.name).filter((name) => all || wanted.has(name));
      const job: BatchJob = { model, version, rows: padded, requestRows: rows, inputs: concatInputs(members, padded), outputs };
      running = executor.execute(job);
    } catch (e) {
      running = Promise.reject(e instanceof Error ? e : new Error(String(e)));
    }
    this.#inflight += items.length;
    running
      .then(
        (result) => this.#complete(items, members, rows, padded, result),
        (e: unknown) => this.#fail(items, e),
      )
      .finally(() => {
        this.#inflight -= items.length;
        this.#checkIdle();
      })
      .catch((e: unknown) => this.#o.logger.error({ err: e, model }, 'settling a batch failed'));
  }

  #complete(items: readonly Pending[], members: readonly BatchMember[], rows: number, padded: number, result: BatchResult): void {
    const { model, version, stats } = this.#o;
    let shares: Tensor[][];
    try {
      shares = this.#limits.batching ? splitOutputs(model, result.outputs, members, padded) : [pickOutputs(model, result.outputs, items[0]!.plan.outputs)];
    } catch (e) {
      this.#fail(items, e);
      return;
    }
    // Per-batch Prometheus metrics (batches, rows, batch size, compute) belong to the executor, which
    // sees every batch it runs; the scheduler records what only it knows: queueing, shedding, stats.
    stats.executed(rows, padded, items.length, result);
    const end = performance.now();
    items.forEach((p, i) => {
      stats.success(nsBetween(p.arrivalMs, end));
      p.resolve({ id: p.request.id, model: p.request.model, version, outputs: shares[i]!, worker: result.worker, batchRows: rows });
    });
  }

  #fail(items: readonly Pending[], e: unknown): void {
    const error = toSluiceError(e);
    this.#o.logger.warn({ model: this.#o.model, version: this.#o.version, code: error.code, requests: items.length }, `batch failed: ${error.message}`);
    const end = performance.now();
    for (const p of items) {
      this.#o.stats.fail(nsBetween(p.arrivalMs, end));
      p.reject(error);
    }
  }

  /** Rejects (or, under DELAY, demotes) every request past its deadline, then re-arms for the next one. */
  #expire(now: number): void {
    this.#clearDeadline();
    const expired: Pending[] = [];
    let next = Infinity;
    for (const p of this.#queue) {
      if (p.deadlineMs <= now) expired.push(p);
      else if (p.deadlineMs < next) next = p.deadlineMs;
    }
    for (const p of expired) {
      if (p.delayOnTimeout) {
        this.#queue.remove(p);
        p.deadlineMs = Infinity;
        this.#queue.push(this.#levels, p);
      } else {
        this.#shed(p, 'timeout', RequestTimeout(this.#o.model, p.timeoutUs), now);
      }
    }
    if (next !== Infinity) this.#armDeadline(next, now);
    if (expired.length > 0) this.#checkIdle();
  }

  #armDeadline(at: number, now: number): void {
    if (at >= this.#deadlineAt) return;
    this.#clearDeadline();
    this.#deadlineAt = at;
    this.#deadlineTimer = setTimeout(() => {
      this.#deadlineTimer = undefined;
      this.#expire(performance.now());
    }, Math.max(0, Math.ceil(at - now)));
    this.#deadlineTimer.unref();
  }

  #armDelay(at: number, now: number): void {
    if (at >= this.#delayAt) return;
    if (this.#delayTimer) clearTimeout(this.#delayTimer);
    this.#delayAt = at;
    this.#delayTimer = setTimeout(() => {
      this.#delayTimer = undefined;
      this.#delayAt = Infinity;
      this.#pump();
    }, Math.max(0, Math.ceil(at - now)));
    this.#delayTimer.unref();
  }

  #clearDeadline(): void {
    if (this.#deadlineTimer) clearTimeout(this.#deadlineTimer);
    this.#deadlineTimer = undefined;
    this.#deadlineAt = Infinity;
  }

  #clearTimers(): void {
    this.#clearDeadline();
    if (this.#delayTimer) clearTimeout(this.#delayTimer);
    this.#delayTimer = undefined;
    this.#delayAt = Infinity;
  }

  #isIdle(): boolean {
    return this.#queue.size === 0 && this.#inflight === 0;
  }

  #checkIdle(): void {
    if (!this.#isIdle() || this.#idleWaiters.length === 0) return;
    const waiters = this.#idleWaiters;
    this.#idleWaiters = [];
    for (const w of waiters) w();
  }
}
