// Builders shared by the scheduler tests: real configs read from the sample repository, requests with
// distinct data, and a batcher wired to a real executor.
import { performance } from 'node:perf_hooks';
import type { Executor } from '../../src/core/execution.ts';
import type { InferRequest, InferResponse } from '../../src/core/inference.ts';
import type { DynamicBatchingConfig, ModelConfig, QueuePolicy } from '../../src/core/model.ts';
import type { Tensor } from '../../src/core/tensor.ts';
import { readModelEntry } from '../../src/repository/repository.ts';
import type { RequestMemory } from '../../src/scheduler/memory.ts';
import { DynamicBatcher } from '../../src/scheduler/batcher.ts';
import { ModelStatsRecorder } from '../../src/scheduler/stats.ts';
import { validateRequest } from '../../src/scheduler/validate.ts';
import { createLogger } from '../../src/telemetry/logger.ts';
import { Metrics } from '../../src/telemetry/metrics.ts';
import { MODELS_ROOT } from './ort-executor.ts';

export const quietLogger = createLogger('silent');

/** The sample model's real config (as the repository reads it), with batching settings replaced. */
export async function sampleConfig(
  name: string,
  batching: Partial<Omit<DynamicBatchingConfig, 'defaultQueuePolicy'>> & { defaultQueuePolicy?: Partial<QueuePolicy> } = {},
  top: Partial<ModelConfig> = {},
): Promise<ModelConfig> {
  const entry = await readModelEntry(MODELS_ROOT, name);
  if (!entry.config) throw new Error(`sample model ${name} is unusable: ${entry.error}`);
  const db = entry.config.dynamicBatching;
  return {
    ...entry.config,
    ...top,
    dynamicBatching: { ...db, ...batching, defaultQueuePolicy: { ...db.defaultQueuePolicy, ...batching.defaultQueuePolicy } },
  };
}

export function int32Tensor(name: string, rows: number, cols: number, value: (row: number, col: number) => number): Tensor {
  const a = new Int32Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) a[r * cols + c] = value(r, c);
  return { name, datatype: 'INT32', shape: [rows, cols], data: new Uint8Array(a.buffer) };
}

export function int32s(t: Tensor): number[] {
  const d = t.data as Uint8Array;
  // new Uint8Array(view) copies just the view's bytes (Buffer#slice would not).
  return [...new Int32Array(new Uint8Array(d).buffer)];
}

let nextId = 0;

/** A request for `simple` whose INPUT0 row r is seed*1000 + r*16 + c and INPUT1 is all `seed`. */
export function simpleRequest(seed: number, rows = 1, opts: Partial<InferRequest> = {}): InferRequest {
  return {
    id: `r${nextId++}`,
    model: 'simple',
    version: '',
    inputs: [int32Tensor('INPUT0', rows, 16, (r, c) => seed * 1000 + r * 16 + c), int32Tensor('INPUT1', rows, 16, () => seed)],
    outputs: [],
    priority: 0,
    timeoutUs: 0,
    arrivalMs: performance.now(),
    protocol: 'http',
    ...opts,
  };
}

/** What simple must answer for simpleRequest(seed, rows): OUTPUT0 = INPUT0 + seed, OUTPUT1 = INPUT0 - seed. */
export function expectedSimple(seed: number, rows: number): { sum: number[]; diff: number[] } {
  const sum: number[] = [];
  const diff: number[] = [];
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < 16; c++) {
      const x = seed * 1000 + r * 16 + c;
      sum.push(x + seed);
      diff.push(x - seed);
    }
  }
  return { sum, diff };
}

export interface BatcherRig {
  readonly batcher: DynamicBatcher;
  readonly metrics: Metrics;
  readonly stats: ModelStatsRecorder;
}

/** A batcher for `config` on `executor`, the drain signal wired as the service's ready list wires it. */
export function makeBatcher(executor: Executor, config: ModelConfig, version = '1', memory?: RequestMemory): BatcherRig {
  const metrics = new Metrics({ defaultMetrics: false });
  const stats = new ModelStatsRecorder(config.name, version);
  const batcher = new DynamicBatcher({ model: config.name, version, config, executor, metrics, stats, logger: quietLogger, ...(memory ? { memory } : {}) });
  executor.onDrain(() => {
    while (batcher.dispatchOne() === 'sent') {
      // keep sending while there is room
    }
  });
  return { batcher, metrics, stats };
}

/** Resolves after the event loop has turned `n` times (lets settled batches and capacity events run). */
export async function ticks(n = 3): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise((resolve) => setImmediate(resolve));
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Validates like the service does, then enqueues. */
export function submit(rig: BatcherRig, config: ModelConfig, request: InferRequest): Promise<InferResponse> {
  return rig.batcher.enqueue(request, validateRequest(config, request));
}

/** The seed a simpleRequest carried, read back from a batch's INPUT1 rows (one entry per row). */
export function seedsOfBatch(inputs: readonly Tensor[]): number[] {
  const in1 = inputs.find((t) => t.name === 'INPUT1')!;
  const all = int32s(in1);
  const out: number[] = [];
  for (let i = 0; i < all.length; i += 16) out.push(all[i]!);
  return out;
}

/**
 * Keeps the event loop alive for the test: the scheduler's timers are unref'd (a server's sockets keep
 * a real process alive), so a test awaiting only a timer-driven answer needs a ref'd handle of its own.
 */
export function keepAlive(t: { after(fn: () => void): void }): void {
  const handle = setInterval(() => undefined, 1_000);
  t.after(() => clearInterval(handle));
}
