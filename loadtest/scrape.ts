import type { ServerView } from './types.ts';

/** One sample of the Prometheus text format. */
export interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

/** A scrape and when it was taken (performance.now()). */
export interface Snapshot {
  readonly atMs: number;
  readonly samples: readonly Sample[];
}

function parseLabels(text: string): Record<string, string> {
  const labels: Record<string, string> = {};
  const re = /\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*,?/gy;
  let m: RegExpExecArray | null;
  while ((m = re.exec(text)) !== null) {
    labels[m[1]!] = m[2]!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
  }
  return labels;
}

/** Parses the Prometheus text exposition format (comments and malformed lines are skipped). */
export function parsePrometheus(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const value = m[4] === '+Inf' ? Infinity : m[4] === '-Inf' ? -Infinity : Number(m[4]);
    if (Number.isNaN(value) && m[4] !== 'NaN') continue;
    out.push({ name: m[1]!, labels: m[3] ? parseLabels(m[3]) : {}, value });
  }
  return out;
}

/** The metrics URL of a server: --metrics-url, else the REST port + 2 (Triton's 8000/8002 layout). */
export function defaultMetricsUrl(url: string | undefined, grpcUrl: string | undefined): string | undefined {
  const from = (u: string, offset: number, fallbackPort: number): string => {
    const parsed = new URL(/^[a-z]+:\/\//.test(u) ? u : `http://${u}`);
    const port = parsed.port !== '' ? Number(parsed.port) + offset : fallbackPort;
    return `http://${parsed.hostname.includes(':') ? `[${parsed.hostname}]` : parsed.hostname}:${port}/metrics`;
  };
  if (url) return from(url, 2, 8002);
  if (grpcUrl) return from(grpcUrl, 1, 8002);
  return undefined;
}

/** Fetches and parses one scrape; undefined when the endpoint does not answer (the view is optional). */
export async function scrape(url: string, timeoutMs = 2000): Promise<Snapshot | undefined> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    if (!res.ok) return undefined;
    return { atMs: performance.now(), samples: parsePrometheus(await res.text()) };
  } catch {
    return undefined;
  }
}

type Filter = (labels: Readonly<Record<string, string>>) => boolean;

function total(s: Snapshot, name: string, filter: Filter): number | undefined {
  let sum: number | undefined;
  for (const x of s.samples) if (x.name === name && filter(x.labels)) sum = (sum ?? 0) + x.value;
  return sum;
}

function delta(a: Snapshot, b: Snapshot, name: string, filter: Filter): number | undefined {
  const after = total(b, name, filter);
  if (after === undefined) return undefined;
  return after - (total(a, name, filter) ?? 0);
}

/** histogram_quantile over the bucket deltas of one histogram (linear within a bucket). */
export function bucketQuantile(a: Snapshot, b: Snapshot, name: string, filter: Filter, q: number): number | undefined {
  const byLe = new Map<number, number>();
  for (const [snap, sign] of [[b, 1], [a, -1]] as const) {
    for (const x of snap.samples) {
      if (x.name !== `${name}_bucket` || !filter(x.labels) || x.labels['le'] === undefined) continue;
      const le = x.labels['le'] === '+Inf' ? Infinity : Number(x.labels['le']);
      byLe.set(le, (byLe.get(le) ?? 0) + sign * x.value);
    }
  }
  const buckets = [...byLe.entries()].sort((x, y) => x[0] - y[0]);
  const count = buckets.at(-1)?.[1] ?? 0;
  if (count <= 0) return undefined;
  const rank = q * count;
  let prevLe = 0;
  let prevCount = 0;
  for (const [le, c] of buckets) {
    if (c >= rank) {
      if (le === Infinity) return prevLe;
      return prevLe + (le - prevLe) * ((rank - prevCount) / Math.max(1e-12, c - prevCount));
    }
    prevLe = le;
    prevCount = c;
  }
  return prevLe;
}

/** Queue depth read while a step runs (one scrape in flight at a time, so it stays bounded). */
export class DepthSampler {
  readonly #values: number[] = [];
  readonly #timer: NodeJS.Timeout;
  #busy = false;

  constructor(url: string, model: string, everyMs: number) {
    this.#timer = setInterval(() => {
      if (this.#busy) return;
      this.#busy = true;
      void scrape(url).then((s) => {
        this.#busy = false;
        if (!s) return;
        const depth = total(s, 'sluice_queue_depth', (l) => l['model'] === model) ?? total(s, 'nv_inference_pending_request_count', (l) => l['model'] === model);
        if (depth !== undefined && this.#values.length < 100_000) this.#values.push(depth);
      });
    }, everyMs);
    this.#timer.unref();
  }

  stop(): { mean: number | undefined; max: number | undefined } {
    clearInterval(this.#timer);
    if (this.#values.length === 0) return { mean: undefined, max: undefined };
    return { mean: this.#values.reduce((a, b) => a + b, 0) / this.#values.length, max: Math.max(...this.#values) };
  }
}

const ratio = (num: number | undefined, den: number | undefined, scale = 1): number | undefined => (num === undefined || den === undefined || den <= 0 ? undefined : (num / den) * scale);

/**
 * The server's view of a step from two scrapes: sluice's own metrics, or Triton's nv_* ones when the
 * target is a Triton (microsecond counters there).
 */
export function serverView(a: Snapshot, b: Snapshot, model: string, depth: { mean: number | undefined; max: number | undefined }): ServerView {
  const m: Filter = (l) => l['model'] === model;
  const wall = (b.atMs - a.atMs) / 1000;
  const up = b.samples.filter((x) => x.name === 'sluice_worker_up' && x.value === 1).length;
  const requests: Record<string, number> = {};
  for (const x of b.samples) {
    if (x.name !== 'sluice_requests_total' || !m(x.labels)) continue;
    const status = x.labels['status'] ?? 'unknown';
    requests[status] = (requests[status] ?? 0) + x.value;
  }
  for (const x of a.samples) {
    if (x.name !== 'sluice_requests_total' || !m(x.labels)) continue;
    const status = x.labels['status'] ?? 'unknown';
    requests[status] = (requests[status] ?? 0) - x.value;
  }
  const computeSum = delta(a, b, 'sluice_batch_compute_duration_seconds_sum', m);
  const batches = delta(a, b, 'sluice_batch_compute_duration_seconds_count', m) ?? delta(a, b, 'nv_inference_exec_count', m);
  const triton = computeSum === undefined && total(b, 'nv_inference_exec_count', m) !== undefined;
  if (triton) {
    const success = delta(a, b, 'nv_inference_request_success', m);
    if (success !== undefined) requests['success'] = success;
    const computeUs = delta(a, b, 'nv_inference_compute_infer_duration_us', m);
    return {
      requests,
      meanQueueMs: ratio(delta(a, b, 'nv_inference_queue_duration_us', m), success, 1e-3),
      meanComputeMs: ratio(computeUs, batches, 1e-3),
      meanBatchSize: ratio(delta(a, b, 'nv_inference_count', m), batches),
      batches,
      busyFraction: ratio(computeUs, wall, 1e-6),
      workers: undefined,
      queueDepthMean: depth.mean,
      queueDepthMax: depth.max,
      serverP50Ms: undefined,
      serverP99Ms: undefined,
      serverShedP99Ms: undefined,
    };
  }
  const ok: Filter = (l) => m(l) && l['status'] === 'success';
  const p50 = bucketQuantile(a, b, 'sluice_request_duration_seconds', ok, 0.5);
  const p99 = bucketQuantile(a, b, 'sluice_request_duration_seconds', ok, 0.99);
  const shed: Filter = (l) => m(l) && l['status'] === 'queue_full';
  const shedP99 = bucketQuantile(a, b, 'sluice_request_duration_seconds', shed, 0.99);
  return {
    requests,
    meanQueueMs: ratio(delta(a, b, 'sluice_queue_duration_seconds_sum', m), delta(a, b, 'sluice_queue_duration_seconds_count', m), 1000),
    meanComputeMs: ratio(computeSum, batches, 1000),
    meanBatchSize: ratio(delta(a, b, 'sluice_batch_size_rows_sum', m), delta(a, b, 'sluice_batch_size_rows_count', m)),
    batches,
    busyFraction: ratio(computeSum, wall * Math.max(1, up)),
    workers: up > 0 ? up : undefined,
    queueDepthMean: depth.mean,
    queueDepthMax: depth.max,
    serverP50Ms: p50 === undefined ? undefined : p50 * 1000,
    serverP99Ms: p99 === undefined ? undefined : p99 * 1000,
    serverShedP99Ms: shedP99 === undefined ? undefined : shedP99 * 1000,
  };
}
