import { performance } from 'node:perf_hooks';
import { RequestCancelled, RequestMemoryFull, RequestTimeout, WorkerFailed, toSluiceError, type SluiceError } from '../core/errors.ts';
import { BatchNotRun, type BatchJob, type BatchResult, type BatchSlot, type Executor } from '../core/execution.ts';
import type { InferRequest, InferResponse } from '../core/inference.ts';
import type { ModelConfig, QueuePolicy } from '../core/model.ts';
import type { Tensor } from '../core/tensor.ts';
import type { Metrics } from '../telemetry/metrics.ts';
import { LogBudget } from '../telemetry/log-budget.ts';
import type { Logger } from '../telemetry/logger.ts';
import { requestBytes, type RequestMemory } from './memory.ts';
import { batchLimitsOf, defaultLevel, levelCount, overloadOf, queuePolicyOf, timeoutUsOf, type Overload } from './policy.ts';
import type { Pending, ShedReason } from './pending.ts';
import { RequestQueue } from './queue.ts';
import type { DispatchResult, RequestPlan, Scheduler } from './scheduler.ts';
import { selectBatch, type BatchLimits } from './select.ts';
import { Alarm } from './alarm.ts';
import { bisect, isDataFailure } from './bisect.ts';
import { nsBetween, type ModelStatsRecorder } from './stats.ts';
import { concatInputs, paddedSize, passesThrough, pickOutputs, splitOutputs, type BatchMember } from './tensors.ts';

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
  /** Called when the queue holds work but the executor had no free slot: the service's ready list. */
  readonly onBlocked?: (batcher: DynamicBatcher) => void;
  /** Tenants' weights for fair queuing (queue.ts); absent, every request waits in one flow. */
  readonly weightOf?: (tenant: string) => number;
}

/**
 * The queue and dynamic batcher of one model version: the only place a request waits. Batches form
 * only when the executor has a free slot (on enqueue, on the executor's drain signal, or when a queue
 * delay ends), so an idle worker never waits on a timer unless the model asks for a max queue delay;
 * under load batches grow because slots are full. A batch its worker failed goes back to the head of
 * the queue once; one ONNX Runtime failed is bisected (bisect.ts). Two alarms per queue (alarm.ts)
 * track the earliest deadline and the end of the queue delay.
 *
 * Bytes: a request's inputs belong to its front door and are only read here; a batch's inputs are
 * written once (concatInputs) and belong to the executor's slot from run() on.
 */
export class DynamicBatcher implements Scheduler {
  readonly #o: BatcherOptions;
  readonly #limits: BatchLimits;
  readonly #allowed: readonly number[];
  readonly #levels: number;
  readonly #queue: RequestQueue<Pending>;
  #inflight = 0;
  /** Numbers the isolated shape keys of bisected batches (bisect.ts). */
  #bisections = 0;
  /** A client can fail batches in a loop: their log lines are budgeted per error code. */
  readonly #logBudget = new LogBudget();
  #closedError: Error | undefined;
  readonly #deadline = new Alarm(() => this.#expire(performance.now()));
  readonly #delay = new Alarm(() => this.#pump());
  #idleWaiters: (() => void)[] = [];

  constructor(options: BatcherOptions) {
    this.#o = options;
    this.#limits = batchLimitsOf(options.config);
    this.#allowed = options.config.dynamicBatching.allowedBatchSizes;
    this.#levels = levelCount(options.config);
    // One list per level, plus a last one for requests past a DELAY deadline.
    this.#queue = new RequestQueue<Pending>(this.#levels + 1, options.weightOf);
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
    const flow = this.#o.weightOf ? request.tenant ?? '' : '';
    const overloaded = this.#overloaded(policy, list, flow, plan.rows);
    if (overloaded) return this.#refuse(request, overloaded.reason, overloaded.error, now);
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
        // charged starts false so the object keeps one shape when the queue sets it (no hidden-class change on the hot path).
        list: -1, prev: undefined, next: undefined, home: list, charged: false,
        request, plan, rows: plan.rows, flow, shapeKey: plan.shapeKey, arrivalMs: request.arrivalMs,
        deadlineMs, timeoutUs, delayOnTimeout,
        resolve: done ? (r) => { done(); resolve(r); } : resolve,
        reject: done ? (e) => { done(); reject(e); } : reject,
        abort: undefined,
        firstFailure: undefined,
      };
      if (request.signal) {
        p.abort = () => this.#cancel(p);
        request.signal.addEventListener('abort', p.abort, { once: true });
      }
      this.#queue.push(list, p);
      request.trace?.mark('QUEUE_START');
      if (deadlineMs !== Infinity) this.#deadline.arm(deadlineMs, now);
      this.#pump();
    });
  }

  dispatchOne(): DispatchResult {
    const { executor, model, version } = this.#o;
    if (this.#closedError || this.#queue.size === 0) return 'idle';
    const now = performance.now();
    if (now >= this.#deadline.at) this.#expire(now);
    const selection = selectBatch(this.#queue, this.#limits, now);
    if (selection.kind === 'empty') return 'idle';
    if (selection.kind === 'wait') {
      this.#delay.arm(selection.untilMs, now);
      return 'idle';
    }
    const padded = this.#limits.batching ? paddedSize(selection.rows, this.#allowed) : selection.rows;
    const got = executor.tryAcquire({ model, version, rows: padded });
    if (got.kind === 'busy') return 'busy';
    if (got.kind === 'unavailable') {
      for (const p of selection.items) this.#unqueue(p);
      this.#fail(selection.items, got.error);
      this.#checkIdle();
      return 'sent';
    }
    this.#dispatch(selection.items, selection.rows, padded, got.slot, now);
    return 'sent';
  }

  drain(): Promise<void> {
    if (this.#isIdle()) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  close(error: Error): void {
    this.#closedError = error;
    this.#deadline.clear();
    this.#delay.clear();
    const now = performance.now();
    for (const p of [...this.#queue.all()]) {
      this.#unqueue(p);
      this.#o.stats.fail(nsBetween(p.arrivalMs, now));
      p.reject(error);
    }
    this.#checkIdle();
  }

  /** Sends what the executor has room for; when it has none, joins the ready list for the drain signal. */
  #pump(): void {
    let r: DispatchResult;
    // Each dispatch takes at least one request off the queue, so this ends.
    while ((r = this.dispatchOne()) === 'sent');
    if (r === 'busy') this.#o.onBlocked?.(this);
  }

  /**
   * Whether a request of the default priority arriving now would be shed (queue full, or a wait past the
   * budget), for a front door to refuse it from its headers before decoding a body. A refusal is counted
   * as enqueue's; undefined admits nothing by itself (enqueue still checks in full).
   */
  refuseOnArrival(arrivalMs: number, tenant = ''): SluiceError | undefined {
    if (this.#closedError) return undefined;
    const level = defaultLevel(this.#o.config);
    const overloaded = this.#overloaded(queuePolicyOf(this.#o.config, level), level - 1, this.#o.weightOf ? tenant : '', 1);
    if (!overloaded) return undefined;
    this.#countShed(overloaded.reason, arrivalMs, performance.now());
    return overloaded.error;
  }

  /** overloadOf (policy.ts) for this model's queue, as it stands for a request of `flow`. */
  #overloaded(policy: QueuePolicy, list: number, flow: string, rows: number): Overload | undefined {
    const { model, version, executor } = this.#o;
    return overloadOf(this.#queue, { model, policy, list, flow, rows, cost: () => executor.costOf(model, version), maxRows: this.#limits.maxRows });
  }

  #refuse(request: InferRequest, reason: ShedReason, error: Error, now: number): Promise<never> {
    this.#countShed(reason, request.arrivalMs, now);
    return Promise.reject(error);
  }

  #shed(p: Pending, reason: ShedReason, error: Error, now: number): void {
    this.#unqueue(p);
    this.#countShed(reason, p.arrivalMs, now);
    p.reject(error);
  }

  #countShed(reason: ShedReason, arrivalMs: number, now: number): void {
    this.#o.metrics.requestsShed.inc({ model: this.#o.model, reason });
    this.#o.stats.fail(nsBetween(arrivalMs, now));
  }

  /** Takes the request off the queue: `served` when it leaves for a batch (fair queuing charges its tenant). */
  #unqueue(p: Pending, served = false): void {
    if (served) this.#queue.take(p);
    else this.#queue.remove(p);
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

  #dispatch(items: readonly Pending[], rows: number, padded: number, slot: BatchSlot, now: number): void {
    const { model, version, config, metrics, stats } = this.#o;
    for (const p of items) {
      this.#unqueue(p, true);
      const ns = nsBetween(p.arrivalMs, now);
      metrics.queueDuration.observe({ model }, ns / 1e9);
      stats.queued(ns);
    }
    const members: BatchMember[] = items.map((p) => ({ inputs: p.request.inputs, rows: p.plan.rows, outputs: p.plan.outputs }));
    let running: Promise<BatchResult>;
    try {
      const wanted = new Set<string>();
      for (const p of items) for (const name of p.plan.outputs) wanted.add(name);
      const all = items.some((p) => p.plan.allOutputs);
      const outputs = config.outputs.map((o) => o.name).filter((name) => all || wanted.has(name));
      const inputs = concatInputs(members, padded);
      const job: BatchJob = { model, version, rows: padded, requestRows: rows, inputs, inputsOwned: !passesThrough(items.length, rows, padded), outputs };
      for (const p of items) p.request.trace?.mark('COMPUTE_START');
      running = slot.run(job);
    } catch (e) {
      slot.release();
      running = Promise.reject(e instanceof Error ? e : new Error(String(e)));
    }
    this.#inflight += items.length;
    running
      .then(
        (result) => this.#complete(items, members, rows, padded, result),
        (e: unknown) => this.#failed(items, e),
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
      const trace = p.request.trace;
      if (trace) {
        if (result.timestamps) trace.markBatch(result.timestamps);
        trace.mark('COMPUTE_END');
      }
      stats.success(nsBetween(p.arrivalMs, end));
      p.resolve({ id: p.request.id, model: p.request.model, version, outputs: shares[i]!, worker: result.worker, batchRows: rows });
    });
  }

  /**
   * A batch its worker failed (BatchNotRun) goes back to the head of the queue, in its order, for the
   * next free slot; a request whose batch had failed once already fails now. Other errors are the
   * batch's own: every request in it gets them.
   */
  #failed(items: readonly Pending[], e: unknown): void {
    if (!(e instanceof BatchNotRun) || this.#closedError) {
      const error = toSluiceError(e);
      if (this.#closedError || !isDataFailure(error)) this.#fail(items, error);
      else this.#investigate(items, error);
      return;
    }
    const { model, metrics, logger } = this.#o;
    if (e.busy) {
      // The worker never took it (full with other gateways' batches): back to the head, retry kept.
      const gone = items.filter((p) => p.request.signal?.aborted);
      if (gone.length > 0) this.#fail(gone, RequestCancelled(model));
      this.#requeueAtHead(items.filter((p) => !gone.includes(p)));
      return;
    }
    const again = items.filter((p) => p.firstFailure === undefined && !p.request.signal?.aborted);
    const give = items.filter((p) => !again.includes(p));
    const first = give[0]?.firstFailure;
    if (give.length > 0) this.#fail(give, first === undefined ? e : WorkerFailed(e.worker, `${e.message} (the batch had first failed on ${first})`));
    if (again.length === 0) return;
    metrics.batchRetries.inc({ model });
    logger.warn({ worker: e.worker, model, requests: again.length }, `batch failed on ${e.worker} (${e.message}); its requests go back to the head of the queue`);
    for (const p of again) p.firstFailure = `${e.worker}: ${e.message}`;
    this.#requeueAtHead(again);
  }

  /** Puts requests back at the head of their lists, in their order, and sends what a slot allows. */
  #requeueAtHead(items: readonly Pending[]): void {
    for (let i = items.length - 1; i >= 0; i--) {
      const p = items[i]!;
      this.#queue.unshift(p.home, p);
      if (p.request.signal && p.abort === undefined) {
        p.abort = () => this.#cancel(p);
        p.request.signal.addEventListener('abort', p.abort, { once: true });
      }
    }
    this.#pump();
  }

  /**
   * ONNX Runtime failed the batch (see bisect.ts): several requests are split in two halves, each run
   * apart; one that failed on its own is the culprit, answered when its batch-mates are.
   */
  #investigate(items: readonly Pending[], error: SluiceError): void {
    const live = items.filter((p) => !p.request.signal?.aborted);
    if (live.length < items.length) this.#fail(items.filter((p) => !live.includes(p)), error);
    const culprit = live.length === 1 ? live[0]!.investigation : undefined;
    if (culprit) {
      this.#o.stats.fail(nsBetween(live[0]!.arrivalMs, performance.now()));
      culprit.inv.culprit(culprit.reject, error);
    } else if (live.length < 2) this.#fail(live, error);
    if (live.length < 2) return;
    const { model, logger } = this.#o;
    this.#logBudget.warn(logger, 'bisect', { model, requests: live.length, code: error.code }, `a batch of ${live.length} requests failed in ONNX Runtime (${error.message}); its halves run apart to find the requests at fault`);
    this.#bisections = bisect(live, model, this.#bisections);
    this.#requeueAtHead(live);
  }

  #fail(items: readonly Pending[], e: unknown): void {
    const error = toSluiceError(e);
    this.#logBudget.warn(this.#o.logger, error.code, { model: this.#o.model, version: this.#o.version, code: error.code, requests: items.length }, `batch failed: ${error.message}`);
    const end = performance.now();
    for (const p of items) {
      this.#o.stats.fail(nsBetween(p.arrivalMs, end));
      p.reject(error);
    }
  }

  /** Rejects (or, under DELAY, demotes) every request past its deadline, then re-arms for the next one. */
  #expire(now: number): void {
    this.#deadline.clear();
    const expired: Pending[] = [];
    let next = Infinity;
    for (const p of this.#queue.all()) {
      if (p.deadlineMs <= now) expired.push(p);
      else if (p.deadlineMs < next) next = p.deadlineMs;
    }
    for (const p of expired) {
      if (p.delayOnTimeout) {
        this.#queue.remove(p);
        p.deadlineMs = Infinity;
        p.home = this.#levels;
        this.#queue.push(this.#levels, p);
      } else {
        this.#shed(p, 'timeout', RequestTimeout(this.#o.model, p.timeoutUs), now);
      }
    }
    if (next !== Infinity) this.#deadline.arm(next, now);
    if (expired.length > 0) this.#checkIdle();
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

