import type { Registry } from 'prom-client';

/**
 * A Prometheus summary of quantiles over a sliding window, cheap enough for every request: an
 * observation is a logarithm and an array increment. prom-client's Summary feeds a t-digest per
 * observation, which cost about 20 us of the gateway's event loop per request (a CPU profile at 1,000
 * req/s), more than the whole batcher. Quantiles come from log-spaced buckets whose edges are RATIO
 * apart, so a reported quantile is within RATIO - 1 (1%) of a value really observed; they are
 * computed at scrape time.
 *
 * The window is `ageBuckets` rotating count arrays of maxAgeSeconds / ageBuckets each, as prom-client's
 * summary does: a scrape sees between (ageBuckets - 1) and ageBuckets of them.
 */
const RATIO = 1.01;
const LOG_RATIO = Math.log(RATIO);
/** Smallest value told apart (1 microsecond, in seconds); anything below counts in the first bucket. */
const MIN_VALUE = 1e-6;
/** 1 us to about 10^4 s at 1% steps. */
const BUCKETS = Math.ceil(Math.log(1e10) / LOG_RATIO) + 1;

/** The counts of one label set. */
interface Series {
  readonly labels: Readonly<Record<string, string>>;
  /** One count array per age bucket, allocated when first written. */
  readonly ages: (Uint32Array | undefined)[];
  /** Observations and their sum since start (a summary's _count and _sum never reset). */
  count: number;
  sum: number;
}

function bucketOf(v: number): number {
  if (!(v > MIN_VALUE)) return 0;
  const i = Math.ceil(Math.log(v / MIN_VALUE) / LOG_RATIO);
  return i < BUCKETS ? i : BUCKETS - 1;
}

/** The value a bucket reports: its upper edge, so a reported quantile never understates a latency. */
const valueOf = (bucket: number): number => MIN_VALUE * RATIO ** bucket;

export interface WindowQuantilesOptions {
  readonly name: string;
  readonly help: string;
  readonly labelNames: readonly string[];
  readonly percentiles: readonly number[];
  readonly maxAgeSeconds: number;
  readonly ageBuckets: number;
  readonly registers: readonly Registry[];
  /** Monotonic milliseconds (tests move time). */
  readonly now?: () => number;
}

export class WindowQuantiles {
  readonly name: string;
  readonly help: string;
  readonly type = 'summary';
  readonly #o: WindowQuantilesOptions;
  readonly #series = new Map<string, Series>();
  readonly #slotMs: number;
  readonly #now: () => number;
  /** Index of the age bucket being written and when it began. */
  #slot = 0;
  #slotStart: number;

  constructor(o: WindowQuantilesOptions) {
    this.name = o.name;
    this.help = o.help;
    this.#o = o;
    this.#now = o.now ?? (() => performance.now());
    this.#slotMs = (o.maxAgeSeconds * 1000) / o.ageBuckets;
    this.#slotStart = this.#now();
    for (const r of o.registers) r.registerMetric(this as never);
  }

  /** Records one value (seconds) for a label set given in labelNames' order. */
  observe(labels: Readonly<Record<string, string>>, value: number): void {
    this.#rotate();
    let key = '';
    for (const n of this.#o.labelNames) key += `${labels[n] ?? ''}\u0000`;
    let s = this.#series.get(key);
    if (!s) {
      s = { labels: { ...labels }, ages: new Array<Uint32Array | undefined>(this.#o.ageBuckets).fill(undefined), count: 0, sum: 0 };
      this.#series.set(key, s);
    }
    const counts = (s.ages[this.#slot] ??= new Uint32Array(BUCKETS));
    counts[bucketOf(value)]!++;
    s.count++;
    s.sum += value;
  }

  /** What prom-client's registry reads at scrape time. */
  get(): { name: string; help: string; type: string; aggregator: string; values: { labels: Record<string, string | number>; value: number; metricName?: string }[] } {
    this.#rotate();
    const values: { labels: Record<string, string | number>; value: number; metricName?: string }[] = [];
    for (const s of this.#series.values()) {
      const merged = new Uint32Array(BUCKETS);
      let total = 0;
      for (const a of s.ages) {
        if (!a) continue;
        for (let i = 0; i < BUCKETS; i++) merged[i]! += a[i]!;
      }
      for (let i = 0; i < BUCKETS; i++) total += merged[i]!;
      for (const q of this.#o.percentiles) values.push({ labels: { ...s.labels, quantile: q }, value: total === 0 ? NaN : quantileOf(merged, total, q) });
      values.push({ metricName: `${this.name}_sum`, labels: { ...s.labels }, value: s.sum });
      values.push({ metricName: `${this.name}_count`, labels: { ...s.labels }, value: s.count });
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: 'sum', values };
  }

  reset(): void {
    this.#series.clear();
  }

  /** Moves to the next age bucket when the current one is full of time, clearing what it held. */
  #rotate(): void {
    const now = this.#now();
    if (now - this.#slotStart < this.#slotMs) return;
    const steps = Math.min(this.#o.ageBuckets, Math.floor((now - this.#slotStart) / this.#slotMs));
    for (let k = 0; k < steps; k++) {
      this.#slot = (this.#slot + 1) % this.#o.ageBuckets;
      for (const s of this.#series.values()) s.ages[this.#slot]?.fill(0);
    }
    this.#slotStart += Math.floor((now - this.#slotStart) / this.#slotMs) * this.#slotMs;
  }
}

/** The smallest bucket value with at least q of the observations at or below it (nearest rank). */
function quantileOf(counts: Uint32Array, total: number, q: number): number {
  const rank = Math.max(1, Math.ceil(q * total));
  let seen = 0;
  for (let i = 0; i < counts.length; i++) {
    seen += counts[i]!;
    if (seen >= rank) return valueOf(i);
  }
  return valueOf(counts.length - 1);
}
