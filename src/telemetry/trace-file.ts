import { writeFile } from 'node:fs/promises';
import type { Protocol } from '../core/inference.ts';
import type { TraceStage } from '../core/trace.ts';
import type { Logger } from './logger.ts';
import type { TraceSettings } from './trace-settings.ts';

/** One finished request trace, as the sinks receive it. */
export interface FinishedTrace {
  readonly id: number;
  readonly model: string;
  /** The version that served it ('' when the request failed before one was chosen). */
  readonly version: string;
  /** The client's request id ('' = none). */
  readonly requestId: string;
  readonly protocol: Protocol;
  /** The marked stages in path order (TRACE_STAGES), trace-clock nanoseconds. */
  readonly timestamps: readonly { readonly name: TraceStage; readonly ns: number }[];
}

/** Counters of one sink, read at scrape time. */
export interface TraceSinkStats {
  /** Traces written out (to a file, or accepted by the collector). */
  readonly written: number;
  /** Traces dropped because the sink's buffer was full. */
  readonly dropped: number;
  /** Failed writes or exports (each may have carried many traces). */
  readonly failures: number;
}

/** Where finished traces go. add() never blocks and never throws: writing happens later. */
export interface TraceSink {
  add(trace: FinishedTrace, settings: TraceSettings): void;
  /** The trace that used up a trace_count ended: Triton writes what it holds now, whatever log_frequency says. */
  countExhausted(): void;
  /** Writes whatever is held and waits for writes in flight. */
  close(): Promise<void>;
  stats(): TraceSinkStats;
}

/** Most traces a sink holds before it drops the oldest (a file written only at shutdown must stay bounded). */
export const TRACE_BUFFER_CAPACITY = 4096;

/** Triton's model_version is a number; -1 when no version was resolved. */
function versionNumber(v: string): number {
  return /^\d+$/.test(v) ? Number(v) : -1;
}

/**
 * Triton's trace file: one JSON array. Triton writes each trace as a head object (id, model_name,
 * model_version, request_id) followed by objects with `id` and `timestamps`; its trace_summary.py merges
 * them by id. sluice writes the merged form, one object per trace with all of its timestamps, which the
 * same tools read.
 */
export function traceFileJson(traces: readonly FinishedTrace[]): string {
  const items = traces.map((t) => ({
    id: t.id,
    model_name: t.model,
    model_version: versionNumber(t.version),
    ...(t.requestId === '' ? {} : { request_id: t.requestId }),
    timestamps: t.timestamps,
  }));
  return JSON.stringify(items);
}

/**
 * Mode triton's sink. With log_frequency 0 the traces stay in memory (bounded) and go to trace_file at
 * shutdown; with N > 0 every N traces go to trace_file.<index>, index counting from 0, as Triton names them.
 */
export class TraceFileSink implements TraceSink {
  readonly #file: string;
  readonly #logger: Logger;
  readonly #capacity: number;
  #buffer: FinishedTrace[] = [];
  #index = 0;
  #indexed = false;
  #writes: Promise<void> = Promise.resolve();
  #written = 0;
  #dropped = 0;
  #failures = 0;

  constructor(opts: { file: string; logger: Logger; capacity?: number }) {
    if (opts.file === '') throw new Error('TraceFileSink needs a file');
    this.#file = opts.file;
    this.#logger = opts.logger;
    this.#capacity = opts.capacity ?? TRACE_BUFFER_CAPACITY;
  }

  add(trace: FinishedTrace, settings: TraceSettings): void {
    if (this.#buffer.length >= this.#capacity) {
      this.#buffer.shift();
      this.#dropped++;
    }
    this.#buffer.push(trace);
    this.#indexed = settings.logFrequency > 0;
    if (this.#indexed && this.#buffer.length >= settings.logFrequency) this.#writeIndexed();
  }

  countExhausted(): void {
    if (this.#buffer.length > 0) this.#writeIndexed();
  }

  async close(): Promise<void> {
    if (this.#buffer.length > 0) {
      if (this.#indexed || this.#index > 0) this.#writeIndexed();
      else this.#enqueue(this.#file, this.#take());
    }
    await this.#writes;
  }

  stats(): TraceSinkStats {
    return { written: this.#written, dropped: this.#dropped, failures: this.#failures };
  }

  #take(): FinishedTrace[] {
    const batch = this.#buffer;
    this.#buffer = [];
    return batch;
  }

  #writeIndexed(): void {
    this.#enqueue(`${this.#file}.${this.#index++}`, this.#take());
  }

  /** Writes run one after another so that files appear in index order. */
  #enqueue(path: string, batch: readonly FinishedTrace[]): void {
    this.#writes = this.#writes.then(async () => {
      try {
        await writeFile(path, traceFileJson(batch));
        this.#written += batch.length;
      } catch (e) {
        this.#failures++;
        this.#logger.warn({ err: e, path, traces: batch.length }, 'cannot write the trace file; its traces are lost');
      }
    });
  }
}
