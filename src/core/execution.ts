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
  /** Output names to compute (the union of what the batch's requests asked for). */
  readonly outputs: readonly string[];
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
}

/** Runs batches on workers. Implemented by the balancer's WorkerPool. */
export interface Executor {
  /** Whether some healthy worker able to serve the model could start a batch now (a free slot). */
  hasCapacity(model: string, version: string): boolean;
  /** Registers a listener called whenever capacity may have appeared (a batch finished, a worker came up). */
  onCapacity(listener: () => void): void;
  /**
   * Runs a batch on the best worker, reserving its slot synchronously. On worker failure (crash, lost
   * connection, timeout) it retries once on another worker; throws SluiceError when none can serve.
   */
  execute(job: BatchJob): Promise<BatchResult>;
  /** Makes the model hot on at least one worker (start-up loading and explicit model control). */
  load(model: string, version: string): Promise<void>;
  /** Drops the model from every worker's cache. */
  unload(model: string, version: string): Promise<void>;
}
