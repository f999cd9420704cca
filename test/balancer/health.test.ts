// Health: a hung worker (SIGSTOP) is ejected by its probes, its stuck batches fail over at once, and it
// rejoins when it answers again; a worker that drains on SIGTERM loses no batch.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { WorkerPool } from '../../src/balancer/pool.ts';
import { execute, simpleJob, startPool, startRemoteWorker, waitFor } from './support.ts';


/** Back-to-back batches from `loops` loops until stopped; returns how many succeeded and the failures. */
function keepBusy(pool: WorkerPool, loops: number, retries = { count: 0 }): () => Promise<{ ok: number; failed: unknown[] }> {
  let running = true;
  let ok = 0;
  const failed: unknown[] = [];
  const all = Promise.all(Array.from({ length: loops }, async () => {
    for (let i = 0; running; i++) {
      try {
        await execute(pool, simpleJob(4, i), retries);
        ok++;
      } catch (e) {
        failed.push(e);
      }
    }
  }));
  return async () => {
    running = false;
    await all;
    return { ok, failed };
  };
}

void test('a hung worker is ejected by its probes, its batches fail over, and it rejoins', async (t) => {
  const a = await startRemoteWorker(t, 'hangs');
  const b = await startRemoteWorker(t, 'steady');
  const { pool } = await startPool(t, ['--workers', '0', '--worker', a.url, '--worker', b.url]);
  const retried = { count: 0 };
  const stop = keepBusy(pool, 4, retried);
  await waitFor('both workers to serve', () => pool.workers().every((w) => w.inflightBatches > 0 || w.completedBatches > 0));
  a.child.kill('SIGSTOP');
  t.after(() => a.child.kill('SIGCONT'));
  const stoppedAt = Date.now();
  await waitFor('the hung worker to be ejected', () => !pool.workers()[0]!.healthy, 15_000);
  const hung = pool.workers()[0]!;
  assert.match(hung.downReason, /health probe failed/);
  t.diagnostic(`ejected ${Date.now() - stoppedAt} ms after SIGSTOP`);
  await waitFor('its stuck batches to fail over', () => pool.workers()[0]!.inflightBatches === 0, 5_000);
  const served = pool.workers()[1]!.completedBatches;
  await waitFor('the steady worker to keep serving', () => pool.workers()[1]!.completedBatches > served + 20, 10_000);

  a.child.kill('SIGCONT');
  await waitFor('the worker to rejoin', () => pool.workers()[0]!.healthy, 10_000);
  const before = pool.workers()[0]!.completedBatches;
  await waitFor('the rejoined worker to take batches again', () => pool.workers()[0]!.completedBatches > before, 10_000);
  const { ok, failed } = await stop();
  assert.deepEqual(failed, [], 'no batch failed');
  assert.ok(ok > 40);
  assert.ok(retried.count >= 1, 'the batches stuck on the hung worker came back as BatchNotRun and ran elsewhere');
});

void test('a worker draining on SIGTERM loses no batch: its refusals are retried elsewhere', async (t) => {
  const a = await startRemoteWorker(t, 'drains');
  const b = await startRemoteWorker(t, 'stays');
  const { pool } = await startPool(t, ['--workers', '0', '--worker', a.url, '--worker', b.url]);
  const stop = keepBusy(pool, 4);
  await waitFor('both workers to serve', () => pool.workers().every((w) => w.completedBatches > 0));
  a.child.kill('SIGTERM');
  await a.exited;
  await waitFor('the exited worker to be ejected', () => !pool.workers()[0]!.healthy, 10_000);
  const served = pool.workers()[1]!.completedBatches;
  await waitFor('the other worker to keep serving', () => pool.workers()[1]!.completedBatches > served + 20, 10_000);
  const { ok, failed } = await stop();
  assert.deepEqual(failed, [], 'no batch failed');
  assert.ok(ok > 20);
});
