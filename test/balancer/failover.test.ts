// Workers dying under load: their batches come back as BatchNotRun and run on another slot, the worker
// respawns, and every batch settles when no worker is left.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { WorkerPool } from '../../src/balancer/pool.ts';
import { isSluiceError } from '../../src/core/errors.ts';
import type { BatchResult } from '../../src/core/execution.ts';
import type { Metrics } from '../../src/telemetry/metrics.ts';
import { countBy, execute, peek, runBatches, simpleJob, startPool, startRemoteWorker, waitFor } from './support.ts';

async function total(metric: Metrics['batchRetries'] | Metrics['workerRestarts']): Promise<number> {
  return (await metric.get()).values.reduce((n, v) => n + v.value, 0);
}

/** Runs until `stop()` is called: `loops` loops of back-to-back batches; collects results and failures. */
function keepBusy(pool: WorkerPool, loops: number, retries = { count: 0 }): { stop: () => Promise<{ ok: BatchResult[]; failed: unknown[] }> } {
  let running = true;
  const ok: BatchResult[] = [];
  const failed: unknown[] = [];
  const loop = async (): Promise<void> => {
    for (let i = 0; running; i++) {
      try {
        ok.push(await execute(pool, simpleJob(4, i), retries));
      } catch (e) {
        failed.push(e);
      }
    }
  };
  const all = Promise.all(Array.from({ length: loops }, loop));
  return {
    stop: async () => {
      running = false;
      await all;
      return { ok, failed };
    },
  };
}

void test('a worker SIGKILLed under load: no batch fails, it respawns and serves again', async (t) => {
  const { pool, metrics } = await startPool(t, ['--workers', '2', '--worker-max-inflight', '2']);
  await runBatches(pool, 20, 4); // both workers hot and measured
  const retried = { count: 0 };
  const busy = keepBusy(pool, 4, retried);
  await waitFor('w0 to have batches in flight', () => pool.workers()[0]!.inflightBatches > 0);
  const victim = pool.workers()[0]!;
  process.kill(victim.pid!, 'SIGKILL');
  await waitFor('w0 to be ejected', () => !pool.workers()[0]!.healthy, 5_000);
  await waitFor('w0 to respawn', () => pool.workers()[0]!.healthy && pool.workers()[0]!.restarts === 1, 30_000);
  const { ok, failed } = await busy.stop();
  assert.deepEqual(failed, [], 'no batch failed while another worker was up');
  assert.ok(ok.length > 20);
  assert.ok(retried.count >= 1, 'the batches in flight on w0 came back as BatchNotRun and ran again');
  assert.equal(await total(metrics.workerRestarts), 1);
  const respawned = pool.workers()[0]!;
  assert.notEqual(respawned.pid, victim.pid);

  const after = countBy(await runBatches(pool, 60, 6));
  assert.ok((after.get('w0') ?? 0) > 0, `the respawned worker serves again: ${JSON.stringify([...after])}`);
});

void test('when the only local worker dies its batches wait for the respawn and are answered there', async (t) => {
  const { pool } = await startPool(t, ['--workers', '1', '--worker-max-inflight', '2']);
  await execute(pool, simpleJob(1));
  const pid = pool.workers()[0]!.pid!;
  const retried = { count: 0 };
  const pending = Array.from({ length: 8 }, (_, i) => execute(pool, simpleJob(8, i), retried));
  process.kill(pid, 'SIGKILL');
  await waitFor('w0 to be marked down', () => !pool.workers()[0]!.healthy, 5_000);
  assert.equal(peek(pool), 'busy', 'a local worker being restarted is waited for, not reported unavailable');
  const results = await Promise.all(pending);
  assert.ok(retried.count > 0, 'batches in flight on the killed worker failed as BatchNotRun and ran again');
  assert.ok(results.every((r) => r.worker === 'w0' && r.outputs[0]!.shape[0] === 8));
  assert.notEqual(pool.workers()[0]!.pid, pid, 'answered by the respawned process');
});

void test('remote workers over TCP: when all of them die every execute settles with the reason', async (t) => {
  const a = await startRemoteWorker(t, 'ra');
  const b = await startRemoteWorker(t, 'rb');
  const { pool } = await startPool(t, ['--workers', '0', '--worker', a.url, '--worker', b.url]);
  const served = countBy(await runBatches(pool, 30, 4));
  assert.deepEqual([...served.keys()].sort(), [a.url, b.url].sort(), 'both remote workers served batches');

  const pending = Array.from({ length: 12 }, (_, i) => execute(pool, simpleJob(8, i)));
  a.child.kill('SIGKILL');
  b.child.kill('SIGKILL');
  const settled = await Promise.allSettled(pending);
  for (const r of settled) {
    if (r.status === 'fulfilled') continue; // answered before the kill landed
    const e = r.reason as unknown;
    assert.ok(isSluiceError(e) && e.kind === 'UNAVAILABLE', String(e));
    assert.match(e.message, /127\.0\.0\.1/, 'the error names the worker');
  }
  assert.ok(settled.some((r) => r.status === 'rejected'));
  await Promise.all([a.exited, b.exited]);
  // Whether the probes or the failed batches noticed first, no worker is left and the error says so.
  await waitFor('both workers ejected', () => pool.workers().every((w) => !w.healthy), 10_000);
  assert.equal(peek(pool), 'unavailable');
  await assert.rejects(execute(pool, simpleJob(1)), (e: unknown) => isSluiceError(e) && e.code === 'SLUICE_NO_WORKER' && e.message.includes(a.url) && e.message.includes(b.url));
});
