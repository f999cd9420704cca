import { fork } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Pool } from 'undici';
import { LATENCY_BUCKETS } from '../../src/telemetry/metrics.ts';

/** What the in-test load generator sent and measured. */
export interface LoadResult {
  /** Client-side latency of every successful request, in seconds. */
  readonly successLatencies: number[];
  readonly invalid: number;
  readonly unknownModel: number;
  /** Anything else (must stay 0). */
  readonly unexpected: string[];
}

const ROW = Array.from({ length: 16 }, (_, i) => i);

/** A valid REST request body for the sample model `simple` (two INT32 [1,16] inputs). */
export function simpleBody(): string {
  return JSON.stringify({
    inputs: [
      { name: 'INPUT0', shape: [1, 16], datatype: 'INT32', data: ROW },
      { name: 'INPUT1', shape: [1, 16], datatype: 'INT32', data: ROW },
    ],
  });
}

/** A body `simple` rejects as invalid (INPUT0's datatype does not match the model). */
export function invalidSimpleBody(): string {
  return JSON.stringify({
    inputs: [
      { name: 'INPUT0', shape: [1, 16], datatype: 'FP32', data: ROW },
      { name: 'INPUT1', shape: [1, 16], datatype: 'INT32', data: ROW },
    ],
  });
}

/**
 * Closed-loop load over REST: `concurrency` loops, each sending the next request when the last one
 * answered, for `durationMs`. Every `invalidEvery`-th request is invalid and every `unknownEvery`-th
 * names a model that does not exist, so that the failure panels have data. Each latency is measured
 * here, around the whole round trip.
 */
export async function driveLoad(opts: { port: number; durationMs: number; concurrency: number; invalidEvery: number; unknownEvery: number }): Promise<LoadResult> {
  const pool = new Pool(`http://127.0.0.1:${opts.port}`, { connections: opts.concurrency, pipelining: 1 });
  const result = { successLatencies: [] as number[], invalid: 0, unknownModel: 0, unexpected: [] as string[] };
  const valid = simpleBody();
  const invalid = invalidSimpleBody();
  const end = performance.now() + opts.durationMs;
  let n = 0;
  const loop = async (): Promise<void> => {
    while (performance.now() < end) {
      const i = ++n;
      const kind = i % opts.unknownEvery === 0 ? 'unknown' : i % opts.invalidEvery === 0 ? 'invalid' : 'valid';
      const path = kind === 'unknown' ? '/v2/models/no_such_model/infer' : '/v2/models/simple/infer';
      const start = performance.now();
      const res = await pool.request({ method: 'POST', path, headers: { 'content-type': 'application/json' }, body: kind === 'invalid' ? invalid : valid });
      const text = await res.body.text();
      const seconds = (performance.now() - start) / 1000;
      if (kind === 'valid' && res.statusCode === 200) result.successLatencies.push(seconds);
      else if (kind === 'invalid' && res.statusCode === 400) result.invalid++;
      else if (kind === 'unknown' && res.statusCode === 404) result.unknownModel++;
      else result.unexpected.push(`${kind}: ${res.statusCode} ${text.slice(0, 200)}`);
    }
  };
  try {
    await Promise.all(Array.from({ length: opts.concurrency }, loop));
  } finally {
    await pool.close();
  }
  return result;
}

/** The q-quantile of `values` by the nearest-rank method (the smallest value with q of them at or below it). */
export function quantile(values: readonly number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.max(0, Math.ceil(q * sorted.length) - 1)]!;
}

/** The histogram bucket (lower, upper] of sluice's latency buckets that holds `seconds`. */
export function enclosingBucket(seconds: number): { lower: number; upper: number } {
  let lower = 0;
  for (const upper of LATENCY_BUCKETS) {
    if (seconds <= upper) return { lower, upper };
    lower = upper;
  }
  return { lower, upper: Infinity };
}

type LoadOptions = Parameters<typeof driveLoad>[0];

/**
 * driveLoad in a process of its own. A generator on the server's event loop waits whenever the server
 * works (and the server whenever it does): its stalls would land in the client's latencies and not in
 * sluice's, and the two P99s could not be compared. Apart, the client times what a client would.
 */
export function driveLoadApart(opts: LoadOptions): Promise<LoadResult> {
  const child = fork(fileURLToPath(import.meta.url), [JSON.stringify(opts)], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  return new Promise((resolve, reject) => {
    let result: LoadResult | undefined;
    child.once('message', (m) => {
      result = m as LoadResult;
    });
    child.once('error', reject);
    child.once('exit', (code) => (result ? resolve(result) : reject(new Error(`the load process exited with ${code} without a result`))));
  });
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href && process.send) {
  const send = process.send.bind(process);
  driveLoad(JSON.parse(process.argv[2] ?? '{}') as LoadOptions).then(
    (r) => send(r, () => process.exit(0)),
    (e: unknown) => {
      process.stderr.write(`load process failed: ${String(e)}\n`);
      process.exit(1);
    },
  );
}
