import { randomBytes } from 'node:crypto';
import { Agent, request } from 'undici';
import type { TraceStage } from '../core/trace.ts';
import type { Logger } from './logger.ts';
import { TRACE_BUFFER_CAPACITY, type FinishedTrace, type TraceSink, type TraceSinkStats } from './trace-file.ts';

/** What each stage's child span is called: the interval that ends at that stage. */
const INTERVAL_NAMES: Readonly<Record<TraceStage, string>> = {
  REQUEST_START: 'request',
  DECODE_END: 'decode',
  VALIDATE_END: 'validate',
  QUEUE_START: 'enqueue',
  COMPUTE_START: 'queue',
  WORKER_SEND: 'dispatch',
  WORKER_RECV: 'worker_transit',
  COMPUTE_INPUT_END: 'compute_input',
  COMPUTE_OUTPUT_START: 'compute_infer',
  WORKER_REPLY: 'compute_output',
  COMPUTE_END: 'worker_return',
  ENCODE_END: 'encode',
  REQUEST_END: 'send',
};

/** OTLP span kinds (opentelemetry-proto trace.proto). */
const SPAN_KIND_INTERNAL = 1;
const SPAN_KIND_SERVER = 2;

type Attribute = { key: string; value: { stringValue: string } | { intValue: string } };

function str(key: string, value: string): Attribute {
  return { key, value: { stringValue: value } };
}

/**
 * The trace clock is monotonic with an arbitrary origin; OTLP wants Unix-epoch nanoseconds. The offset
 * is taken once, so spans keep the monotonic clock's spacing even if the wall clock steps.
 */
const EPOCH_OFFSET_NS = BigInt(Date.now()) * 1_000_000n - process.hrtime.bigint();

function unixNano(ns: number): string {
  return (BigInt(Math.round(ns)) + EPOCH_OFFSET_NS).toString();
}

/** The collector's traces endpoint: {url}/v1/traces, unless the URL already names it. */
export function otlpTracesUrl(base: string): string {
  const trimmed = base.replace(/\/+$/, '');
  return trimmed.endsWith('/v1/traces') ? trimmed : `${trimmed}/v1/traces`;
}

/**
 * One OTLP span per request (REQUEST_START to REQUEST_END, kind SERVER, the stage stamps as events) and
 * one child span per interval between consecutive marked stages (what Jaeger and Tempo draw as a
 * waterfall). Ids are random hex: 16 bytes per trace, 8 per span.
 */
export function otlpSpans(t: FinishedTrace): object[] {
  const stamps = t.timestamps;
  const first = stamps[0];
  const last = stamps[stamps.length - 1];
  if (first === undefined || last === undefined) return [];
  const ids = randomBytes(16 + 8 * stamps.length);
  const traceId = ids.subarray(0, 16).toString('hex');
  const rootId = ids.subarray(16, 24).toString('hex');
  const attributes: Attribute[] = [
    str('triton.model_name', t.model),
    str('triton.model_version', t.version),
    str('sluice.protocol', t.protocol),
    { key: 'triton.trace_id', value: { intValue: String(t.id) } },
  ];
  if (t.requestId !== '') attributes.push(str('triton.request_id', t.requestId));
  const spans: object[] = [{
    traceId,
    spanId: rootId,
    name: 'InferRequest',
    kind: SPAN_KIND_SERVER,
    startTimeUnixNano: unixNano(first.ns),
    endTimeUnixNano: unixNano(last.ns),
    attributes,
    events: stamps.map((s) => ({ timeUnixNano: unixNano(s.ns), name: s.name })),
    status: {},
  }];
  for (let i = 1; i < stamps.length; i++) {
    const from = stamps[i - 1]!;
    const to = stamps[i]!;
    // A remote worker host stamps on its own clock: an interval that runs backwards is left out.
    if (to.ns < from.ns) continue;
    spans.push({
      traceId,
      spanId: ids.subarray(16 + 8 * i, 24 + 8 * i).toString('hex'),
      parentSpanId: rootId,
      name: INTERVAL_NAMES[to.name],
      kind: SPAN_KIND_INTERNAL,
      startTimeUnixNano: unixNano(from.ns),
      endTimeUnixNano: unixNano(to.ns),
      attributes: [str('sluice.stage.start', from.name), str('sluice.stage.end', to.name)],
      status: {},
    });
  }
  return spans;
}

/** An OTLP/HTTP JSON ExportTraceServiceRequest for a batch of traces. */
export function otlpRequest(traces: readonly FinishedTrace[], service: { name: string; version: string }): object {
  return {
    resourceSpans: [{
      resource: { attributes: [str('service.name', service.name), str('service.version', service.version)] },
      scopeSpans: [{ scope: { name: 'sluice', version: service.version }, spans: traces.flatMap(otlpSpans) }],
    }],
  };
}

/** How the exporter batches; the defaults suit a collector on the same network. */
export interface OtlpSinkOptions {
  readonly url: string;
  readonly logger: Logger;
  readonly service: { readonly name: string; readonly version: string };
  /** Export as soon as this many traces are held. */
  readonly batchSize?: number;
  /** ...or this long after the first trace of a batch arrived. */
  readonly intervalMs?: number;
  readonly capacity?: number;
  readonly timeoutMs?: number;
}

/**
 * Mode opentelemetry's sink: batches finished traces and POSTs them as OTLP/HTTP JSON. One export is in
 * flight at a time; requests never wait on it. A full buffer drops its oldest traces; a failed export is
 * logged and counted and its traces are dropped (a collector that is down must not grow sluice's memory).
 */
export class OtlpSink implements TraceSink {
  readonly #url: string;
  readonly #o: OtlpSinkOptions;
  readonly #agent = new Agent({ keepAliveTimeout: 10_000, connections: 2 });
  readonly #batchSize: number;
  readonly #capacity: number;
  #buffer: FinishedTrace[] = [];
  #timer: NodeJS.Timeout | undefined;
  #inflight: Promise<void> | undefined;
  #closed = false;
  #written = 0;
  #dropped = 0;
  #failures = 0;

  constructor(opts: OtlpSinkOptions) {
    this.#url = otlpTracesUrl(opts.url);
    this.#o = opts;
    this.#batchSize = opts.batchSize ?? 100;
    this.#capacity = opts.capacity ?? TRACE_BUFFER_CAPACITY;
  }

  add(trace: FinishedTrace): void {
    if (this.#closed) return;
    if (this.#buffer.length >= this.#capacity) {
      this.#buffer.shift();
      this.#dropped++;
    }
    this.#buffer.push(trace);
    if (this.#buffer.length >= this.#batchSize) this.#export();
    else this.#timer ??= setTimeout(() => this.#export(), this.#o.intervalMs ?? 1000).unref();
  }

  countExhausted(): void {
    this.#export();
  }

  async close(): Promise<void> {
    this.#closed = true;
    while (this.#inflight !== undefined || this.#buffer.length > 0) {
      if (this.#inflight === undefined) this.#export();
      await this.#inflight;
    }
    clearTimeout(this.#timer);
    await this.#agent.close();
  }

  stats(): TraceSinkStats {
    return { written: this.#written, dropped: this.#dropped, failures: this.#failures };
  }

  #export(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#inflight !== undefined || this.#buffer.length === 0) return;
    const batch = this.#buffer.splice(0, Math.max(this.#batchSize, 1));
    this.#inflight = this.#post(batch).finally(() => {
      this.#inflight = undefined;
      if (this.#closed) return;
      if (this.#buffer.length >= this.#batchSize) this.#export();
      else if (this.#buffer.length > 0) this.#timer ??= setTimeout(() => this.#export(), this.#o.intervalMs ?? 1000).unref();
    });
  }

  async #post(batch: readonly FinishedTrace[]): Promise<void> {
    const timeout = this.#o.timeoutMs ?? 5000;
    try {
      const res = await request(this.#url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(otlpRequest(batch, this.#o.service)),
        dispatcher: this.#agent,
        headersTimeout: timeout,
        bodyTimeout: timeout,
      });
      const text = await res.body.text();
      if (res.statusCode >= 300) throw new Error(`the collector answered ${res.statusCode}: ${text.slice(0, 200)}`);
      this.#written += batch.length;
    } catch (e) {
      this.#failures++;
      this.#dropped += batch.length;
      this.#o.logger.warn({ err: e, url: this.#url, traces: batch.length }, 'OTLP trace export failed; its traces are dropped');
    }
  }
}
