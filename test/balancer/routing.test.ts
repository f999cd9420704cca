// Where batches go: cache-aware routing on local workers, and least-loaded against round-robin when one
// remote worker (a real worker process over TCP) is slowed by throttling its process.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { test } from 'node:test';
import { countBy, runBatches, startPool, startRemoteWorker } from './support.ts';

void test('a model\'s batches stay on the worker that holds it hot until that worker saturates', async (t) => {
  const { pool } = await startPool(t, ['--workers', '2', '--balancer', 'least-loaded', '--worker-max-inflight', '2']);
  await pool.load('simple', '1');
  const hot = pool.workers().find((w) => w.hotModels.includes('simple:1'));
  assert.ok(hot, 'load made the model hot somewhere');
  assert.equal(pool.hotWorkers('simple', '1'), 1);

  // Two loops never need more than the hot worker's two slots: the cold worker stays out of it.
  const light = countBy(await runBatches(pool, 40, 2));
  assert.deepEqual([...light.keys()], [hot.id], `light load went to ${JSON.stringify([...light])}`);
  assert.equal(pool.hotWorkers('simple', '1'), 1);

  // Six loops saturate it: the other worker gets batches, and with them the model.
  const heavy = countBy(await runBatches(pool, 60, 6));
  assert.equal(heavy.size, 2, `heavy load should use both workers, got ${JSON.stringify([...heavy])}`);
  assert.equal(pool.hotWorkers('simple', '1'), 2);
});

/** Stops and continues a process in a duty cycle: it runs `runMs` out of every `runMs + stopMs`. */
function throttle(child: ChildProcess, runMs: number, stopMs: number): () => void {
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  const step = (): void => {
    stopped = !stopped;
    child.kill(stopped ? 'SIGSTOP' : 'SIGCONT');
    timer = setTimeout(step, stopped ? stopMs : runMs);
  };
  step();
  return () => {
    clearTimeout(timer);
    child.kill('SIGCONT');
  };
}

void test('least-loaded sends fewer batches than round-robin to a slowed remote worker', async (t) => {
  // The slow worker comes first, so that ties (nothing measured yet) favour it: least-loaded must learn.
  const slow = await startRemoteWorker(t, 'slow');
  const fast = await startRemoteWorker(t, 'fast');
  const release = throttle(slow.child, 5, 45);
  t.after(release);
  const remote = ['--workers', '0', '--worker', slow.url, '--worker', fast.url, '--worker-max-inflight', '2'];

  const shareOfSlow = async (policy: string): Promise<number> => {
    const { pool } = await startPool(t, [...remote, '--balancer', policy]);
    assert.deepEqual(pool.workers().map((w) => [w.id, w.kind, w.healthy]), [[slow.url, 'remote', true], [fast.url, 'remote', true]]);
    const counts = countBy(await runBatches(pool, 60, 2));
    t.diagnostic(`${policy}: ${JSON.stringify([...counts])}`);
    await pool.close();
    return (counts.get(slow.url) ?? 0) / 60;
  };
  const roundRobin = await shareOfSlow('round-robin');
  const leastLoaded = await shareOfSlow('least-loaded');
  // Round-robin alternates whatever the workers' speed; least-loaded learns within a couple of batches.
  assert.ok(roundRobin >= 0.4, `round-robin gave the slow worker ${roundRobin}`);
  assert.ok(leastLoaded <= 0.15, `least-loaded gave the slow worker ${leastLoaded}`);
});
