/**
 * The balancing policy seam. A policy sees read-only snapshots of the workers and names one; the pool
 * reserves the slot and sends the batch. Policies hold no references to workers, so a policy can be
 * tested with plain objects and swapped by configuration.
 */

/** What the pool knows about one worker at the moment of a pick, for the job's model. */
export interface WorkerView {
  readonly id: string;
  /** False while the worker is ejected (failed a probe or a batch) or not yet up. */
  readonly healthy: boolean;
  /** Batches the worker may still be sent before it reaches the in-flight limit. */
  readonly freeSlots: number;
  readonly inflightBatches: number;
  /** Batches the worker holds for other gateways (its own report; 0 when it reports none or is local). */
  readonly othersBatches: number;
  /** Rows of every batch sent to the worker and not yet answered, whatever their model. */
  readonly inflightRows: number;
  /** Measured seconds per row of the job's model on this worker (EWMA); undefined before the first batch. */
  readonly secondsPerRow: number | undefined;
  /** Measured fixed seconds per batch of the job's model on this worker (EWMA); undefined before the first batch. */
  readonly secondsPerBatch: number | undefined;
  /** Keys (see modelKey) of the models the worker holds loaded; valid for the duration of the pick. */
  readonly hotModels: ReadonlySet<string>;
}

/** The batch a pick is for. */
export interface PickJob {
  readonly model: string;
  readonly version: string;
  readonly rows: number;
}

/** A balancing policy: chooses the worker for one batch. */
export interface Picker {
  /** The policy's configuration name. */
  readonly name: string;
  /**
   * Returns a healthy candidate with a free slot, or undefined when none has one. Must not mutate the
   * views; may keep its own state (a rotation cursor).
   */
  pick(candidates: readonly WorkerView[], job: PickJob): WorkerView | undefined;
}

/** The key a model version has in WorkerView.hotModels. */
export function modelKey(model: string, version: string): string {
  return `${model}:${version}`;
}

/** Whether the worker may be sent a batch now. */
export function canTake(view: WorkerView): boolean {
  return view.healthy && view.freeSlots > 0;
}
