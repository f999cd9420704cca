// How the pool sizes and starts its workers, and a remote worker that is not there yet.
import assert from 'node:assert/strict';
import { isAbsolute } from 'node:path';
import { test } from 'node:test';
import { inflightBatchesOf, intraOpThreads, localIsolation, localWorkerArgs, localWorkerCount } from '../../src/balancer/startup.ts';
import { isSluiceError } from '../../src/core/errors.ts';
import { execute, peek, poolConfig, simpleJob, startPool, startRemoteWorker, waitFor } from './support.ts';

void test('local worker count: -1 is one per GPU on cuda, else one; explicit counts win', () => {
  assert.equal(localWorkerCount(poolConfig(['--workers=-1'])), 1);
  assert.equal(localWorkerCount(poolConfig(['--workers=-1', '--device', 'cuda', '--gpus', '0', '--gpus', '1', '--gpus', '3'])), 3);
  assert.equal(localWorkerCount(poolConfig(['--workers=-1', '--device', 'cpu', '--gpus', '0', '--gpus', '1'])), 1);
  assert.equal(localWorkerCount(poolConfig(['--workers', '4', '--device', 'cuda', '--gpus', '0', '--gpus', '1'])), 4);
});

void test('intra-op threads share the cores out unless configured', () => {
  const auto = poolConfig(['--intra-op-threads', '0']);
  assert.equal(intraOpThreads(auto, 2, 8), 4);
  assert.equal(intraOpThreads(auto, 3, 8), 2);
  assert.equal(intraOpThreads(auto, 4, 2), 1, 'never below one thread');
  assert.equal(intraOpThreads(poolConfig(['--intra-op-threads', '3']), 4, 2), 3);
});

void test('local workers run inline on the CPU and on a thread with CUDA unless told; explicit choices win', () => {
  assert.equal(localIsolation(poolConfig(['--worker-isolation', 'auto'])), 'inline');
  assert.equal(localIsolation(poolConfig(['--worker-isolation', 'auto', '--device', 'cuda'])), 'thread');
  assert.equal(localIsolation(poolConfig(['--worker-isolation', 'auto', '--device', 'webgpu'])), 'thread');
  assert.equal(localIsolation(poolConfig(['--worker-isolation', 'thread'])), 'thread');
  assert.equal(localIsolation(poolConfig(['--worker-isolation', 'inline', '--device', 'cuda'])), 'inline');
  assert.equal(localIsolation(poolConfig(['--worker-isolation', 'process'])), 'process');
});

void test('batches in flight: one on a thread worker, two over a socket, unless configured', () => {
  const auto = poolConfig([]);
  assert.equal(inflightBatchesOf(auto, 'in-process'), 1);
  assert.equal(inflightBatchesOf(auto, 'socket'), 2);
  const three = poolConfig(['--worker-max-inflight', '3']);
  assert.equal(inflightBatchesOf(three, 'in-process'), 3);
  assert.equal(inflightBatchesOf(three, 'socket'), 3);
});

void test('each local worker gets its GPU id and an absolute repository path', () => {
  const config = poolConfig(['--workers=-1', '--device', 'cuda', '--gpus', '2', '--gpus', '5', '--cuda-fallback', 'fail', '--worker-memory-budget', '1gb', '--intra-op-threads', '0']);
  const args = localWorkerArgs(config, 1, 2);
  const flag = (name: string): string | undefined => args[args.indexOf(name) + 1];
  assert.equal(flag('--device'), 'cuda');
  assert.equal(flag('--device-id'), '5');
  assert.equal(flag('--cuda-fallback'), 'fail');
  assert.equal(flag('--memory-budget'), String(1024 ** 3));
  assert.ok(isAbsolute(flag('--model-repository')!));
  assert.ok(Number(flag('--intra-op-threads')) >= 1);
});

void test('a remote worker that is not up at start is ejected, named in errors, and joins once it answers', async (t) => {
  // Reserve a port by starting a worker, then stop it: the address is valid but nothing listens there.
  const gone = await startRemoteWorker(t, 'gone');
  gone.child.kill('SIGTERM');
  await gone.exited;
  const { pool } = await startPool(t, ['--workers', '0', '--worker', gone.url]);
  const [info] = pool.workers();
  assert.equal(info?.healthy, false);
  assert.match(info.downReason, /ECONNREFUSED/);
  assert.equal(peek(pool), 'unavailable');
  await assert.rejects(execute(pool, simpleJob(1)), (e: unknown) => isSluiceError(e) && e.code === 'SLUICE_NO_WORKER' && e.message.includes(gone.url) && /ECONNREFUSED/.test(e.message));
  await assert.rejects(pool.load('simple', '1'), (e: unknown) => isSluiceError(e) && e.code === 'SLUICE_NO_WORKER');

  // The worker comes up at that address: the probes let it in, and it serves.
  const port = new URL(gone.url).port;
  const back = await startRemoteWorker(t, 'back', `127.0.0.1:${port}`);
  assert.equal(back.url, gone.url);
  let capacity = 0;
  pool.onDrain(() => capacity++);
  await waitFor('the worker to join', () => pool.workers()[0]!.healthy, 10_000);
  assert.ok(capacity > 0, 'the scheduler hears that capacity appeared');
  assert.equal(peek(pool), 'slot');
  assert.equal((await execute(pool, simpleJob(2))).worker, gone.url);
});
