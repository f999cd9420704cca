import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { Pool } from 'undici';
import { startWorkerHost } from '../../src/worker/host.ts';
import { isLocalOnly, parseListen } from '../../src/worker/listen.ts';
import { parseWorkerArgs } from '../../src/worker/main.ts';
import { WORKER_PATHS, type LoadResult, type UnloadResult } from '../../src/worker/protocol.ts';
import {
  SAMPLE_REPOSITORY, control, health, infer, inferRaw, int32Values, poolFor, simpleJob, spawnWorker, tempDir, testLogger,
} from './helpers.ts';

void test('a forked worker serves simple over a unix socket: right answers, cache hit on the second call', async (t) => {
  const sock = join(tempDir(t), 'w.sock');
  const w = await spawnWorker(t, ['--listen', `unix:${sock}`, '--model-repository', SAMPLE_REPOSITORY, '--intra-op-threads', '1', '--id', 'w-unix']);
  assert.equal(w.address, `unix:${sock}`);
  const { job, input0 } = simpleJob(3);
  const first = await infer(w.pool, job);
  assert.ok(first.ok, JSON.stringify(first));
  const [sum, diff] = first.value.outputs;
  assert.deepEqual([sum!.name, sum!.datatype, sum!.shape], ['OUTPUT0', 'INT32', [3, 16]]);
  assert.deepEqual(int32Values(sum!.data), input0.map((x) => x + 1));
  assert.deepEqual(int32Values(diff!.data), input0.map((x) => x - 1));
  assert.equal(first.value.cacheHit, false);
  assert.ok(first.value.computeInferNs > 0);
  const second = await infer(w.pool, job);
  assert.ok(second.ok && second.value.cacheHit);
  const h = await health(w.pool);
  assert.equal(h.id, 'w-unix');
  assert.equal(h.pid, w.child.pid);
  assert.equal(h.device, 'cpu');
  assert.equal(h.provider, 'cpu');
  assert.deepEqual(h.models.map((m) => [m.model, m.version]), [['simple', '1']]);
  assert.deepEqual({ loads: h.loads, hits: h.cacheHits, misses: h.cacheMisses, running: h.running }, { loads: 1, hits: 1, misses: 1, running: false });
  // simple's config.pbtxt has one model_warmup sample (count 1): it ran during the load.
  assert.equal(h.warmupRuns, 1);
  assert.ok(h.memoryUsedBytes > 0 && h.memoryUsedBytes === h.models[0]!.bytes);
});

void test('a forked worker on TCP reports its bound port and carries BYTES tensors', async (t) => {
  const w = await spawnWorker(t, ['--listen', '127.0.0.1:0', '--model-repository', SAMPLE_REPOSITORY, '--intra-op-threads', '1']);
  assert.match(w.address, /^127\.0\.0\.1:[1-9]\d*$/);
  const { job, input0 } = simpleJob(1);
  const r = await infer(w.pool, job);
  assert.ok(r.ok);
  assert.deepEqual(int32Values(r.value.outputs[0]!.data), input0.map((x) => x + 1));
  const words = ['héllo', '', 'wörld', '🙂'].map((s) => Buffer.from(s));
  const echo = await infer(w.pool, { model: 'simple_identity', version: '1', rows: 2, inputs: [{ name: 'INPUT0', datatype: 'BYTES', shape: [2, 2], data: words }], outputs: ['OUTPUT0'] });
  assert.ok(echo.ok, JSON.stringify(echo));
  assert.deepEqual((echo.value.outputs[0]!.data as Uint8Array[]).map((e) => Buffer.from(e).toString()), ['héllo', '', 'wörld', '🙂']);
  const loaded = await control<LoadResult>(w.pool, WORKER_PATHS.load, { model: 'cnn', version: '1' });
  assert.ok(loaded.ok && !loaded.value.cacheHit && loaded.value.loadMs > 0);
  const again = await control<LoadResult>(w.pool, WORKER_PATHS.load, { model: 'cnn', version: '1' });
  assert.ok(again.ok && again.value.cacheHit);
  const unloaded = await control<UnloadResult>(w.pool, WORKER_PATHS.unload, { model: 'cnn', version: '1' });
  assert.ok(unloaded.ok && unloaded.value.unloaded);
  assert.deepEqual((await health(w.pool)).models.map((m) => m.model).sort(), ['simple', 'simple_identity']);
});

void test('bad requests get clear 4xx errors and the worker keeps serving', async (t) => {
  const host = await startWorkerHost({
    listen: '127.0.0.1:0', modelRepository: SAMPLE_REPOSITORY, id: 'w-bad', device: 'cpu', deviceId: 0, cudaFallback: 'cpu',
    intraOpThreads: 1, memoryBudgetBytes: 1 << 30, logger: testLogger(), maxBodyBytes: 1 << 20,
  });
  t.after(() => host.close());
  const pool = poolFor(host.address);
  t.after(() => pool.close());
  const { job } = simpleJob(2);
  const expectations: [string, Promise<Awaited<ReturnType<typeof infer>>>, number, string, RegExp][] = [
    ['garbage frame', inferRaw(pool, Buffer.from('hello world')), 400, 'SLUICE_INVALID_REQUEST', /malformed worker frame/],
    ['unknown model', infer(pool, { ...job, model: 'nope' }), 404, 'SLUICE_MODEL_NOT_FOUND', /'nope'/],
    ['unknown version', infer(pool, { ...job, version: '9' }), 404, 'SLUICE_MODEL_VERSION_NOT_FOUND', /version 9/],
    ['rows disagree with the batch dimension', infer(pool, { ...job, rows: 5 }), 400, 'SLUICE_SHAPE_MISMATCH', /'INPUT0'.*5 rows/],
    ['missing input', infer(pool, { ...job, inputs: job.inputs.slice(0, 1) }), 400, 'SLUICE_MISSING_INPUT', /INPUT1/],
    ['body over the limit', inferRaw(pool, Buffer.alloc(2 << 20)), 400, 'SLUICE_BODY_TOO_LARGE', /1048576/],
  ];
  for (const [name, pending, status, code, pattern] of expectations) {
    const r = await pending;
    assert.ok(!r.ok, `${name}: expected an error`);
    assert.deepEqual([r.status, r.code], [status, code], `${name}: ${r.message}`);
    assert.match(r.message, pattern, name);
  }
  const badJson = await pool.request({ path: WORKER_PATHS.load, method: 'POST', body: '{"model":' });
  assert.equal(badJson.statusCode, 400);
  assert.match(await badJson.body.text(), /SLUICE_MALFORMED_BODY/);
  const badRef = await control(pool, WORKER_PATHS.load, { model: 'simple', version: 'latest' });
  assert.ok(!badRef.ok && badRef.status === 400 && /invalid version "latest"/.test(badRef.message));
  const unknownPath = await pool.request({ path: '/v2/models', method: 'GET' });
  assert.equal(unknownPath.statusCode, 501);
  await unknownPath.body.dump();
  const ok = await infer(pool, job);
  assert.ok(ok.ok, 'the worker still serves after every bad request');
});

void test('close() stops a host: the socket file is gone and the address refuses connections', async (t) => {
  const sock = join(tempDir(t), 'c.sock');
  const host = await startWorkerHost({
    listen: `unix:${sock}`, modelRepository: SAMPLE_REPOSITORY, id: 'w-close', device: 'cpu', deviceId: 0, cudaFallback: 'cpu',
    intraOpThreads: 1, memoryBudgetBytes: 1 << 30, logger: testLogger(), loadModels: ['simple'],
  });
  const pool = new Pool('http://localhost', { socketPath: sock });
  t.after(() => pool.close());
  assert.deepEqual((await health(pool)).models.map((m) => m.model), ['simple'], 'loadModels are hot before start resolves');
  await host.close();
  assert.equal(existsSync(sock), false);
  await assert.rejects(health(pool));
});

void test('listen addresses and flags are validated with the bad value named', () => {
  assert.deepEqual(parseListen('unix:/tmp/x.sock'), { path: '/tmp/x.sock' });
  assert.deepEqual(parseListen('[::1]:9000'), { host: '::1', port: 9000 });
  assert.deepEqual(parseListen('0.0.0.0:0'), { host: '0.0.0.0', port: 0 });
  assert.throws(() => parseListen('localhost'), /'localhost' is neither/);
  assert.throws(() => parseListen('h:70000'), /neither/);
  const o = parseWorkerArgs(['--listen', '127.0.0.1:9', '--memory-budget', '512mb', '--load-model', 'a,b', '--load-model', 'c']);
  assert.deepEqual([o.memoryBudgetBytes, o.loadModels, o.device, o.cudaFallback], [512 * 1024 * 1024, ['a', 'b', 'c'], 'cpu', 'cpu']);
  assert.throws(() => parseWorkerArgs(['--memory-budget', 'lots']), /--memory-budget: 'lots'/);
  assert.throws(() => parseWorkerArgs(['--device', 'tpu']), /--device: 'tpu' is not one of cpu, cuda/);
  assert.throws(() => parseWorkerArgs(['--device-id', '-1']), /--device-id/);
  assert.throws(() => parseWorkerArgs(['--bogus']), /bogus/);
  // A worker host is reachable from this machine only unless told otherwise (an open one trusts every peer).
  assert.equal(parseWorkerArgs([]).listen, '127.0.0.1:9000');
  assert.ok(isLocalOnly(parseListen('127.0.0.1:9000')) && isLocalOnly(parseListen('[::1]:9000')) && isLocalOnly(parseListen('unix:/tmp/w.sock')));
  assert.ok(!isLocalOnly(parseListen('0.0.0.0:9000')) && !isLocalOnly(parseListen('10.0.0.5:9000')) && !isLocalOnly(parseListen('[::]:9000')));
});
