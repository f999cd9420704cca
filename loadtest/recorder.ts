import * as hdr from 'hdr-histogram-js';
import type { LatencySummary, Outcome } from './types.ts';

type Histogram = ReturnType<typeof hdr.build>;

function newHistogram(): Histogram {
  // Microsecond values, 3 significant digits: 1 us resolution below 1 ms, 0.1% above, auto-resizing past an hour.
  return hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: 3, autoResize: true });
}

/** Percentiles plotted in the report: dense in the tail, where load tests are read. */
export const PLOT_PERCENTILES: readonly number[] = [0, 10, 25, 50, 75, 90, 95, 97.5, 99, 99.5, 99.9, 99.95, 99.99, 99.999, 100];

/** What a recorder gathered, before the step adds its own fields. */
export interface RecordedStats {
  readonly ok: number;
  readonly responses: number;
  readonly errors: Readonly<Record<string, number>>;
  readonly errorCount: number;
  readonly sent: number;
  readonly checked: number;
  readonly wrong: number;
  readonly latencyMs: LatencySummary;
  readonly percentiles: readonly (readonly [number, number])[];
  /** Milliseconds from the start of measurement to the last measured response. */
  readonly spanMs: number;
}

/**
 * Which instant decides whether a response belongs to the measurement: in an open loop the request's
 * due time (the schedule defines the load, and every request due in the window counts, however late it
 * finishes); in a closed loop the response's arrival, as closed-loop tools count throughput (a request
 * sent in the warm-up but answered in the window is a sample of the loaded steady state).
 */
export type MeasureBy = 'due' | 'completion';

/** Collects the outcomes of one step; responses before the warm-up ended only count as sent. */
export class Recorder {
  readonly #measureFromMs: number;
  readonly #by: MeasureBy;
  readonly #latency = newHistogram();
  readonly #interval = newHistogram();
  readonly #errors = new Map<string, number>();
  #intervalCount = 0;
  #intervalStart = performance.now();
  #ok = 0;
  #sent = 0;
  #checked = 0;
  #wrong = 0;
  #lastMs = 0;
  #errorsSeen = 0;

  constructor(measureFromMs: number, by: MeasureBy) {
    this.#measureFromMs = measureFromMs;
    this.#by = by;
  }

  get measureFromMs(): number {
    return this.#measureFromMs;
  }

  noteSent(): void {
    this.#sent += 1;
  }

  /** Adds sends a driver counted itself (autocannon reports its own total). */
  addSent(n: number): void {
    this.#sent += n;
  }

  noteChecked(wrong: boolean): void {
    this.#checked += 1;
    if (wrong) this.#wrong += 1;
  }

  /**
   * Records one finished request. `basisMs` is when it was meant to be sent (open loop) or was sent
   * (closed loop); latency counts from there, so a request delayed by a stalled server counts fully.
   * `dueMs` places an open-loop request in warm-up or measurement by its slot in the schedule, even when
   * it went out a fraction of a millisecond early.
   */
  record(basisMs: number, endMs: number, outcome: Outcome, dueMs = basisMs): void {
    const us = Math.max(1, Math.round((endMs - basisMs) * 1000));
    if (outcome.ok) {
      this.#interval.recordValue(us);
      this.#intervalCount += 1;
    } else {
      this.#errorsSeen += 1;
    }
    if ((this.#by === 'due' ? dueMs : endMs) < this.#measureFromMs) return;
    if (endMs > this.#lastMs) this.#lastMs = endMs;
    if (outcome.ok) {
      this.#ok += 1;
      this.#latency.recordValue(us);
    } else {
      this.#errors.set(outcome.error, (this.#errors.get(outcome.error) ?? 0) + 1);
    }
  }

  /** Errors so far, warm-up included (for the progress line). */
  get errorsSeen(): number {
    return this.#errorsSeen;
  }

  /** QPS and P99 since the previous call (for the progress line). */
  takeInterval(): { qps: number; p99Ms: number } {
    const now = performance.now();
    const seconds = Math.max(1e-3, (now - this.#intervalStart) / 1000);
    const result = { qps: this.#intervalCount / seconds, p99Ms: this.#intervalCount > 0 ? this.#interval.getValueAtPercentile(99) / 1000 : 0 };
    this.#interval.reset();
    this.#intervalCount = 0;
    this.#intervalStart = now;
    return result;
  }

  stats(): RecordedStats {
    const h = this.#latency;
    const n = h.totalCount;
    const max = n > 0 ? h.maxValue : 0;
    // HDR reports the highest value equivalent to a bucket; cap at the true max so P99.9 <= max.
    const at = (p: number): number => (n > 0 ? Math.min(h.getValueAtPercentile(p), max) / 1000 : 0);
    let errorCount = 0;
    for (const v of this.#errors.values()) errorCount += v;
    return {
      ok: this.#ok,
      responses: this.#ok + errorCount,
      errors: Object.fromEntries(this.#errors),
      errorCount,
      sent: this.#sent,
      checked: this.#checked,
      wrong: this.#wrong,
      latencyMs: {
        min: n > 0 ? h.minNonZeroValue / 1000 : 0,
        mean: n > 0 ? h.mean / 1000 : 0,
        p50: at(50), p90: at(90), p95: at(95), p99: at(99), p999: at(99.9), max: max / 1000,
      },
      percentiles: n > 0 ? PLOT_PERCENTILES.filter((p) => p === 100 || 100 / (100 - p) <= n).map((p) => [p, p === 100 ? max / 1000 : at(p)] as const) : [],
      spanMs: Math.max(0, this.#lastMs - this.#measureFromMs),
    };
  }

  destroy(): void {
    this.#latency.destroy();
    this.#interval.destroy();
  }
}
