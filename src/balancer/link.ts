import type { SluiceError } from '../core/errors.ts';
import type { BatchJob } from '../core/execution.ts';
import type { FrameResult, LoadResult, ModelRef, UnloadResult, WorkerHealth } from '../worker/protocol.ts';

/**
 * The worker could not be reached or did not answer (refused, reset, closed, timed out, or sent a reply
 * that is not a frame). Such a failure says nothing about the batch, so the batch may run elsewhere.
 */
export class TransportError extends Error {
  readonly worker: string;
  constructor(worker: string, reason: string, options?: ErrorOptions) {
    super(reason, options);
    this.name = 'TransportError';
    this.worker = worker;
  }
}

/** The worker answered with an error (its SluiceError, rebuilt); `status` is the HTTP status. */
export class WorkerAnswerError extends Error {
  readonly status: number;
  readonly error: SluiceError;
  constructor(status: number, error: SluiceError) {
    super(error.message);
    this.name = 'WorkerAnswerError';
    this.status = status;
    this.error = error;
  }
}

/**
 * How the pool reaches one worker: over the worker protocol to a process or a remote host
 * (WorkerClient), or to ONNX Runtime inside the gateway itself (InProcessWorker). Both answer with
 * the same results and fail with the same two errors, so the pool treats them alike (one shared
 * contract suite in test/balancer/executor-contract.test.ts, through the pool).
 */
export interface WorkerLink {
  /** The worker's name in logs and metrics. */
  readonly worker: string;
  /** Where it is: unix:/path, http://host:port, or thread:NAME. */
  readonly address: string;
  health(): Promise<WorkerHealth>;
  load(ref: ModelRef): Promise<LoadResult>;
  unload(ref: ModelRef): Promise<UnloadResult>;
  /**
   * Runs one batch. The job's inputs belong to the link from this call on (it may move their memory).
   * `cancel` fails the call at once (the pool cancels the batches of a worker it ejects).
   */
  infer(job: BatchJob, cancel?: AbortSignal): Promise<FrameResult>;
  close(): Promise<void>;
}

/** A batch's first attempt failed in a way that says nothing about the batch: it may run elsewhere. */
export class RetryableFailure extends Error {
  readonly worker: string;
  /** The worker only said it is full: the batch never reached it. */
  readonly busy: boolean;
  constructor(worker: string, reason: string, busy = false) {
    super(reason);
    this.worker = worker;
    this.busy = busy;
  }
}
