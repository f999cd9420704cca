import type { BatchTimestamps } from './trace.ts';
import type { Tensor } from './tensor.ts';

/**
 * The seam between the scheduler (which forms batches) and the balancer (which runs them on workers).
 * A batch's inputs are the requests' inputs concatenated along the batch dimension.
 */
export interface BatchJob {
  readonly model: string;
  /** A concrete version (the scheduler resolves the policy before it batches). */
  readonly version: string;
  /** Rows that run, padding included. */
  readonly rows: number;
  /** Rows that belong to requests (rows minus padding); absent when nothing is padded. */
  readonly requestRows?: number;
  readonly inputs: readonly Tensor[];
  /**
   * Whether the inputs were written for this batch alone (so whoever runs it may move their memory);
   * false when they are a request's own tensors, which its scheduler still holds.
   */
  readonly inputsOwned?: boolean;
  /** Output names to compute (the union of what the batch's requests asked for). */
  readonly outputs: readonly string[];
  /** An uploaded version's source (files sent with its load request): workers run those files. */
  readonly source?: string | undefined;
}

export interface BatchResult {
  readonly outputs: readonly Tensor[];
  /** Nanoseconds spent in the worker: copying inputs in, session.run, copying outputs out. */
  readonly computeInputNs: number;
  readonly computeInferNs: number;
  readonly computeOutputNs: number;
  /** Which worker ran it (for logs). */
  readonly worker: string;
  /** Whether the model was already hot on that worker. */
  readonly cacheHit: boolean;
  /** Where the batch's time went, for request traces (absent when the worker did not report it). */
  readonly timestamps?: BatchTimestamps;
}

/**
 * A batch that did not run to an answer for reasons of the worker (it died, its connection broke, it
 * was ejected, it refused while draining). Nothing is wrong with the batch: the scheduler puts its
 * requests back at the head of their queue, once, to run on whichever slot frees next.
 */
export class BatchNotRun extends Error {
  readonly worker: string;
  /**
   * The worker was merely full (a worker host shared by several gateways said busy): the batch never
   * reached it, so it goes back to its queue without using up its one retry.
   */
  readonly busy: boolean;
  constructor(worker: string, reason: string, options?: ErrorOptions & { busy?: boolean }) {
    super(reason, options);
    this.name = 'BatchNotRun';
    this.worker = worker;
    this.busy = options?.busy === true;
  }
}

/**
 * One reserved place on a worker for one batch. The scheduler owns the job's input bytes until it
 * calls run(); from then on they belong to the slot (which may hand them to another thread without a
 * copy), and the scheduler keeps only the requests' own inputs. The slot frees itself when run()
 * settles; release() gives back a slot that is not going to be used.
 */
export interface BatchSlot {
  /** The worker the slot is on (for logs and responses). */
  readonly worker: string;
  /**
   * Runs the batch. Rejects with BatchNotRun when the worker failed it (the batch may run elsewhere),
   * or with the SluiceError to report (bad input, inference or load failure).
   */
  run(job: BatchJob): Promise<BatchResult>;
  release(): void;
}

/** What tryAcquire found: a slot, no free slot now (wait for the drain signal), or no worker at all. */
export type Acquired =
  | { readonly kind: 'slot'; readonly slot: BatchSlot }
  | { readonly kind: 'busy' }
  | { readonly kind: 'unavailable'; readonly error: Error };

/** Measured cost of a model's batches on the workers that run it, for admission by expected wait. */
export interface BatchCost {
  /** Milliseconds a batch costs beyond its rows, and each row, fitted from recent batches. */
  readonly perBatchMs: number;
  readonly perRowMs: number;
  /** Workers able to run it now (its batches spread over them). */
  readonly workers: number;
}

/**
 * Runs batches (the balancer's WorkerPool; a test executor in the scheduler's tests). A synchronous
 * lease: the scheduler's queue is the only place a request waits, so the executor never queues a
 * batch. It hands out a slot or says why not, and signals drain when a slot may have freed.
 */
export interface Executor {
  /** A free slot able to run a batch of `rows` rows of the model version now, reserved; or busy / unavailable. Never blocks. */
  tryAcquire(batch: { readonly model: string; readonly version: string; readonly rows: number }): Acquired;
  /**
   * Registers a listener called (never synchronously from inside tryAcquire or run) whenever a slot may
   * have freed or the set of workers changed.
   */
  onDrain(listener: () => void): void;
  /** The model's measured batch cost, once some batches ran; undefined before. */
  costOf(model: string, version: string): BatchCost | undefined;
  /**
   * Makes the model hot on at least one worker (start-up loading and explicit model control); `source`
   * names uploaded files (src/repository/uploads.ts) to run instead of the repository's.
   */
  load(model: string, version: string, source?: string): Promise<void>;
  /** Drops the model (the uploaded files `source` names, when given) from every worker's cache. */
  unload(model: string, version: string, source?: string): Promise<void>;
}
