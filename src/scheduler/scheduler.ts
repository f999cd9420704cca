import type { SluiceError } from '../core/errors.ts';
import type { InferRequest, InferResponse } from '../core/inference.ts';

/**
 * What validation learned about one request, so the batcher never re-reads the model config per
 * request: how many rows it carries, which requests it may share a batch with, and what to return.
 */
export interface RequestPlan {
  /** Rows the request carries (its inputs' leading dimension; 1 when the model does not batch). */
  readonly rows: number;
  /** Requests with equal keys have the same inputs with the same non-batch dims: they may share a batch. */
  readonly shapeKey: string;
  /** Resolved priority level, 1 (highest) .. the model's level count. */
  readonly level: number;
  /** Output names to return to this request, in the order it asked for them (all outputs when it named none). */
  readonly outputs: readonly string[];
  /** Whether the request asked for every output (so the batch computes them all). */
  readonly allOutputs: boolean;
}

export type DispatchResult = 'sent' | 'busy' | 'idle';

/**
 * The queue and batcher of one model version (Triton's Scheduler {enqueue, inflight, stop}). The
 * service owns one per loaded version and routes validated requests to it.
 */
export interface Scheduler {
  /** Queues a validated request; settles with its own outputs or a SluiceError (queue full, timeout, ...). */
  enqueue(request: InferRequest, plan: RequestPlan): Promise<InferResponse>;
  /** Requests waiting in the queue. */
  depth(): number;
  /** Requests sent to the executor and not yet answered. */
  inflight(): number;
  /**
   * Sends one batch if the executor has a slot for it: 'sent' (a batch went out, or failed at once),
   * 'busy' (work is queued but no slot is free: call again on the drain signal), 'idle' (nothing to
   * send now: empty, closed, or waiting for a max queue delay, whose own timer calls back). The service
   * calls it round-robin over its ready list, so no model starves the others.
   */
  dispatchOne(): DispatchResult;
  /** Resolves once the queue is empty and nothing is in flight (queued requests still run). */
  drain(): Promise<void>;
  /** Stops the timers and rejects whatever is still queued with `error`; in-flight batches still settle. */
  close(error: Error): void;
}

/** A Scheduler the service routes a model version's requests to (the dynamic or the sequence batcher). */
export interface ModelScheduler extends Scheduler {
  /** The error that sheds a request arriving now from its headers alone, or undefined (see InferenceService). */
  refuseOnArrival(arrivalMs: number, tenant?: string): SluiceError | undefined;
  /**
   * A decoupled model's answers: `emit` once per response as it is ready; settles when the request is
   * complete (or fails). Present only on schedulers of decoupled models.
   */
  stream?(request: InferRequest, plan: RequestPlan, emit: (response: InferResponse) => void): Promise<void>;
}
