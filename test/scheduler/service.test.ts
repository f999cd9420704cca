// GatewayService over a real in-process executor and a real (temporary) model repository.
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import type { SluiceError } from '../../src/core/errors.ts';
import { GatewayService } from '../../src/scheduler/service.ts';
import { Metrics } from '../../src/telemetry/metrics.ts';
import { expectedSimple, int32s, keepAlive, quietLogger, simpleRequest, ticks } from './fixtures.ts';
import { OrtTestExecutor } from './ort-executor.ts';
import { makeRepository, serviceConfig } from './repo-fixture.ts';

async function startService(t: TestContext, flags: readonly string[] = [], slots = 1): Promise<{ service: GatewayService; ex: OrtTestExecutor; root: string }> {
  keepAlive(t);
  const root = makeRepository(t);
  const ex = new OrtTestExecutor({ root, slots });
  const service = new GatewayService({ config: serviceConfig(root, flags), executor: ex, metrics: new Metrics({ defaultMetrics: false }), logger: quietLogger });
  t.after(async () => {
    service.close();
    await ex.close();
  });
  await service.start();
  return { service, ex, root };
}

function isError(code: string, message?: RegExp): (e: SluiceError) => boolean {
  return (e) => {
    assert.equal(e.code, code);
    if (message) assert.match(e.message, message);
    return true;
  };
}

void test('mode none loads every model hot at start; a broken one is UNAVAILABLE with its reason while the rest serve', async (t) => {
  const { service, ex } = await startService(t);
  assert.deepEqual(ex.loads.sort(), ['multi/1', 'multi/2', 'simple/1']);
  assert.equal(service.isLive(), true);
  assert.equal(service.isReady(), true);
  assert.equal(service.hasModel('broken'), true);
  assert.equal(service.hasModel('nope'), false);
  assert.equal(service.modelReady('simple', ''), true);
  assert.equal(service.modelReady('broken', ''), false);
  const index = await service.repositoryIndex(false);
  assert.deepEqual(index.map((e) => [e.name, e.version, e.state]), [['broken', '', 'UNAVAILABLE'], ['multi', '1', 'READY'], ['multi', '2', 'READY'], ['simple', '1', 'READY']]);
  assert.match(index[0]!.reason, /\S/);
  assert.deepEqual((await service.repositoryIndex(true)).map((e) => e.name), ['multi', 'multi', 'simple']);
  await assert.rejects(service.infer(simpleRequest(1, 1, { model: 'broken' })), isError('SLUICE_MODEL_NOT_READY', /'broken' has no available versions: \S/));
  const res = await service.infer(simpleRequest(3, 2));
  assert.equal(res.version, '1');
  assert.deepEqual(int32s(res.outputs[0]!), expectedSimple(3, 2).sum);
});

void test('server and model metadata follow the protocol', async (t) => {
  const { service } = await startService(t);
  const meta = service.serverMetadata();
  assert.equal(meta.name, 'sluice');
  assert.match(meta.version, /^\d+\.\d+\.\d+/);
  assert.ok(meta.extensions.includes('binary_tensor_data') && meta.extensions.includes('statistics'));
  const m = service.modelMetadata('multi', '');
  assert.deepEqual(m.versions, ['1', '2']);
  assert.equal(m.platform, 'onnxruntime_onnx');
  assert.deepEqual(m.inputs[0], { name: 'INPUT0', datatype: 'INT32', shape: [-1, 16] });
  assert.equal(service.modelConfig('simple', '1').maxBatchSize, 32);
  assert.throws(() => service.modelMetadata('nope', ''), isError('SLUICE_MODEL_NOT_FOUND', /Request for unknown model: 'nope' is not found/));
  assert.throws(() => service.modelConfig('simple', '7'), isError('SLUICE_MODEL_VERSION_NOT_FOUND', /'simple' version 7 is not found/));
  assert.throws(() => service.modelConfig('simple', 'x1'), isError('SLUICE_INVALID_VERSION'));
});

void test('infer resolves versions: empty = latest ready, a number = that version; bad requests are named', async (t) => {
  const { service } = await startService(t);
  assert.equal((await service.infer(simpleRequest(1, 1, { model: 'multi' }))).version, '2');
  assert.equal((await service.infer(simpleRequest(1, 1, { model: 'multi', version: '1' }))).version, '1');
  await assert.rejects(service.infer(simpleRequest(1, 1, { model: 'multi', version: '3' })), isError('SLUICE_MODEL_VERSION_NOT_FOUND'));
  await assert.rejects(service.infer(simpleRequest(1, 1, { model: 'nope' })), isError('SLUICE_MODEL_NOT_FOUND'));
  await assert.rejects(service.infer(simpleRequest(1, 1, { outputs: ['OUTPUTX'] })), isError('SLUICE_UNKNOWN_OUTPUT'));
  await assert.rejects(service.infer(simpleRequest(1, 40)), isError('SLUICE_BATCH_TOO_LARGE'));
});

void test('statistics count rows, batches and durations per version', async (t) => {
  const { service } = await startService(t);
  await Promise.all([service.infer(simpleRequest(1, 3)), service.infer(simpleRequest(2, 2))]);
  const [s] = service.modelStats('simple', '1');
  assert.ok(s);
  assert.equal(s.inferenceCount, 5);
  assert.equal(s.success.count, 2);
  assert.ok(s.success.ns > 0 && s.computeInfer.ns > 0);
  assert.equal(s.executionCount, s.batchStats.reduce((n, b) => n + b.computeInfer.count, 0));
  assert.deepEqual(service.modelStats('', '').map((x) => `${x.name}/${x.version}`), ['multi/1', 'multi/2', 'simple/1']);
  assert.equal(service.modelStats('multi', '').length, 2);
  assert.throws(() => service.modelStats('nope', ''), isError('SLUICE_MODEL_NOT_FOUND'));
});

void test('model control is refused unless the mode is explicit', async (t) => {
  const { service } = await startService(t);
  await assert.rejects(service.loadModel('simple'), isError('SLUICE_MODEL_CONTROL_DISABLED'));
  await assert.rejects(service.unloadModel('simple'), isError('SLUICE_MODEL_CONTROL_DISABLED'));
});

void test('explicit mode: only --load-model at start, then load and unload on request', async (t) => {
  const { service, ex } = await startService(t, ['--model-control-mode', 'explicit', '--load-model', 'simple']);
  assert.deepEqual(ex.loads, ['simple/1']);
  assert.equal(service.isReady(), true);
  const before = await service.repositoryIndex(false);
  assert.deepEqual(before.find((e) => e.name === 'multi'), { name: 'multi', version: '', state: 'UNAVAILABLE', reason: 'unloaded' });
  await assert.rejects(service.infer(simpleRequest(1, 1, { model: 'multi' })), isError('SLUICE_MODEL_NOT_READY'));

  await service.loadModel('multi');
  assert.equal(service.modelReady('multi', '2'), true);
  assert.equal((await service.infer(simpleRequest(1, 1, { model: 'multi' }))).version, '2');

  await assert.rejects(service.loadModel('broken'), isError('SLUICE_MODEL_LOAD_FAILED', /failed to load 'broken'/));
  await assert.rejects(service.loadModel('ghost'), isError('SLUICE_MODEL_NOT_FOUND', /'ghost' is not found/));
  await assert.rejects(service.loadModel('../etc'), isError('SLUICE_INVALID_MODEL_NAME'));
  await assert.rejects(service.unloadModel('ghost'), isError('SLUICE_MODEL_NOT_FOUND'));
  assert.equal(service.hasModel('ghost'), false, 'a failed lookup does not invent a model');

  ex.hold();
  const queued = [1, 2, 3].map((seed) => service.infer(simpleRequest(seed)));
  const unloading = service.unloadModel('simple');
  await ticks();
  assert.equal(service.modelReady('simple', ''), false, 'no new requests once the unload began');
  await assert.rejects(service.infer(simpleRequest(9)), isError('SLUICE_MODEL_NOT_READY'));
  assert.deepEqual(ex.unloads, [], 'the executor unloads only after the queue drained');
  ex.release();
  const answers = await Promise.all(queued);
  answers.forEach((res, i) => assert.deepEqual(int32s(res.outputs[0]!), expectedSimple(i + 1, 1).sum));
  await unloading;
  assert.deepEqual(ex.unloads, ['simple/1']);
  await assert.rejects(service.infer(simpleRequest(9, 1, { version: '1' })), isError('SLUICE_MODEL_NOT_READY', /unloaded/));
  const after = await service.repositoryIndex(false);
  assert.deepEqual(after.find((e) => e.name === 'simple'), { name: 'simple', version: '', state: 'UNAVAILABLE', reason: 'unloaded' });
});

void test('explicit mode: a reload that fails reports the failure and leaves the model serving as it was', async (t) => {
  const { service, ex, root } = await startService(t, ['--model-control-mode', 'explicit', '--load-model', 'simple']);
  // A broken version 2 appears (latest{1} would serve it).
  mkdirSync(join(root, 'simple', '2'), { recursive: true });
  writeFileSync(join(root, 'simple', '2', 'model.onnx'), 'not an onnx file');
  await assert.rejects(service.loadModel('simple'), isError('SLUICE_MODEL_LOAD_FAILED', /version 2: model\.onnx: not a valid ONNX model.*version\(s\) 1 keep serving/));
  assert.equal(service.modelReady('simple', '1'), true);
  assert.equal((await service.infer(simpleRequest(4, 1))).version, '1');
  assert.deepEqual(ex.unloads, []);
  // Fixed, the same call rolls over to version 2 and retires version 1.
  copyFileSync(join(root, 'simple', '1', 'model.onnx'), join(root, 'simple', '2', 'model.onnx'));
  await service.loadModel('simple');
  assert.equal((await service.infer(simpleRequest(4, 1))).version, '2');
  assert.deepEqual(ex.unloads, ['simple/1']);
});

void test('drain refuses new requests, answers every accepted one, then resolves', async (t) => {
  const { service, ex } = await startService(t);
  ex.hold();
  const accepted = [1, 2, 3, 4].map((seed) => service.infer(simpleRequest(seed)));
  assert.deepEqual(new Map(service.queueDepths()).get('simple'), 3, 'one runs, three wait: the queue depth gauge reads 3');
  let drained = false;
  const drain = service.drain().then(() => (drained = true));
  assert.equal(service.isReady(), false);
  await assert.rejects(service.infer(simpleRequest(5)), isError('SLUICE_SHUTTING_DOWN'));
  await ticks();
  assert.equal(drained, false);
  ex.release();
  await drain;
  const answers = await Promise.all(accepted);
  answers.forEach((res, i) => assert.deepEqual(int32s(res.outputs[1]!), expectedSimple(i + 1, 1).diff));
});

void test('close rejects whatever is still queued instead of leaving it hanging', async (t) => {
  const { service, ex } = await startService(t);
  ex.hold();
  const running = service.infer(simpleRequest(1));
  const queued = service.infer(simpleRequest(2));
  service.close();
  await assert.rejects(queued, isError('SLUICE_SHUTTING_DOWN'));
  assert.equal(service.isLive(), false);
  ex.release();
  await running;
});

void test('capacity is shared round-robin: a busy model does not starve another', async (t) => {
  const { service, ex } = await startService(t, [], 1);
  ex.hold();
  const all = [service.infer(simpleRequest(1))];
  for (let i = 0; i < 3; i++) {
    all.push(service.infer(simpleRequest(10 + i, 32)));
  }
  all.push(service.infer(simpleRequest(20, 1, { model: 'multi' })));
  ex.release();
  await Promise.all(all);
  const order = ex.batches.map((b) => b.job.model);
  assert.equal(order.length, 5);
  assert.ok(order.indexOf('multi') <= 2, `multi goes before the rest of simple's backlog (${order.join(', ')})`);
  assert.equal(service.hasModel('ghost'), false);
  assert.deepEqual([...service.queueDepths()].sort(), [['multi', 0], ['simple', 0]]);
});
