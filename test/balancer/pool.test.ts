// WorkerPool against real local worker processes running the sample `simple` model.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isSluiceError } from '../../src/core/errors.ts';
import type { Metrics } from '../../src/telemetry/metrics.ts';
import { execute, int32s, peek, simpleJob, startPool } from './support.ts';

async function count(metric: Metrics['batches'] | Metrics['cacheLookups'], labels: Record<string, string>): Promise<number> {
  const { values } = await metric.get();
  return values.filter((v) => Object.entries(labels).every(([k, x]) => (v.labels as Record<string, unknown>)[k] === x)).reduce((n, v) => n + v.value, 0);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

void test('runs batches on a local worker, records them, and drains on close', async (t) => {
  const { pool, metrics } = await startPool(t, ['--workers', '1']);
  const [info] = pool.workers();
  assert.equal(info?.kind, 'local');
  assert.match(info.address, /^unix:.*w0\.sock$/);
  assert.equal(peek(pool), 'slot');

  const first = await execute(pool, simpleJob(3, 10));
  assert.equal(first.worker, 'w0');
  assert.equal(first.cacheHit, false, 'the first batch loads the model');
  assert.deepEqual(first.outputs.map((o) => o.name), ['OUTPUT0', 'OUTPUT1']);
  assert.deepEqual(first.outputs[0]!.shape, [3, 16]);
  const sums = int32s(first.outputs[0]!.data);
  assert.equal(sums[0], 10); // 10 + 0
  assert.equal(sums[16 + 5], 16); // (10 + 1) + 5
  assert.equal(int32s(first.outputs[1]!.data)[2 * 16 + 15], 12 - 15);

  const second = await execute(pool, simpleJob(5));
  assert.equal(second.cacheHit, true);
  assert.ok(second.computeInferNs > 0);
  assert.equal(await count(metrics.batches, { model: 'simple' }), 2);
  assert.equal(await count(metrics.inferences, { model: 'simple' }), 8);
  // A batch padded from 3 request rows to 4 runs 4 rows and counts 3 inferences.
  const padded = await execute(pool, { ...simpleJob(4), requestRows: 3 });
  assert.deepEqual(padded.outputs[0]!.shape, [4, 16]);
  assert.equal(await count(metrics.inferences, { model: 'simple' }), 11, 'padding rows are not inferences');
  const sizes = (await metrics.batchSize.get()).values.find((v) => v.metricName === 'sluice_batch_size_rows_sum' && v.labels.model === 'simple');
  assert.equal(sizes?.value, 3 + 5 + 4, 'the batch size histogram records the rows that ran');
  assert.equal(await count(metrics.batches, { model: 'simple' }), 3);
  assert.equal(await count(metrics.cacheLookups, { model: 'simple', result: 'miss' }), 1);
  assert.equal(await count(metrics.cacheLookups, { model: 'simple', result: 'hit' }), 2);
  assert.equal(await count(metrics.modelLoads, { model: 'simple', result: 'success' }), 1);
  assert.equal(pool.hotWorkers('simple', '1'), 1);
  assert.deepEqual(pool.snapshot().map((s) => [s.worker, s.up, s.inflightBatches]), [['w0', true, 0]]);

  // More batches than slots: two run, the pool queues none of the rest (they wait for the drain signal,
  // as in a scheduler's queue); close() lets the running ones finish and tells the waiting ones no slot comes.
  const pending = Array.from({ length: 12 }, (_, i) => execute(pool, simpleJob(2, i)));
  assert.equal(peek(pool), 'busy', 'both slots are taken');
  assert.equal(pool.snapshot()[0]!.inflightBatches, 2, 'never more than maxInflightBatches on the worker');
  const closed = pool.close();
  await assert.rejects(execute(pool, simpleJob(1)), (e: unknown) => isSluiceError(e) && e.code === 'SLUICE_SHUTTING_DOWN');
  const results = await Promise.allSettled(pending);
  assert.deepEqual(results.filter((r) => r.status === 'fulfilled').length, 2, 'the two running batches are answered on close');
  for (const r of results) if (r.status === 'rejected') assert.ok(isSluiceError(r.reason) && r.reason.code === 'SLUICE_SHUTTING_DOWN', String(r.reason));
  await closed;
  assert.equal(alive(info.pid!), false, 'the local worker process has exited');
  assert.equal(peek(pool), 'unavailable');
});

void test('model errors come back as the worker reported them, without a retry', async (t) => {
  const { pool, metrics } = await startPool(t, ['--workers', '2']);
  const job = simpleJob(4);
  // [4, 8] for a [-1, 16] input: refused by the worker or by ONNX Runtime, a failure that would repeat anywhere.
  const bad = { ...job, inputs: job.inputs.map((x) => ({ ...x, shape: [4, 8], data: (x.data as Uint8Array).subarray(0, 4 * 8 * 4) })) };
  await assert.rejects(execute(pool, bad), (e: unknown) => isSluiceError(e) && (e.kind === 'INVALID_ARG' || e.kind === 'INTERNAL') && /INPUT0/.test(e.message));
  await assert.rejects(execute(pool, { ...job, outputs: ['NOPE'] }), (e: unknown) => isSluiceError(e) && e.kind === 'INVALID_ARG' && /NOPE/.test(e.message));
  await assert.rejects(execute(pool, { ...job, model: 'no_such_model' }), (e: unknown) => isSluiceError(e) && e.kind === 'NOT_FOUND');
  assert.equal(await count(metrics.batchRetries, {}), 0);
  assert.ok(pool.workers().every((w) => w.healthy), 'a model error does not eject the worker');
  assert.equal((await execute(pool, job)).outputs.length, 2);
});

void test('load makes a model hot on one worker; unload drops it everywhere', async (t) => {
  const { pool, metrics } = await startPool(t, ['--workers', '2']);
  assert.equal(pool.hotWorkers('simple', '1'), 0);
  await pool.load('simple', '1');
  assert.equal(pool.hotWorkers('simple', '1'), 1);
  await pool.load('simple', '1');
  assert.equal(pool.hotWorkers('simple', '1'), 1, 'a second load confirms the hot worker instead of loading another');
  assert.equal(await count(metrics.modelLoads, { model: 'simple', result: 'success' }), 1);
  const r = await execute(pool, simpleJob(2));
  assert.equal(r.cacheHit, true, 'the batch goes to the worker that holds the model');
  await assert.rejects(pool.load('no_such_model', '1'), (e: unknown) => isSluiceError(e) && e.kind === 'NOT_FOUND' && /no_such_model/.test(e.message));
  await pool.unload('simple', '1');
  assert.equal(pool.hotWorkers('simple', '1'), 0);
  assert.equal((await execute(pool, simpleJob(2))).cacheHit, false, 'the worker really dropped it');
});
