import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { TracerStats } from './trace.ts';
import { WindowQuantiles } from './window-quantiles.ts';
import { GenerationMetrics } from './generation-metrics.ts';

/** Outcome label of a finished request. Bounded set: one value per failure reason. */
export type RequestStatus =
  | 'success'
  | 'invalid'
  | 'not_found'
  | 'queue_full'
  | 'timeout'
  | 'cancelled'
  | 'unavailable'
  | 'worker_failure'
  | 'unimplemented'
  | 'denied'
  | 'rate_limited'
  | 'internal';

/** Label used in place of a model name the repository does not know (keeps label values bounded). */
export const UNKNOWN_MODEL_LABEL = '_unknown';

/** Snapshots read at scrape time (set by the composition root once the components exist). */
export interface MetricSources {
  queueDepth?: () => Iterable<readonly [model: string, depth: number]>;
  /** Each model's max_queue_size, so that depth / limit shows how close a queue is to shedding. */
  queueLimits?: () => Iterable<readonly [model: string, maxQueueSize: number]>;
  workers?: () => Iterable<WorkerSnapshot>;
  gpus?: () => Iterable<GpuSnapshot>;
  /** Input bytes held by accepted, unanswered requests, and the gateway's limit on them. */
  requestMemory?: () => { readonly heldBytes: number; readonly limitBytes: number };
  /** The tracer's counts (Triton's trace extension). */
  trace?: () => TracerStats;
  /** The tenants the auth config names: the only values the tenant label takes. */
  tenants?: () => Iterable<string>;
  /** The response cache's occupancy (absent without --cache-config). */
  responseCache?: () => ResponseCacheSnapshot;
  /** Active sequences per sequence model (Triton's sequence batcher). */
  sequences?: () => Iterable<readonly [model: string, active: number]>;
}

/** The response cache as a whole, read at scrape time. */
export interface ResponseCacheSnapshot {
  readonly entries: number;
  /** Bytes charged for the stored answers (tensor bytes, keys and per-entry overhead). */
  readonly usedBytes: number;
  readonly limitBytes: number;
  /** Entries evicted, least recently used first, to make room. */
  readonly evictions: number;
}

/** One worker's live state, read at scrape time. */
export interface WorkerSnapshot {
  readonly worker: string;
  readonly up: boolean;
  readonly inflightBatches: number;
  readonly memoryUsedBytes: number;
  readonly memoryBudgetBytes: number;
}

/** One GPU's memory and utilization (from nvidia-smi; see gpu.ts). */
export interface GpuSnapshot {
  /** The GPU index as nvidia-smi reports it. */
  readonly gpu: string;
  readonly memoryUsedBytes: number;
  readonly memoryTotalBytes: number;
  /** 0..1 */
  readonly utilization: number;
}

/** Sub-millisecond to multi-second, dense enough that histogram_quantile's P99 stays faithful. */
export const LATENCY_BUCKETS: readonly number[] = [
  0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.0015, 0.002, 0.003, 0.004, 0.005, 0.006, 0.0075, 0.01, 0.0125, 0.015,
  0.02, 0.025, 0.03, 0.04, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1, 2, 5, 10,
];

/** Reasons the scheduler sheds a request (the reason label of sluice_requests_shed_total). */
export const SHED_REASONS: readonly string[] = ['queue_full', 'expected_wait', 'timeout', 'cancelled'];

const BATCH_BUCKETS: readonly number[] = [...Array.from({ length: 32 }, (_, i) => i + 1), 48, 64, 128];

/**
 * Every metric sluice exports, on one Registry of its own (never prom-client's global one). Components
 * record into the fields; gauges of live state read MetricSources at scrape time.
 */
export class Metrics {
  readonly registry: Registry;
  readonly sources: MetricSources = {};

  readonly requestDuration: Histogram<'model' | 'protocol' | 'status'>;
  readonly requestDurationSummary: WindowQuantiles;
  readonly requests: Counter<'model' | 'protocol' | 'status'>;
  readonly queueDuration: Histogram<'model'>;
  readonly requestsShed: Counter<'model' | 'reason'>;
  readonly batchSize: Histogram<'model'>;
  readonly batches: Counter<'model'>;
  readonly inferences: Counter<'model'>;
  readonly batchCompute: Histogram<'model'>;
  readonly workerRestarts: Counter<'worker'>;
  readonly batchRetries: Counter<'model'>;
  readonly workerBusy: Counter<'worker'>;
  readonly modelLoads: Counter<'model' | 'result'>;
  readonly modelEvictions: Counter<'model'>;
  readonly modelLoadDuration: Histogram<'model'>;
  readonly cacheLookups: Counter<'model' | 'result'>;
  readonly responseCacheLookups: Counter<'model' | 'result'>;
  readonly responseCacheLookupDuration: Histogram<'model' | 'result'>;
  readonly tenantRequests: Counter<'tenant' | 'status'>;
  readonly tenantRows: Counter<'tenant'>;
  readonly tenantShed: Counter<'tenant' | 'reason'>;
  readonly tenantDuration: Histogram<'tenant'>;
  readonly generation: GenerationMetrics;

  constructor(options: { defaultMetrics?: boolean } = {}) {
    const registry = new Registry();
    this.registry = registry;
    const registers = [registry];
    const sources = this.sources;
    // Prometheus best practice: a counter that exists at 0 lets rate() and alerts see "none yet" instead
    // of "no data". Rare-event counters are created at 0 for every model the scheduler reports.
    const zeroFill = (counter: Counter<string>, extras: readonly Readonly<Record<string, string>>[]): void => {
      const models = new Set<string>();
      for (const [model] of sources.queueDepth?.() ?? []) models.add(model);
      for (const [model] of sources.queueLimits?.() ?? []) models.add(model);
      for (const model of models) for (const extra of extras) counter.inc({ ...extra, model }, 0);
    };
    this.requestDuration = new Histogram({ name: 'sluice_request_duration_seconds', help: 'End-to-end request latency from arrival to response, by model, protocol and status.', labelNames: ['model', 'protocol', 'status'], buckets: [...LATENCY_BUCKETS], registers });
    this.requestDurationSummary = new WindowQuantiles({ name: 'sluice_request_duration_quantiles_seconds', help: 'End-to-end latency of successful requests over a sliding 60 s window (per-instance P50/P95/P99).', labelNames: ['model', 'protocol'], percentiles: [0.5, 0.95, 0.99], maxAgeSeconds: 60, ageBuckets: 3, registers });
    this.requests = new Counter({ name: 'sluice_requests_total', help: 'Inference requests finished, by model, protocol and status.', labelNames: ['model', 'protocol', 'status'], registers });
    this.queueDuration = new Histogram({ name: 'sluice_queue_duration_seconds', help: 'Time requests spent queued before their batch was sent to a worker.', labelNames: ['model'], buckets: [...LATENCY_BUCKETS], registers });
    this.requestsShed = new Counter({ name: 'sluice_requests_shed_total', help: 'Requests dropped by the scheduler before running, by reason (queue_full, expected_wait, timeout, cancelled).', labelNames: ['model', 'reason'], registers, collect() { zeroFill(this, SHED_REASONS.map((reason) => ({ reason }))); } });
    this.batchSize = new Histogram({ name: 'sluice_batch_size_rows', help: 'Rows per executed batch.', labelNames: ['model'], buckets: [...BATCH_BUCKETS], registers });
    this.batches = new Counter({ name: 'sluice_batches_total', help: 'Batches executed (Triton execution_count).', labelNames: ['model'], registers });
    this.inferences = new Counter({ name: 'sluice_inferences_total', help: 'Rows inferred (Triton inference_count).', labelNames: ['model'], registers });
    this.batchCompute = new Histogram({ name: 'sluice_batch_compute_duration_seconds', help: 'Worker compute time per batch (ONNX Runtime session.run plus tensor copies).', labelNames: ['model'], buckets: [...LATENCY_BUCKETS], registers });
    this.workerRestarts = new Counter({ name: 'sluice_worker_restarts_total', help: 'Local worker processes respawned after they died.', labelNames: ['worker'], registers, collect() { for (const w of sources.workers?.() ?? []) this.inc({ worker: w.worker }, 0); } });
    this.workerBusy = new Counter({ name: 'sluice_worker_busy_total', help: 'Batches a worker host refused as busy (its queue, shared with other gateways, was full); each went back to its model\'s queue.', labelNames: ['worker'], registers });
    this.batchRetries = new Counter({ name: 'sluice_batch_retries_total', help: 'Batches retried on another worker after a worker failure.', labelNames: ['model'], registers, collect() { zeroFill(this, [{}]); } });
    this.modelLoads = new Counter({ name: 'sluice_model_loads_total', help: 'Model loads on workers, by result (success, failure).', labelNames: ['model', 'result'], registers, collect() { zeroFill(this, [{ result: 'success' }, { result: 'failure' }]); } });
    this.modelEvictions = new Counter({ name: 'sluice_model_evictions_total', help: 'Models evicted from a worker hot-model cache to stay within its memory budget.', labelNames: ['model'], registers, collect() { zeroFill(this, [{}]); } });
    this.modelLoadDuration = new Histogram({ name: 'sluice_model_load_duration_seconds', help: 'Time to load a model into a worker, warmup included.', labelNames: ['model'], buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60], registers });
    const zeroTenants = (counter: Counter<string>, extras: readonly Readonly<Record<string, string>>[]): void => {
      for (const tenant of sources.tenants?.() ?? []) for (const extra of extras) counter.inc({ ...extra, tenant }, 0);
    };
    this.tenantRequests = new Counter({ name: 'sluice_tenant_requests_total', help: 'Inference requests finished per tenant of the auth config, by status.', labelNames: ['tenant', 'status'], registers, collect() { zeroTenants(this, [{ status: 'success' }]); } });
    this.tenantRows = new Counter({ name: 'sluice_tenant_rows_total', help: 'Rows accepted for inference per tenant (what fair queuing and the row rate limit count).', labelNames: ['tenant'], registers, collect() { zeroTenants(this, [{}]); } });
    this.tenantShed = new Counter({ name: 'sluice_tenant_shed_total', help: 'Requests of a tenant refused before running, by reason (rate_limited: its own limit; queue_full: the model queue or its wait budget).', labelNames: ['tenant', 'reason'], registers, collect() { zeroTenants(this, [{ reason: 'rate_limited' }, { reason: 'queue_full' }]); } });
    this.generation = new GenerationMetrics(registry);
    this.tenantDuration = new Histogram({ name: 'sluice_tenant_request_duration_seconds', help: 'End-to-end latency of successful inference requests per tenant.', labelNames: ['tenant'], buckets: [...LATENCY_BUCKETS], registers });
    this.cacheLookups = new Counter({ name: 'sluice_model_cache_lookups_total', help: 'Hot-model cache lookups per batch, by result (hit, miss).', labelNames: ['model', 'result'], registers, collect() { zeroFill(this, [{ result: 'hit' }, { result: 'miss' }]); } });
    this.responseCacheLookups = new Counter({ name: 'sluice_response_cache_lookups_total', help: 'Response cache lookups of requests for models that enable the cache, by result (hit, miss).', labelNames: ['model', 'result'], registers });
    this.responseCacheLookupDuration = new Histogram({ name: 'sluice_response_cache_lookup_duration_seconds', help: 'Time to look up a request in the response cache (hit: and extract its answer; miss: and store the computed answer), by result.', labelNames: ['model', 'result'], buckets: [...LATENCY_BUCKETS], registers });
    const cacheGauge = (name: string, help: string, pick: (c: ResponseCacheSnapshot) => number): void => {
      new Gauge({ name, help, registers, collect() { const c = sources.responseCache?.(); if (c) this.set(pick(c)); } });
    };
    cacheGauge('sluice_response_cache_used_bytes', 'Bytes the response cache charges for its stored answers (tensors, keys, overhead).', (c) => c.usedBytes);
    cacheGauge('sluice_response_cache_limit_bytes', 'Byte budget of the response cache (--cache-config local,size).', (c) => c.limitBytes);
    cacheGauge('sluice_response_cache_entries', 'Answers held by the response cache.', (c) => c.entries);
    new Gauge({
      name: 'sluice_sequences_active', help: 'Sequences holding a slot of a sequence model (started, not yet ended or idled out).', labelNames: ['model'], registers,
      collect() {
        this.reset();
        for (const [model, n] of sources.sequences?.() ?? []) this.set({ model }, n);
      },
    });
    new Counter({ name: 'sluice_response_cache_evictions_total', help: 'Answers evicted from the response cache, least recently used first, to make room.', registers, collect() { this.reset(); this.inc(sources.responseCache?.().evictions ?? 0); } });
    new Gauge({
      name: 'sluice_queue_depth', help: 'Requests waiting in the model queue.', labelNames: ['model'], registers,
      collect() {
        this.reset();
        for (const [model, depth] of sources.queueDepth?.() ?? []) this.set({ model }, depth);
      },
    });
    new Gauge({
      name: 'sluice_queue_max_size', help: 'Largest number of requests the model queue holds before it sheds (max_queue_size).', labelNames: ['model'], registers,
      collect() {
        this.reset();
        for (const [model, max] of sources.queueLimits?.() ?? []) this.set({ model }, max);
      },
    });
    new Gauge({
      name: 'sluice_request_memory_bytes', help: 'Input bytes held by accepted requests not yet answered, all models together.', registers,
      collect() {
        const m = sources.requestMemory?.();
        if (m) this.set(m.heldBytes);
      },
    });
    new Gauge({
      name: 'sluice_request_memory_limit_bytes', help: 'Most input bytes accepted requests may hold before new ones are refused (--max-request-memory).', registers,
      collect() {
        const m = sources.requestMemory?.();
        if (m) this.set(m.limitBytes);
      },
    });
    // The tracer counts on its own (it sits on the request path); these mirror its snapshot at scrape time.
    new Counter({
      name: 'sluice_traces_total', help: 'Requests the tracer sampled and finished (trace extension).', registers,
      collect() {
        const t = sources.trace?.();
        this.reset();
        this.inc(t?.finished ?? 0);
      },
    });
    const sinkCounter = (name: string, help: string, pick: (s: { dropped: number; failures: number }) => number): void => {
      new Counter({
        name, help, labelNames: ['sink'], registers,
        collect() {
          this.reset();
          for (const [sink, stats] of Object.entries(sources.trace?.().sinks ?? {})) this.inc({ sink }, pick(stats));
        },
      });
    };
    sinkCounter('sluice_traces_dropped_total', 'Finished traces a trace sink dropped (its buffer was full, or an export failed), by sink (file, otlp).', (s) => s.dropped);
    sinkCounter('sluice_trace_write_failures_total', 'Failed trace file writes or OTLP exports, by sink (file, otlp).', (s) => s.failures);
    const workerGauge = (name: string, help: string, pick: (w: WorkerSnapshot) => number): void => {
      new Gauge({
        name, help, labelNames: ['worker'], registers,
        collect() {
          this.reset();
          for (const w of sources.workers?.() ?? []) this.set({ worker: w.worker }, pick(w));
        },
      });
    };
    workerGauge('sluice_worker_up', 'Whether the worker is healthy (1) or ejected (0).', (w) => (w.up ? 1 : 0));
    workerGauge('sluice_worker_inflight_batches', 'Batches sent to the worker and not yet answered.', (w) => w.inflightBatches);
    workerGauge('sluice_worker_memory_used_bytes', 'Estimated bytes of models held in the worker hot-model cache.', (w) => w.memoryUsedBytes);
    workerGauge('sluice_worker_memory_budget_bytes', 'Hot-model cache memory budget of the worker.', (w) => w.memoryBudgetBytes);
    const gpuGauge = (name: string, help: string, pick: (g: GpuSnapshot) => number): void => {
      new Gauge({
        name, help, labelNames: ['gpu'], registers,
        collect() {
          this.reset();
          for (const g of sources.gpus?.() ?? []) {
            // A field the driver cannot report (NaN) is left out rather than exported as a made-up value.
            const value = pick(g);
            if (Number.isFinite(value)) this.set({ gpu: g.gpu }, value);
          }
        },
      });
    };
    gpuGauge('sluice_gpu_memory_used_bytes', 'GPU memory in use (absent without a GPU).', (g) => g.memoryUsedBytes);
    gpuGauge('sluice_gpu_memory_total_bytes', 'GPU memory in total (absent without a GPU).', (g) => g.memoryTotalBytes);
    gpuGauge('sluice_gpu_utilization_ratio', 'GPU utilization, 0..1 (absent without a GPU).', (g) => g.utilization);

    if (options.defaultMetrics !== false) collectDefaultMetrics({ register: registry, prefix: 'sluice_' });
    // prom-client's nodejs_active_*_total are gauges whose names claim to be counters; promtool rejects them.
    for (const name of ['sluice_nodejs_active_handles_total', 'sluice_nodejs_active_requests_total', 'sluice_nodejs_active_resources_total']) {
      registry.removeSingleMetric(name);
    }
  }

  /** Records one finished request (every front door calls this exactly once per request). */
  observeRequest(model: string, protocol: string, status: RequestStatus, seconds: number): void {
    this.requests.inc({ model, protocol, status });
    this.requestDuration.observe({ model, protocol, status }, seconds);
    if (status === 'success') this.requestDurationSummary.observe({ model, protocol }, seconds);
  }

  /** One finished request of a tenant the auth config names (front doors call it only for those). */
  observeTenantRequest(tenant: string, status: RequestStatus, seconds: number): void {
    this.tenantRequests.inc({ tenant, status });
    if (status === 'success') this.tenantDuration.observe({ tenant }, seconds);
    else if (status === 'rate_limited' || status === 'queue_full') this.tenantShed.inc({ tenant, reason: status });
  }
}

/** Maps an error kind to the status label. */
export function statusOfKind(kind: string, code?: string): RequestStatus {
  switch (kind) {
    case 'INVALID_ARG':
    case 'ALREADY_EXISTS': return 'invalid';
    case 'NOT_FOUND': return 'not_found';
    // Only a full queue (or the gateway's request memory) is load shedding; a model too large for a
    // worker's memory budget is a capacity problem.
    case 'RESOURCE_EXHAUSTED': return code === undefined || code === 'SLUICE_QUEUE_FULL' || code === 'SLUICE_REQUEST_MEMORY_FULL' || code === 'SLUICE_EXPECTED_WAIT_TOO_LONG' || code === 'SLUICE_GENERATION_QUEUE_FULL' || code === 'SLUICE_SEQUENCE_SLOTS_FULL' ? 'queue_full' : 'unavailable';
    case 'DEADLINE_EXCEEDED': return 'timeout';
    case 'CANCELLED': return 'cancelled';
    case 'UNIMPLEMENTED': return 'unimplemented';
    case 'UNAUTHENTICATED':
    case 'PERMISSION_DENIED': return 'denied';
    case 'RATE_LIMITED': return 'rate_limited';
    case 'UNAVAILABLE': return code === 'SLUICE_WORKER_FAILED' || code === 'SLUICE_NO_WORKER' ? 'worker_failure' : 'unavailable';
    default: return 'internal';
  }
}
