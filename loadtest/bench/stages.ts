/**
 * Where a sluice request's time goes, from sluice's own traces (Triton's trace extension at level
 * TIMESTAMPS; with --trace-file PREFIX --trace-log-frequency N it writes PREFIX.0, PREFIX.1, ...). A
 * client-side latency says how long, not where: the stages say which hop to work on. The trace clock
 * is process.hrtime, which the bench shares, so a trace belongs to the run whose measured window holds
 * its REQUEST_START.
 */
import { readdir, readFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { TRACE_STAGES, type TraceStage } from '../../src/core/trace.ts';
import { mdTable, n0 } from './markdown.ts';
import type { Measured, RunWindow } from './measure.ts';

/** One request in this many is traced: enough traces per run for medians, few enough not to weigh on the floor. */
export const TRACE_RATE = 20;
/** sluice writes a trace file every this many traces. */
export const TRACE_LOG_FREQUENCY = 100;

/** The serve flags that make sluice write the files a TraceReader reads. */
export const traceFlags = (prefix: string): string[] => ['--trace-level', 'TIMESTAMPS', '--trace-rate', String(TRACE_RATE), '--trace-file', prefix, '--trace-log-frequency', String(TRACE_LOG_FREQUENCY)];

/** The intervals reported, in path order, and the whole. */
const STAGE_INTERVALS: readonly { readonly label: string; readonly from: TraceStage; readonly to: TraceStage }[] = [
  { label: 'decode', from: 'REQUEST_START', to: 'DECODE_END' },
  { label: 'validate', from: 'DECODE_END', to: 'VALIDATE_END' },
  { label: 'enqueue', from: 'VALIDATE_END', to: 'QUEUE_START' },
  { label: 'queue wait', from: 'QUEUE_START', to: 'COMPUTE_START' },
  { label: 'batch to link', from: 'COMPUTE_START', to: 'WORKER_SEND' },
  { label: 'link to worker', from: 'WORKER_SEND', to: 'WORKER_RECV' },
  { label: 'worker to ORT', from: 'WORKER_RECV', to: 'COMPUTE_INPUT_END' },
  { label: 'ORT run', from: 'COMPUTE_INPUT_END', to: 'COMPUTE_OUTPUT_START' },
  { label: 'worker reply', from: 'COMPUTE_OUTPUT_START', to: 'WORKER_REPLY' },
  { label: 'reply to split', from: 'WORKER_REPLY', to: 'COMPUTE_END' },
  { label: 'encode', from: 'COMPUTE_END', to: 'ENCODE_END' },
  { label: 'write', from: 'ENCODE_END', to: 'REQUEST_END' },
  { label: 'total', from: 'REQUEST_START', to: 'REQUEST_END' },
];

const STAGE_INDEX = new Map<string, number>(TRACE_STAGES.map((s, i) => [s, i]));
const START = STAGE_INDEX.get('REQUEST_START')!;

/** One trace as kept: its model and its stamps by TRACE_STAGES index (NaN where a stage is missing). */
export interface KeptTrace {
  readonly model: string;
  readonly ns: Float64Array;
}

interface TraceFileItem {
  readonly model_name?: unknown;
  readonly timestamps?: readonly { readonly name?: unknown; readonly ns?: unknown }[];
}

/**
 * Reads the trace files a sluice server writes, incrementally: each call to readNew() takes the files
 * that appeared since the last. Only traces that began at or after `sinceNs` are kept.
 */
export class TraceReader {
  readonly #dir: string;
  readonly #base: string;
  readonly #sinceNs: number;
  readonly #traces: KeptTrace[] = [];
  #next = 0;
  #latestStartNs = -Infinity;

  constructor(prefix: string, sinceNs: number) {
    this.#dir = dirname(prefix);
    this.#base = `${basename(prefix)}.`;
    this.#sinceNs = sinceNs;
  }

  /** The latest REQUEST_START read: the traces of a window that ended after it may still be in sluice's buffer. */
  get latestStartNs(): number {
    return this.#latestStartNs;
  }

  /**
   * Reads the files written since the last call. sluice writes them one after another, so only the
   * newest can be half-written: when it does not parse, it is retried a few times, then left for the
   * next call. An older file that does not parse is skipped.
   */
  async readNew(retries = 5): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      const pending = await this.#poll();
      if (!pending || attempt >= retries) return;
      await sleep(100);
    }
  }

  /** The kept traces of `model` whose REQUEST_START falls in one of the windows. */
  within(model: string, windows: readonly RunWindow[]): KeptTrace[] {
    return this.#traces.filter((t) => t.model === model && windows.some((w) => t.ns[START]! >= w.startNs && t.ns[START]! <= w.endNs));
  }

  /** Reads the new files in index order; true when the newest did not parse (still being written). */
  async #poll(): Promise<boolean> {
    const indices = (await readdir(this.#dir))
      .filter((f) => f.startsWith(this.#base) && /^\d+$/.test(f.slice(this.#base.length)))
      .map((f) => Number(f.slice(this.#base.length)))
      .filter((n) => n >= this.#next)
      .sort((a, b) => a - b);
    for (const n of indices) {
      let items: unknown;
      try {
        items = JSON.parse(await readFile(join(this.#dir, `${this.#base}${n}`), 'utf8'));
      } catch {
        if (n === indices.at(-1)) return true;
        this.#next = n + 1;
        continue;
      }
      if (Array.isArray(items)) for (const item of items as TraceFileItem[]) this.#keep(item);
      this.#next = n + 1;
    }
    return false;
  }

  #keep(item: TraceFileItem): void {
    const ns = new Float64Array(TRACE_STAGES.length).fill(NaN);
    for (const ts of item.timestamps ?? []) {
      const i = STAGE_INDEX.get(String(ts.name));
      if (i !== undefined && typeof ts.ns === 'number') ns[i] = ts.ns;
    }
    const start = ns[START]!;
    if (!(start >= this.#sinceNs)) return;
    if (start > this.#latestStartNs) this.#latestStartNs = start;
    this.#traces.push({ model: String(item.model_name), ns });
  }
}

/** One interval over a set of traces, in microseconds; `count` traces had both of its stages. */
interface IntervalStats {
  readonly label: string;
  readonly count: number;
  readonly medianUs: number | undefined;
  readonly p99Us: number | undefined;
}

/** Nearest-rank quantile of sorted values. */
function quantile(sorted: readonly number[], q: number): number | undefined {
  return sorted.length === 0 ? undefined : sorted[Math.max(0, Math.ceil(q * sorted.length) - 1)];
}

/** Every interval of STAGE_INTERVALS over the traces; a trace missing either stage of one is skipped for it. */
function intervalStats(traces: readonly KeptTrace[]): IntervalStats[] {
  return STAGE_INTERVALS.map(({ label, from, to }) => {
    const a = STAGE_INDEX.get(from)!;
    const b = STAGE_INDEX.get(to)!;
    const us = traces.map((t) => (t.ns[b]! - t.ns[a]!) / 1000).filter((v) => Number.isFinite(v)).sort((x, y) => x - y);
    return { label, count: us.length, medianUs: quantile(us, 0.5), p99Us: quantile(us, 0.99) };
  });
}

/** What one rate's row says in words: where the median goes, where the tail is, how much the server covers. */
function rowSentence(rate: string, stats: readonly IntervalStats[], clientP50Ms: number): string {
  const total = stats.at(-1)!;
  const parts = stats.slice(0, -1).filter((s) => s.medianUs !== undefined);
  if (total.medianUs === undefined || parts.length === 0) return `at ${rate} req/s no trace fell in the measured windows`;
  const byMedian = parts.reduce((x, y) => (y.medianUs! > x.medianUs! ? y : x));
  const byTail = parts.reduce((x, y) => ((y.p99Us ?? 0) > (x.p99Us ?? 0) ? y : x));
  const share = (100 * total.medianUs) / (clientP50Ms * 1000);
  return `at ${rate} req/s the server's median total is ${n0(total.medianUs)} us (${n0(share)}% of the client's P50), its largest stage ${byMedian.label} (median ${n0(byMedian.medianUs)} us, ${n0((100 * byMedian.medianUs!) / total.medianUs)}% of the total), its largest tail ${byTail.label} (P99 ${n0(byTail.p99Us)} us)`;
}

/**
 * The breakdown table under one of (g)'s tables: a row per sluice rate, from the traces of every run of
 * that rate pooled, and a sentence computed from it.
 */
export function stageBreakdown(reader: TraceReader, model: string, sluiceRows: readonly Measured[]): string {
  const rows: string[][] = [];
  const sentences: string[] = [];
  let incomplete = false;
  for (const m of sluiceRows) {
    const rate = n0(m.spec.mode === 'open' ? m.spec.rate : undefined);
    const stats = intervalStats(reader.within(model, m.windows));
    const total = stats.at(-1)!;
    if (m.windows.some((w) => w.endNs > reader.latestStartNs)) incomplete = true;
    rows.push([rate, String(total.count), ...stats.map((s) => n0(s.medianUs)), n0(total.p99Us), total.medianUs === undefined ? '–' : `${n0((100 * total.medianUs) / (m.p50 * 1000))}%`]);
    sentences.push(rowSentence(rate, stats, m.p50));
  }
  const text = `From the traces: ${sentences.join('; ')}.${incomplete ? ` (sluice writes its traces every ${TRACE_LOG_FREQUENCY}: some of the last run's were still in its buffer when these were read.)` : ''}`;
  return [
    mdTable(['offered req/s', 'traces', ...STAGE_INTERVALS.map((s) => `${s.label} us`), 'total P99 us', 'server total / client P50'], rows),
    '',
    text,
  ].join('\n');
}
