// Shared pieces of the balancer tests: configs, batches of the sample `simple` model, and worker
// processes started by the test itself (remote workers over TCP, which the test may stop or kill).
import { fork, type ChildProcess } from 'node:child_process';
import type { TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import { WorkerPool } from '../../src/balancer/pool.ts';
import { loadConfig } from '../../src/config/load.ts';
import { WorkerFailed } from '../../src/core/errors.ts';
import type { Config } from '../../src/config/schema.ts';
import { BatchNotRun, type Acquired, type BatchJob, type BatchResult, type BatchSlot, type Executor } from '../../src/core/execution.ts';
import { createLogger } from '../../src/telemetry/logger.ts';
import { Metrics } from '../../src/telemetry/metrics.ts';
import type { UploadStore } from '../../src/repository/uploads.ts';

export const REPOSITORY = fileURLToPath(new URL('../../models', import.meta.url));
const WORKER_MAIN = fileURLToPath(new URL('../../src/worker/main.ts', import.meta.url));
const LOG_LEVEL = process.env['SLUICE_TEST_LOG_LEVEL'] ?? 'warn';

/** A pool config: `flags` are sluice serve flags (e.g. --workers 2, --worker URL, --balancer ...). */
export function poolConfig(flags: readonly string[]): Config {
  // Process workers unless a test asks otherwise: these tests kill and stop worker processes.
  const isolation = flags.includes('--worker-isolation') ? [] : ['--worker-isolation', 'process'];
  return loadConfig({ argv: ['--model-repository', REPOSITORY, '--log-level', LOG_LEVEL, '--intra-op-threads', '1', ...isolation, ...flags], env: {} });
}

/** Starts a pool and closes it when the test ends. */
export async function startPool(t: TestContext, flags: readonly string[], threadEntry?: URL, uploads?: UploadStore): Promise<{ pool: WorkerPool; metrics: Metrics }> {
  const metrics = new Metrics({ defaultMetrics: false });
  const pool = await WorkerPool.create({ config: poolConfig(flags), metrics, logger: createLogger(LOG_LEVEL), ...(threadEntry ? { threadEntry } : {}), ...(uploads ? { uploads } : {}) });
  // The pool's timers are unref'd (a server's sockets keep a real process alive): a test waiting for a
  // worker's restart or ejection needs a handle of its own.
  const alive = setInterval(() => undefined, 1_000);
  t.after(async () => {
    clearInterval(alive);
    await pool.close();
  });
  return { pool, metrics };
}

const waiting = new WeakMap<Executor, (() => void)[]>();

/** Resolves on the executor's next drain signal. */
function nextDrain(executor: Executor): Promise<void> {
  let list = waiting.get(executor);
  if (!list) {
    const fresh: (() => void)[] = [];
    list = fresh;
    waiting.set(executor, fresh);
    executor.onDrain(() => {
      for (const wake of fresh.splice(0)) wake();
    });
  }
  const l = list;
  return new Promise((resolve) => l.push(resolve));
}

/** A slot for the job, waiting on the drain signal while the executor is busy (as a scheduler's queue does). */
export async function acquire(executor: Executor, job: BatchJob, maxWaitMs = 60_000): Promise<BatchSlot> {
  const until = Date.now() + maxWaitMs;
  for (;;) {
    const got = executor.tryAcquire(job);
    if (got.kind === 'slot') return got.slot;
    if (got.kind === 'unavailable') throw got.error;
    if (Date.now() > until) throw new Error(`no slot within ${maxWaitMs} ms`);
    await nextDrain(executor);
  }
}

/** What tryAcquire says now, giving back a slot it reserved. */
export function peek(executor: Executor, job: BatchJob = simpleJob(1)): Acquired['kind'] {
  const got = executor.tryAcquire(job);
  if (got.kind === 'slot') got.slot.release();
  return got.kind;
}

/**
 * Runs a batch the way the scheduler does, in its smallest form: wait for a slot, run, and run a batch
 * its worker failed (BatchNotRun) once more on the next slot. `retries` counts those second runs.
 */
export async function execute(executor: Executor, job: BatchJob, retries?: { count: number }): Promise<BatchResult> {
  for (let attempt = 0; ; attempt++) {
    const slot = await acquire(executor, job);
    try {
      return await slot.run(job);
    } catch (e) {
      if (!(e instanceof BatchNotRun)) throw e;
      if (attempt > 0) throw WorkerFailed(e.worker, e.message);
      if (retries) retries.count++;
    }
  }
}

/** A batch of `rows` rows for `simple`: INPUT0[r][i] = seed + r, INPUT1[r][i] = i. */
export function simpleJob(rows: number, seed = 1): BatchJob {
  const a = new Int32Array(rows * 16);
  const b = new Int32Array(rows * 16);
  for (let r = 0; r < rows; r++) {
    for (let i = 0; i < 16; i++) {
      a[r * 16 + i] = seed + r;
      b[r * 16 + i] = i;
    }
  }
  const bytes = (x: Int32Array): Uint8Array => new Uint8Array(x.buffer);
  return {
    model: 'simple',
    version: '1',
    rows,
    inputs: [
      { name: 'INPUT0', datatype: 'INT32', shape: [rows, 16], data: bytes(a) },
      { name: 'INPUT1', datatype: 'INT32', shape: [rows, 16], data: bytes(b) },
    ],
    outputs: ['OUTPUT0', 'OUTPUT1'],
  };
}

/** OUTPUT0 of a simple batch as numbers. */
export function int32s(data: Uint8Array | readonly Uint8Array[]): number[] {
  const bytes = data as Uint8Array;
  return [...new Int32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength))];
}

/** A worker process started by the test on 127.0.0.1:0, to be handed to a pool as a remote worker. */
export interface RemoteWorker {
  readonly url: string;
  readonly child: ChildProcess;
  /** Resolves when the process has exited. */
  readonly exited: Promise<void>;
}

export async function startRemoteWorker(t: TestContext, id: string, listen = '127.0.0.1:0'): Promise<RemoteWorker> {
  const child = fork(WORKER_MAIN, ['--listen', listen, '--model-repository', REPOSITORY, '--intra-op-threads', '1', '--id', id, '--log-level', LOG_LEVEL], {
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  t.after(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGCONT'); // a throttled worker must run to handle SIGTERM
      child.kill('SIGTERM');
      await exited;
    }
  });
  const address = await new Promise<string>((resolve, reject) => {
    child.on('message', (m: { type?: string; address?: string }) => {
      if (m.type === 'ready' && m.address) resolve(m.address);
    });
    child.once('exit', (code, signal) => reject(new Error(`remote worker ${id} exited (${code ?? signal}) before it was ready`)));
  });
  return { url: `http://${address}`, child, exited };
}

/** Sends batches from `concurrency` loops until `total` batches completed; returns the worker of each. */
export async function runBatches(pool: WorkerPool, total: number, concurrency: number, rows = 4): Promise<string[]> {
  const workers: string[] = [];
  let started = 0;
  const loop = async (): Promise<void> => {
    while (started < total) {
      started++;
      const r = await execute(pool, simpleJob(rows, started));
      workers.push(r.worker);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, loop));
  return workers;
}

export function countBy(items: readonly string[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const x of items) out.set(x, (out.get(x) ?? 0) + 1);
  return out;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `check` every 50 ms until it holds or `timeoutMs` passes (then throws naming `what`). */
export async function waitFor(what: string, check: () => boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(50);
  }
}
