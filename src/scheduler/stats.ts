import type { DurationStat, ModelStats } from '../core/model.ts';

interface MutableDuration {
  count: number;
  ns: number;
}

interface BatchBucket {
  readonly computeInput: MutableDuration;
  readonly computeInfer: MutableDuration;
  readonly computeOutput: MutableDuration;
}

function zero(): MutableDuration {
  return { count: 0, ns: 0 };
}

function frozen(d: MutableDuration): DurationStat {
  return { count: d.count, ns: d.ns };
}

/** Nanoseconds between two performance.now() readings, as an integer. */
export function nsBetween(fromMs: number, toMs: number): number {
  return Math.max(0, Math.round((toMs - fromMs) * 1e6));
}

/** Compute durations of one executed batch, from the worker's BatchResult. */
export interface BatchTiming {
  readonly computeInputNs: number;
  readonly computeInferNs: number;
  readonly computeOutputNs: number;
}

/**
 * Triton's statistics extension for one model version. Request-level durations (success, fail, queue,
 * compute_*) count requests, each charged its batch's compute time, as Triton does; batch_stats count
 * batches per batch size. Read as snapshots at request time, never shared mutable state.
 */
export class ModelStatsRecorder {
  readonly #name: string;
  readonly #version: string;
  #lastInference = 0;
  #inferenceCount = 0;
  #executionCount = 0;
  readonly #success = zero();
  readonly #fail = zero();
  readonly #queue = zero();
  readonly #computeInput = zero();
  readonly #computeInfer = zero();
  readonly #computeOutput = zero();
  readonly #cacheHit = zero();
  readonly #cacheMiss = zero();
  readonly #batches = new Map<number, BatchBucket>();

  constructor(name: string, version: string) {
    this.#name = name;
    this.#version = version;
  }

  /** A request finished successfully, `ns` after its arrival. */
  success(ns: number): void {
    this.#success.count++;
    this.#success.ns += ns;
  }

  /** A request failed (rejected, shed, or its batch failed), `ns` after its arrival. */
  fail(ns: number): void {
    this.#fail.count++;
    this.#fail.ns += ns;
  }

  /** A request left the queue for a batch after waiting `ns`. */
  queued(ns: number): void {
    this.#queue.count++;
    this.#queue.ns += ns;
  }

  /**
   * A request was answered from the response cache after a lookup and extraction of `ns`. As in
   * Triton, it counts as an inference (last_inference) but not in inference_count or execution_count;
   * the caller records its success and queue time.
   */
  cacheHit(ns: number): void {
    this.#lastInference = Date.now();
    this.#cacheHit.count++;
    this.#cacheHit.ns += ns;
  }

  /** A response-cache lookup missed after `ns`; cacheInserted adds the time to store the answer. */
  cacheMiss(ns: number): void {
    this.#cacheMiss.count++;
    this.#cacheMiss.ns += ns;
  }

  /** The answer of a request whose lookup missed was stored in the cache, taking `ns`. */
  cacheInserted(ns: number): void {
    this.#cacheMiss.ns += ns;
  }

  /**
   * A batch holding `requests` requests with `rows` real rows ran successfully as a batch of `executedRows`
   * (more when padded): inference_count counts real rows, batch_stats the size that ran.
   */
  executed(rows: number, executedRows: number, requests: number, timing: BatchTiming): void {
    this.#lastInference = Date.now();
    this.#inferenceCount += rows;
    this.#executionCount++;
    this.#computeInput.count += requests;
    this.#computeInput.ns += timing.computeInputNs * requests;
    this.#computeInfer.count += requests;
    this.#computeInfer.ns += timing.computeInferNs * requests;
    this.#computeOutput.count += requests;
    this.#computeOutput.ns += timing.computeOutputNs * requests;
    let bucket = this.#batches.get(executedRows);
    if (!bucket) {
      bucket = { computeInput: zero(), computeInfer: zero(), computeOutput: zero() };
      this.#batches.set(executedRows, bucket);
    }
    bucket.computeInput.count++;
    bucket.computeInput.ns += timing.computeInputNs;
    bucket.computeInfer.count++;
    bucket.computeInfer.ns += timing.computeInferNs;
    bucket.computeOutput.count++;
    bucket.computeOutput.ns += timing.computeOutputNs;
  }

  snapshot(): ModelStats {
    return {
      name: this.#name,
      version: this.#version,
      lastInference: this.#lastInference,
      inferenceCount: this.#inferenceCount,
      executionCount: this.#executionCount,
      success: frozen(this.#success),
      fail: frozen(this.#fail),
      queue: frozen(this.#queue),
      computeInput: frozen(this.#computeInput),
      computeInfer: frozen(this.#computeInfer),
      computeOutput: frozen(this.#computeOutput),
      cacheHit: frozen(this.#cacheHit),
      cacheMiss: frozen(this.#cacheMiss),
      batchStats: [...this.#batches.entries()]
        .sort((a, b) => a[0] - b[0])
        .map(([batchSize, b]) => ({ batchSize, computeInput: frozen(b.computeInput), computeInfer: frozen(b.computeInfer), computeOutput: frozen(b.computeOutput) })),
    };
  }
}
