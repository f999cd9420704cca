import type { DataType } from '../src/core/datatypes.ts';
import type { ServerCpu } from './server-cpu.ts';

/** The wire format a load test speaks. json/binary are HTTP/1.1 REST; h2c is REST binary over HTTP/2. */
export type LoadProtocol = 'json' | 'binary' | 'h2c' | 'grpc';

/**
 * One tensor of the workload, kept in every form the protocols need so that nothing is converted on
 * the hot path: JSON values for REST JSON, little-endian bytes for the binary extension and gRPC raw.
 */
export interface WorkTensor {
  readonly name: string;
  readonly datatype: DataType;
  readonly shape: readonly number[];
  /** Flat values: numbers for numeric types, booleans for BOOL, strings for BYTES. */
  readonly values: readonly (number | boolean | string)[];
  /** LE element bytes, or 4-byte-length-prefixed elements for BYTES. */
  readonly raw: Buffer;
}

/** A decoded output tensor, normalized for comparison (BOOL as 0/1, BYTES as latin1 strings). */
export interface DecodedTensor {
  readonly name: string;
  readonly datatype: string;
  readonly shape: readonly number[];
  readonly values: readonly (number | string)[];
}

/** The result of one request as a driver sees it. `error` is a short kind such as 'http 503'. */
export type Outcome = { readonly ok: true } | { readonly ok: false; readonly error: string };

/**
 * Checks a sampled response's outputs (or the reason they could not be decoded); returns why they are
 * wrong, or undefined when right.
 */
export type OutputCheck = (variant: number, outputs: readonly DecodedTensor[] | string) => string | undefined;

/** One step of a run: a closed loop at a concurrency, or an open loop at an arrival rate. */
export type StepSpec =
  | { readonly mode: 'closed'; readonly concurrency: number }
  | { readonly mode: 'open'; readonly rate: number };

/** Latency percentiles in milliseconds (microsecond resolution underneath). */
export interface LatencySummary {
  readonly min: number;
  readonly mean: number;
  readonly p50: number;
  readonly p90: number;
  readonly p95: number;
  readonly p99: number;
  readonly p999: number;
  readonly max: number;
}

/** The server's own view of a step, from the deltas of its Prometheus metrics. */
export interface ServerView {
  /** Requests the server finished during the step, by status label. */
  readonly requests: Readonly<Record<string, number>>;
  readonly meanQueueMs: number | undefined;
  readonly meanComputeMs: number | undefined;
  readonly meanBatchSize: number | undefined;
  readonly batches: number | undefined;
  /** Compute time per worker over wall time: how busy the workers were. */
  readonly busyFraction: number | undefined;
  readonly workers: number | undefined;
  readonly queueDepthMean: number | undefined;
  readonly queueDepthMax: number | undefined;
  /** P50/P99 estimated from the server's latency histogram buckets (as histogram_quantile does). */
  readonly serverP50Ms: number | undefined;
  readonly serverP99Ms: number | undefined;
  /** P99 of the requests the server shed (status queue_full: a full queue or a wait past the budget), the same way. */
  readonly serverShedP99Ms: number | undefined;
}

/** Everything measured in one step. */
export interface StepResult {
  readonly label: string;
  readonly spec: StepSpec;
  readonly protocol: LoadProtocol;
  /** Length of the measurement window in seconds (warm-up excluded). */
  readonly seconds: number;
  /** The operator stopped the step before its end (Ctrl-C): it was measured up to that moment. */
  readonly interrupted?: true;
  /** Successful responses per second in the window. */
  readonly qps: number;
  /** Responses (successful or not) that count in the window. */
  readonly responses: number;
  readonly ok: number;
  readonly errors: Readonly<Record<string, number>>;
  readonly errorCount: number;
  /** Requests sent in the step, warm-up included (what the server should have counted). */
  readonly sent: number;
  /** Requests that ended without a response from the server's side (aborted at the end of a step). */
  readonly aborted: number;
  /** Open loop: requests sent later than their intended time by more than the late threshold. */
  readonly late: number;
  readonly maxSendLagMs: number;
  readonly checked: number;
  readonly wrong: number;
  /** Latency of the successful responses. */
  readonly latencyMs: LatencySummary;
  /** Latency of the answers with an error status (a shedding server's 503s), when there were any. */
  readonly refusedLatencyMs?: LatencySummary;
  /** [percentile (0..100), latency ms] pairs for the percentile plot. */
  readonly percentiles: readonly (readonly [number, number])[];
  readonly server: ServerView | undefined;
  /** The server's CPU time over the measurement, when its pids were given (--server-pid). */
  readonly serverCpu?: ServerCpu;
}

/** The outcome of a search for the highest rate whose P99 stays under an SLO. */
export interface SearchResult {
  readonly sloP99Ms: number;
  /** The highest passing rate found, or undefined when even the lowest rate failed. */
  readonly bestRate: number | undefined;
  /** The lowest failing rate (upper end of the final bracket), when one was seen. */
  readonly failRate: number | undefined;
  readonly converged: boolean;
  readonly steps: readonly { readonly rate: number; readonly pass: boolean; readonly reason: string; readonly label: string }[];
}

/** The whole run, as written by --json. */
export interface RunReport {
  readonly tool: string;
  readonly startedAt: string;
  readonly finishedAt: string;
  readonly target: { readonly url: string | undefined; readonly grpcUrl: string | undefined; readonly model: string; readonly protocol: LoadProtocol };
  readonly settings: Readonly<Record<string, unknown>>;
  readonly steps: readonly StepResult[];
  readonly search: SearchResult | undefined;
}
