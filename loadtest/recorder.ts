import * as hdr from 'hdr-histogram-js';
import type { LatencySummary, Outcome } from './types.ts';

type Histogram = ReturnType<typeof hdr.build>;

function newHistogram(): Histogram {
  // Microsecond values, 3 significant digits: 1 us resolution below 1 ms, 0.1% above, auto-resizing past an hour.
  return hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: 3, autoResize: true });
}

function addEncoded(into: Histogram, encoded: string): void {
  const h = hdr.decodeFromCompressedBase64(encoded);
  into.add(h);
  h.destroy();
}

/** A percentile in milliseconds; 0 for an empty histogram. */
function percentileMs(h: Histogram, p: number): number {
  // HDR reports the highest value equivalent to a bucket; cap at the true max so P99.9 <= max.
  return h.totalCount > 0 ? Math.min(h.getValueAtPercentile(p), h.maxValue) / 1000 : 0;
}

function summarize(h: Histogram): LatencySummary {
  const n = h.totalCount;
  const at = (p: number): number => percentileMs(h, p);
  return {
    min: n > 0 ? h.minNonZeroValue / 1000 : 0,
    mean: n > 0 ? h.mean / 1000 : 0,
    p50: at(50), p90: at(90), p95: at(95), p99: at(99), p999: at(99.9), max: n > 0 ? h.maxValue / 1000 : 0,
  };
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
  /**
   * Latency of the measured error answers (see isErrorAnswer), kept apart from the successes': a server
   * that sheds load answers its refusals fast, and how fast is a property of its own. Undefined when none.
   */
  readonly refusedLatencyMs: LatencySummary | undefined;
  /** Milliseconds from the start of measurement to the last measured response. */
  readonly spanMs: number;
}

/**
 * Whether an error kind is the server's answer with an error status ('http 503', 'grpc
 * RESOURCE_EXHAUSTED'), rather than a timeout, a reset or a request never sent. gRPC statuses include
 * the client library's own UNAVAILABLE when it cannot connect; a shedding server's refusals are the case
 * this is for.
 */
export function isErrorAnswer(kind: string): boolean {
  return kind.startsWith('http ') || kind.startsWith('grpc ');
}

/** Where a finished request falls: its latency, and whether it counts in the measurement. */
export interface Placed {
  readonly us: number;
  readonly measured: boolean;
}

/** A recorder's counts and latency histogram, serializable (sent from the open-loop driver process). */
export interface RecorderExport {
  /** The latency histogram (microseconds), HDR's compressed base64 encoding. */
  readonly histogram: string;
  /** The same for error answers (isErrorAnswer); undefined when there were none. */
  readonly refusedHistogram: string | undefined;
  readonly ok: number;
  readonly errors: Readonly<Record<string, number>>;
  readonly sent: number;
  /** Milliseconds from the start of measurement to the last measured response; undefined when none. */
  readonly spanMs: number | undefined;
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
  readonly #refused = newHistogram();
  readonly #errors = new Map<string, number>();
  #intervalCount = 0;
  #intervalStart = performance.now();
  #ok = 0;
  #sent = 0;
  #checked = 0;
  #wrong = 0;
  #lastMs = 0;
  #errorsSeen = 0;
  #remote: { qps: number; p99Ms: number } | undefined;

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
    const p = this.place(basisMs, endMs, dueMs);
    this.recordPlaced(p.us, outcome, p.measured);
  }

  /**
   * Places a finished request (its latency, and whether it falls in the measurement, which then ends no
   * earlier than it) without counting it: a sampled answer is counted once checked, after the step.
   */
  place(basisMs: number, endMs: number, dueMs = basisMs): Placed {
    const us = Math.max(1, Math.round((endMs - basisMs) * 1000));
    const measured = (this.#by === 'due' ? dueMs : endMs) >= this.#measureFromMs;
    if (measured && endMs > this.#lastMs) this.#lastMs = endMs;
    return { us, measured };
  }

  /** Counts a placed request once its outcome is known. */
  recordPlaced(us: number, outcome: Outcome, measured: boolean): void {
    if (outcome.ok) {
      this.#interval.recordValue(us);
      this.#intervalCount += 1;
    } else {
      this.#errorsSeen += 1;
    }
    if (!measured) return;
    if (outcome.ok) {
      this.#ok += 1;
      this.#latency.recordValue(us);
    } else {
      this.#errors.set(outcome.error, (this.#errors.get(outcome.error) ?? 0) + 1);
      if (isErrorAnswer(outcome.error)) this.#refused.recordValue(us);
    }
  }

  /** What this recorder counted, in a form that crosses a process boundary (the open-loop driver's). */
  export(): RecorderExport {
    return {
      histogram: hdr.encodeIntoCompressedBase64(this.#latency),
      refusedHistogram: this.#refused.totalCount > 0 ? hdr.encodeIntoCompressedBase64(this.#refused) : undefined,
      ok: this.#ok,
      errors: Object.fromEntries(this.#errors),
      sent: this.#sent,
      spanMs: this.#lastMs > 0 ? Math.max(0, this.#lastMs - this.#measureFromMs) : undefined,
    };
  }

  /** Adds what a recorder in another process counted; its window is taken to start where this one does. */
  absorb(r: RecorderExport): void {
    if (r.ok > 0) addEncoded(this.#latency, r.histogram);
    if (r.refusedHistogram !== undefined) addEncoded(this.#refused, r.refusedHistogram);
    this.#ok += r.ok;
    this.#sent += r.sent;
    for (const [k, v] of Object.entries(r.errors)) this.#errors.set(k, (this.#errors.get(k) ?? 0) + v);
    if (r.spanMs !== undefined) this.#lastMs = Math.max(this.#lastMs, this.#measureFromMs + r.spanMs);
  }

  /** The progress numbers of a driver in another process, returned by the next takeInterval(). */
  noteRemoteInterval(qps: number, p99Ms: number, newErrors: number): void {
    this.#remote = { qps, p99Ms };
    this.#errorsSeen += newErrors;
  }

  /** Errors so far, warm-up included (for the progress line). */
  get errorsSeen(): number {
    return this.#errorsSeen;
  }

  /** QPS and P99 since the previous call (for the progress line). */
  takeInterval(): { qps: number; p99Ms: number } {
    if (this.#remote) {
      const r = this.#remote;
      this.#remote = undefined;
      return r;
    }
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
    const at = (p: number): number => percentileMs(h, p);
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
      latencyMs: summarize(h),
      percentiles: n > 0 ? PLOT_PERCENTILES.filter((p) => p === 100 || 100 / (100 - p) <= n).map((p) => [p, p === 100 ? max / 1000 : at(p)] as const) : [],
      refusedLatencyMs: this.#refused.totalCount > 0 ? summarize(this.#refused) : undefined,
      spanMs: Math.max(0, this.#lastMs - this.#measureFromMs),
    };
  }

  destroy(): void {
    this.#latency.destroy();
    this.#interval.destroy();
    this.#refused.destroy();
  }
}
