/**
 * Batch time on one worker for one model, fitted as `seconds = perBatch + perRow * rows` by
 * exponentially weighted least squares: recent batches count most, so the fit follows a worker that
 * slows down (a neighbour's load, thermal throttling) within a few batches.
 */

/** Weight of the newest observation. */
const ALPHA = 0.2;
/**
 * After this long without a batch the fit is reported as unknown, so that the least-loaded policy
 * tries the worker again instead of avoiding it for ever on the strength of old measurements.
 */
export const COST_STALE_MS = 10_000;

export interface BatchCost {
  readonly perRow: number;
  readonly perBatch: number;
}

export class BatchCostModel {
  #n = 0;
  #mx = 0;
  #my = 0;
  #mxx = 0;
  #mxy = 0;
  #lastAt = -Infinity;
  #cost: BatchCost | undefined;

  /** Records one batch of `rows` rows that occupied the worker for `seconds`. */
  observe(rows: number, seconds: number, now: number): void {
    if (!(rows > 0) || !(seconds >= 0) || !Number.isFinite(seconds)) return;
    // The first observation seeds the means; afterwards each one moves them by ALPHA.
    const a = this.#n === 0 ? 1 : ALPHA;
    this.#mx += a * (rows - this.#mx);
    this.#my += a * (seconds - this.#my);
    this.#mxx += a * (rows * rows - this.#mxx);
    this.#mxy += a * (rows * seconds - this.#mxy);
    this.#n++;
    this.#lastAt = now;
    this.#cost = this.#fit();
  }

  /** The current fit, or undefined before the first batch or once it is stale. */
  cost(now: number): BatchCost | undefined {
    return now - this.#lastAt > COST_STALE_MS ? undefined : this.#cost;
  }

  #fit(): BatchCost {
    const mx = this.#mx;
    const my = this.#my;
    const variance = this.#mxx - mx * mx;
    // Batches of (nearly) one size cannot separate the fixed part from the per-row part: charge it all
    // per batch. That orders workers correctly for batches of that size, and it errs on the side an
    // admission estimate must: at light load every batch is one row, and charging that row's time to
    // each of the rows of a burst (per row) overstated a 256-row queue's wait 15-fold and shed requests
    // that would have been answered in a few milliseconds. A queue of full batches is then estimated
    // exactly, and a burst of small ones leniently, until batches of other sizes refine the fit.
    if (variance <= 0.01 * mx * mx) return { perRow: 0, perBatch: my };
    const slope = (this.#mxy - mx * my) / variance;
    const intercept = my - slope * mx;
    if (slope < 0) return { perRow: 0, perBatch: my };
    if (intercept < 0) return { perRow: my / mx, perBatch: 0 };
    return { perRow: slope, perBatch: intercept };
  }
}
