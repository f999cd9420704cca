import { canTake, modelKey, type PickJob, type Picker, type WorkerView } from './picker.ts';

/**
 * Stand-in costs for a worker that has not yet run the model. Any positive values do: with nothing
 * measured anywhere the policy then counts outstanding rows, which is the right thing without data.
 */
const PRIOR_SECONDS_PER_ROW = 1e-4;
const PRIOR_SECONDS_PER_BATCH = 1e-3;

/**
 * Picks the worker that would finish the batch first: the rows already sent to it plus the batch's own,
 * weighted by what the model has measured there (seconds per row and a fixed cost per batch).
 *
 * Workers holding the model hot come first, because a cold worker must load the model before it
 * answers (seconds, against milliseconds for a batch). Only when every hot worker is out of slots does
 * a cold one get the batch, and with it the model, so capacity grows where the load is.
 *
 * Ties (equal estimates, e.g. nothing measured and nothing in flight) go to the earlier candidate in
 * the pool's order: deterministic, and it keeps a lightly used model on few workers.
 */
export class LeastLoadedPicker implements Picker {
  readonly name = 'least-loaded';

  pick(candidates: readonly WorkerView[], job: PickJob): WorkerView | undefined {
    const key = modelKey(job.model, job.version);
    const open = candidates.filter(canTake);
    if (open.length === 0) return undefined;
    const hot = open.filter((v) => v.hotModels.has(key));
    const pool = hot.length > 0 ? hot : open;
    const prior = priorOf(candidates);
    let best: WorkerView | undefined;
    let bestCost = Infinity;
    for (const view of pool) {
      const cost = estimateSeconds(view, job.rows, prior);
      if (cost < bestCost) {
        best = view;
        bestCost = cost;
      }
    }
    return best;
  }
}

interface Costs {
  readonly perRow: number;
  readonly perBatch: number;
}

/**
 * Expected seconds until the worker would finish this batch: the batches ahead of it and the batch
 * itself, each costing a fixed part plus a part per row. Rows of other models in flight are costed at
 * this model's rate, and other gateways' batches on the worker (whose rows are unknown here) as many
 * batches of this one's size: approximations, but the pick only needs the order of the workers.
 */
export function estimateSeconds(view: WorkerView, rows: number, prior: Costs): number {
  const perRow = view.secondsPerRow ?? prior.perRow;
  const perBatch = view.secondsPerBatch ?? prior.perBatch;
  return (view.inflightRows + view.othersBatches * rows + rows) * perRow + (view.inflightBatches + view.othersBatches + 1) * perBatch;
}

/**
 * An unmeasured worker is assumed as fast as the measured ones on average: optimistic enough to be
 * tried, yet its own queue still counts against it.
 */
function priorOf(candidates: readonly WorkerView[]): Costs {
  let rowSum = 0;
  let batchSum = 0;
  let n = 0;
  for (const v of candidates) {
    if (v.secondsPerRow === undefined || v.secondsPerBatch === undefined) continue;
    rowSum += v.secondsPerRow;
    batchSum += v.secondsPerBatch;
    n++;
  }
  if (n === 0) return { perRow: PRIOR_SECONDS_PER_ROW, perBatch: PRIOR_SECONDS_PER_BATCH };
  return { perRow: rowSum / n, perBatch: batchSum / n };
}
