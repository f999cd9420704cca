import type { TraceConfig } from '../config/schema.ts';
import type { Protocol } from '../core/inference.ts';
import { TRACE_STAGES, traceNow, type BatchTimestamps, type RequestTrace, type TraceStage } from '../core/trace.ts';
import type { Logger } from './logger.ts';
import { TraceFileSink, type FinishedTrace, type TraceSink, type TraceSinkStats } from './trace-file.ts';
import { OtlpSink } from './trace-otlp.ts';
import { settingsFromConfig, tracingOn, type TraceSettings, type TraceSettingsUpdate } from './trace-settings.ts';

/** A sampled request's trace as a front door holds it: the core RequestTrace plus what only the door knows. */
export interface FrontDoorTrace extends RequestTrace {
  /** The client's request id and the version that served the request (either may stay ''). */
  identify(requestId: string, version: string): void;
}

/** What the tracer has done, read at scrape time. */
export interface TracerStats {
  /** Requests sampled for tracing. */
  readonly sampled: number;
  /** Traces ended and handed to the sink. */
  readonly finished: number;
  /** Per sink ('file' or 'otlp'), when one is configured. */
  readonly sinks: Readonly<Record<string, TraceSinkStats>>;
}

const STAGE_INDEX = Object.fromEntries(TRACE_STAGES.map((s, i) => [s, i])) as Record<TraceStage, number>;

/** One scope's settings and its sampling state (Triton keeps a sample counter and a count per setting). */
interface Scope {
  settings: TraceSettings;
  /** Requests seen: every `rate`-th is traced. */
  seen: number;
  /** Traces still to take (-1 = unlimited): what trace_count reports. */
  remaining: number;
}

type Override = { -readonly [K in keyof TraceSettingsUpdate]?: NonNullable<TraceSettingsUpdate[K]> };

class SampledTrace implements FrontDoorTrace {
  readonly id: number;
  readonly #ns: number[] = new Array<number>(TRACE_STAGES.length).fill(-1);
  readonly #model: string;
  readonly #protocol: Protocol;
  readonly #done: (t: FinishedTrace) => void;
  #requestId = '';
  #version = '';
  #ended = false;

  constructor(id: number, model: string, protocol: Protocol, done: (t: FinishedTrace) => void) {
    this.id = id;
    this.#model = model;
    this.#protocol = protocol;
    this.#done = done;
  }

  mark(stage: TraceStage, ns: number = traceNow()): void {
    if (!this.#ended) this.#ns[STAGE_INDEX[stage]] = ns;
  }

  markBatch(b: BatchTimestamps): void {
    if (this.#ended) return;
    this.#ns[STAGE_INDEX.WORKER_SEND] = b.workerSendNs;
    this.#ns[STAGE_INDEX.WORKER_RECV] = b.workerRecvNs;
    this.#ns[STAGE_INDEX.COMPUTE_INPUT_END] = b.computeInputEndNs;
    this.#ns[STAGE_INDEX.COMPUTE_OUTPUT_START] = b.computeOutputStartNs;
    this.#ns[STAGE_INDEX.WORKER_REPLY] = b.workerReplyNs;
  }

  identify(requestId: string, version: string): void {
    if (requestId !== '') this.#requestId = requestId;
    if (version !== '') this.#version = version;
  }

  end(ns: number = traceNow()): void {
    if (this.#ended) return;
    this.#ns[STAGE_INDEX.REQUEST_END] = ns;
    this.#ended = true;
    const timestamps: { name: TraceStage; ns: number }[] = [];
    for (let i = 0; i < TRACE_STAGES.length; i++) {
      const v = this.#ns[i]!;
      if (v >= 0) timestamps.push({ name: TRACE_STAGES[i]!, ns: v });
    }
    this.#done({ id: this.id, model: this.#model, version: this.#version, requestId: this.#requestId, protocol: this.#protocol, timestamps });
  }
}

/** What the tracer is built from. */
export interface TracerOptions {
  readonly config: TraceConfig;
  readonly logger: Logger;
  /** Names the OTLP resource (service.name, service.version). */
  readonly service?: { readonly name: string; readonly version: string };
  /** A sink other than the configured one (tests, embedders). */
  readonly sink?: TraceSink;
}

/**
 * Triton's trace extension, trace_level TIMESTAMPS: global settings with per-model overrides, Triton's
 * sampling (one request in every trace_rate, trace_count of them), and one sink chosen by trace_mode.
 * A model without overrides shares the global scope and its counters, as in Triton.
 */
export class Tracer {
  readonly #initial: TraceSettings;
  readonly #global: Scope;
  readonly #models = new Map<string, { override: Override; scope: Scope }>();
  readonly #sink: TraceSink | undefined;
  readonly #sinkName: string;
  #nextId = 1;
  #sampled = 0;
  #finished = 0;
  #closing: Promise<void> | undefined;

  constructor(opts: TracerOptions) {
    const initial = settingsFromConfig(opts.config);
    this.#initial = initial;
    this.#global = { settings: initial, seen: 0, remaining: initial.count };
    const logger = opts.logger;
    if (opts.sink) {
      this.#sink = opts.sink;
      this.#sinkName = 'custom';
    } else if (initial.mode === 'opentelemetry') {
      if (opts.config.otlpUrl === '') throw new Error('trace mode opentelemetry needs an OTLP collector URL');
      this.#sink = new OtlpSink({ url: opts.config.otlpUrl, logger, service: opts.service ?? { name: 'sluice', version: '0.0.0' } });
      this.#sinkName = 'otlp';
    } else {
      this.#sink = initial.file === '' ? undefined : new TraceFileSink({ file: initial.file, logger });
      this.#sinkName = 'file';
    }
  }

  /**
   * Decides whether to trace a request that just arrived, and if so starts its trace (REQUEST_START now,
   * unless given). Cheap when tracing is off: one lookup and a comparison.
   */
  start(model: string, protocol: Protocol, ns?: number): FrontDoorTrace | undefined {
    const scope = this.#models.size === 0 ? this.#global : (this.#models.get(model)?.scope ?? this.#global);
    const s = scope.settings;
    if (scope.remaining === 0 || !tracingOn(s)) return undefined;
    if (++scope.seen % s.rate !== 0) return undefined;
    let last = false;
    if (scope.remaining > 0) last = --scope.remaining === 0;
    this.#sampled++;
    const trace = new SampledTrace(this.#nextId++, model.slice(0, 200), protocol, (t) => this.#finish(t, s, last));
    trace.mark('REQUEST_START', ns);
    return trace;
  }

  /** The settings that apply to a model ('' = the global ones), trace_count as what is left of it. */
  settings(model = ''): TraceSettings {
    const scope = model === '' ? this.#global : (this.#models.get(model)?.scope ?? this.#global);
    return { ...scope.settings, count: scope.remaining };
  }

  /**
   * Applies an update to the global settings (model '') or a model's overrides and returns the settings
   * now in force there. Globally, null restores the value sluice started with; for a model, null drops
   * the override so the global value applies again. A model whose overrides are all gone shares the
   * global scope again.
   */
  update(model: string, update: TraceSettingsUpdate): TraceSettings {
    if (model === '') this.#updateGlobal(update);
    else this.#updateModel(model, update);
    return this.settings(model);
  }

  stats(): TracerStats {
    const sinks: Record<string, TraceSinkStats> = {};
    if (this.#sink) sinks[this.#sinkName] = this.#sink.stats();
    return { sampled: this.#sampled, finished: this.#finished, sinks };
  }

  /** Writes (or exports) what the sink still holds; traces ending later are dropped. */
  close(): Promise<void> {
    return (this.#closing ??= this.#sink?.close() ?? Promise.resolve());
  }

  #finish(t: FinishedTrace, settings: TraceSettings, last: boolean): void {
    if (this.#closing !== undefined) return;
    this.#finished++;
    if (!this.#sink) return;
    this.#sink.add(t, settings);
    if (last) this.#sink.countExhausted();
  }

  #updateGlobal(u: TraceSettingsUpdate): void {
    const g = this.#global;
    const next = { ...g.settings } as { -readonly [K in keyof TraceSettings]: TraceSettings[K] };
    if (u.level !== undefined) next.level = u.level ?? this.#initial.level;
    if (u.rate !== undefined) next.rate = u.rate ?? this.#initial.rate;
    if (u.logFrequency !== undefined) next.logFrequency = u.logFrequency ?? this.#initial.logFrequency;
    if (u.count !== undefined) {
      next.count = u.count ?? this.#initial.count;
      g.remaining = next.count;
    }
    g.settings = next;
    // Models follow the global value of every field they do not override, counts included.
    for (const { override, scope } of this.#models.values()) {
      scope.settings = { ...next, ...override };
      if (u.count !== undefined && override.count === undefined) scope.remaining = next.count;
    }
  }

  #updateModel(model: string, u: TraceSettingsUpdate): void {
    let entry = this.#models.get(model);
    if (entry === undefined) {
      // A model's first settings start from the global ones in force, its count from what is left globally.
      entry = { override: {}, scope: { settings: this.#global.settings, seen: 0, remaining: this.#global.remaining } };
    }
    const o = entry.override as Record<string, unknown>;
    for (const [k, v] of Object.entries(u)) {
      if (v === undefined) continue;
      if (v === null) delete o[k];
      else o[k] = v;
    }
    if (Object.keys(o).length === 0) {
      this.#models.delete(model);
      return;
    }
    entry.scope.settings = { ...this.#global.settings, ...entry.override };
    if (u.count !== undefined) entry.scope.remaining = entry.override.count ?? this.#global.remaining;
    this.#models.set(model, entry);
  }
}
