// Batch formation against real ONNX Runtime sessions: the executor's slots and gate stand in for busy
// workers, so each test decides exactly when capacity exists.
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { test, type TestContext } from 'node:test';
import type { InferResponse } from '../../src/core/inference.ts';
import type { Tensor } from '../../src/core/tensor.ts';
import { expectedSimple, int32s, keepAlive, makeBatcher, sampleConfig, seedsOfBatch, simpleRequest, sleep, submit, ticks } from './fixtures.ts';
import { OrtTestExecutor } from './ort-executor.ts';

function executor(t: TestContext, slots = 1): OrtTestExecutor {
  const ex = new OrtTestExecutor({ slots });
  t.after(() => ex.close());
  return ex;
}

function output(res: InferResponse, name: string): Tensor {
  const t = res.outputs.find((o) => o.name === name);
  assert.ok(t, `response has ${name}`);
  return t;
}

function checkSimple(res: InferResponse, seed: number, rows: number): void {
  const want = expectedSimple(seed, rows);
  assert.deepEqual(output(res, 'OUTPUT0').shape, [rows, 16]);
  assert.deepEqual(int32s(output(res, 'OUTPUT0')), want.sum);
  assert.deepEqual(int32s(output(res, 'OUTPUT1')), want.diff);
}

void test('work-conserving: with a free slot a request is sent at once, no timer in between', async (t) => {
  const ex = executor(t);
  const config = await sampleConfig('simple');
  const rig = makeBatcher(ex, config);
  const pending = submit(rig, config, simpleRequest(7, 2));
  // Sent synchronously inside enqueue: nothing waited for a timer or another request.
  assert.equal(ex.batches.length, 1);
  assert.equal(ex.batches[0]!.job.rows, 2);
  checkSimple(await pending, 7, 2);
});

void test('while the slot is busy requests queue up and leave as one batch when it frees', async (t) => {
  const ex = executor(t);
  const config = await sampleConfig('simple');
  const rig = makeBatcher(ex, config);
  ex.hold();
  const first = submit(rig, config, simpleRequest(1));
  const rest = Array.from({ length: 20 }, (_, i) => submit(rig, config, simpleRequest(100 + i)));
  assert.equal(ex.batches.length, 1, 'nothing else is sent while the only slot is busy');
  assert.equal(rig.batcher.depth(), 20);
  ex.release();
  checkSimple(await first, 1, 1);
  const answers = await Promise.all(rest);
  answers.forEach((res, i) => checkSimple(res, 100 + i, 1));
  assert.deepEqual(ex.batches.map((b) => b.job.rows), [1, 20]);
  assert.deepEqual(seedsOfBatch(ex.batches[1]!.job.inputs), Array.from({ length: 20 }, (_, i) => 100 + i), 'arrival order within the batch');
});

void test('batches count rows, not requests, up to the max batch size', async (t) => {
  const ex = executor(t);
  const config = await sampleConfig('simple');
  const rig = makeBatcher(ex, config);
  ex.hold();
  const all = [submit(rig, config, simpleRequest(1))];
  for (let i = 0; i < 5; i++) all.push(submit(rig, config, simpleRequest(10 + i, 10)));
  for (let i = 0; i < 3; i++) all.push(submit(rig, config, simpleRequest(20 + i, 1)));
  ex.release();
  const answers = await Promise.all(all);
  // 10+10+10 = 30 rows; the fourth 10-row request would pass 32, so it leads the next batch.
  assert.deepEqual(ex.batches.map((b) => b.job.rows), [1, 30, 23]);
  checkSimple(answers[4]!, 13, 10);
  checkSimple(answers[8]!, 22, 1);
  const s = rig.stats.snapshot();
  assert.equal(s.inferenceCount, 54);
  assert.equal(s.executionCount, 3);
  assert.deepEqual(s.batchStats.map((b) => [b.batchSize, b.computeInfer.count]), [[1, 1], [23, 1], [30, 1]]);
  assert.equal(s.success.count, 9);
  assert.equal(s.queue.count, 9);
});

void test('more than max batch size rows queued leave as full batches', async (t) => {
  const ex = executor(t);
  const config = await sampleConfig('simple');
  const rig = makeBatcher(ex, config);
  ex.hold();
  const all = [submit(rig, config, simpleRequest(1))];
  for (let i = 0; i < 40; i++) all.push(submit(rig, config, simpleRequest(50 + i)));
  ex.release();
  await Promise.all(all);
  assert.deepEqual(ex.batches.map((b) => b.job.rows), [1, 32, 8]);
});

void test('higher priority levels leave first, arrival order within a level', async (t) => {
  const ex = executor(t);
  const config = await sampleConfig('simple', { priorityLevels: 2, defaultPriorityLevel: 2, preferredBatchSizes: [2] }, { maxBatchSize: 2 });
  const rig = makeBatcher(ex, config);
  ex.hold();
  const all = [submit(rig, config, simpleRequest(1))];
  for (const seed of [21, 22, 23]) all.push(submit(rig, config, simpleRequest(seed, 1, { priority: 2 })));
  for (const seed of [11, 12]) all.push(submit(rig, config, simpleRequest(seed, 1, { priority: 1 })));
  all.push(submit(rig, config, simpleRequest(24, 1, { priority: 0 })));
  ex.release();
  await Promise.all(all);
  assert.deepEqual(ex.batches.map((b) => seedsOfBatch(b.job.inputs)), [[1], [11, 12], [21, 22], [23, 24]]);
});

void test('a max queue delay holds a batch short of a preferred size, and a preferred size goes at once', async (t) => {
  keepAlive(t);
  const ex = executor(t);
  const config = await sampleConfig('simple', { maxQueueDelayUs: 300_000, preferredBatchSizes: [4] });
  const rig = makeBatcher(ex, config);
  const started = performance.now();
  const four = [submit(rig, config, simpleRequest(1))];
  assert.equal(ex.batches.length, 0, 'a lone request waits for the batch to grow');
  for (const seed of [2, 3, 4]) four.push(submit(rig, config, simpleRequest(seed)));
  assert.equal(ex.batches.length, 1, 'the preferred size is sent the moment it is reached');
  assert.equal(ex.batches[0]!.job.rows, 4);
  await Promise.all(four);
  assert.ok(performance.now() - started < 250, 'the preferred batch did not wait out the delay');

  const alone = simpleRequest(9);
  const res = await submit(rig, config, alone);
  const waited = performance.now() - alone.arrivalMs;
  checkSimple(res, 9, 1);
  assert.equal(ex.batches[1]!.job.rows, 1);
  assert.ok(waited >= 295, `a batch short of any preferred size waits the delay from arrival (waited ${waited.toFixed(1)} ms)`);
  assert.ok(waited < 2000, 'and not much longer');
});

void test('requests whose non-batch dims differ never share a batch, and none starves', async (t) => {
  const ex = executor(t);
  const config = await sampleConfig('simple_identity');
  const rig = makeBatcher(ex, config);
  const enc = new TextEncoder();
  const dec = new TextDecoder();
  const req = (words: string[]) => ({
    ...simpleRequest(0),
    model: 'simple_identity',
    inputs: [{ name: 'INPUT0', datatype: 'BYTES' as const, shape: [1, words.length], data: words.map((w) => enc.encode(w)) }],
  });
  ex.hold();
  const words = [['a', 'b'], ['c', 'd', 'e'], ['f', 'g'], ['h', 'i', 'j'], ['k', 'l']];
  const first = submit(rig, config, req(['x']));
  const all = words.map((w) => submit(rig, config, req(w)));
  ex.release();
  await first;
  const answers = await Promise.all(all);
  answers.forEach((res, i) => assert.deepEqual((res.outputs[0]!.data as Uint8Array[]).map((e) => dec.decode(e)), words[i]));
  const widths = ex.batches.slice(1).map((b) => b.job.inputs[0]!.shape);
  assert.deepEqual(widths, [[3, 2], [2, 3]], 'two-word rows together, three-word rows together');
});

void test('a model without a batch dim runs every request alone', async (t) => {
  const ex = executor(t);
  const config = await sampleConfig('simple', {}, {
    maxBatchSize: 0,
    inputs: [{ name: 'INPUT0', datatype: 'INT32', dims: [-1, 16] }, { name: 'INPUT1', datatype: 'INT32', dims: [-1, 16] }],
  });
  const rig = makeBatcher(ex, config);
  ex.hold();
  const all = [1, 2, 3].map((seed) => submit(rig, config, simpleRequest(seed, seed)));
  ex.release();
  const answers = await Promise.all(all);
  answers.forEach((res, i) => checkSimple(res, i + 1, i + 1));
  assert.deepEqual(ex.batches.map((b) => b.rows), [1, 2, 3]);
});

void test('padding to allowed batch sizes: zero rows in, padded rows dropped from the answers', async (t) => {
  const ex = executor(t);
  const config = await sampleConfig('simple', { allowedBatchSizes: [4, 8] });
  const rig = makeBatcher(ex, config);
  ex.hold();
  const all = [submit(rig, config, simpleRequest(1))];
  for (const seed of [2, 3, 4, 5, 6]) all.push(submit(rig, config, simpleRequest(seed)));
  ex.release();
  const answers = await Promise.all(all);
  answers.forEach((res, i) => checkSimple(res, i + 1, 1));
  assert.deepEqual(ex.batches.map((b) => b.job.rows), [4, 8]);
  assert.deepEqual(seedsOfBatch(ex.batches[1]!.job.inputs), [2, 3, 4, 5, 6, 0, 0, 0], 'padded rows are zeros');
  const s = rig.stats.snapshot();
  assert.equal(s.inferenceCount, 6, 'padding is not counted as inferences');
  assert.deepEqual(s.batchStats.map((b) => b.batchSize), [4, 8]);
});

void test('exact result splitting under concurrency: every request gets its own rows of its own outputs', async (t) => {
  const ex = executor(t, 2);
  const config = await sampleConfig('simple');
  const rig = makeBatcher(ex, config);
  const requests = Array.from({ length: 300 }, (_, i) => {
    const rows = 1 + (i % 4);
    const outputs = i % 3 === 0 ? ['OUTPUT1'] : i % 3 === 1 ? ['OUTPUT1', 'OUTPUT0'] : [];
    return { seed: i + 1, rows, outputs, request: simpleRequest(i + 1, rows, { outputs }) };
  });
  const answers = await Promise.all(requests.map(async (r, i) => {
    if (i % 10 === 0) await ticks(1);
    return submit(rig, config, r.request);
  }));
  answers.forEach((res, i) => {
    const r = requests[i]!;
    assert.equal(res.id, r.request.id);
    const names = res.outputs.map((o) => o.name);
    assert.deepEqual(names, r.outputs.length === 0 ? ['OUTPUT0', 'OUTPUT1'] : r.outputs);
    const want = expectedSimple(r.seed, r.rows);
    for (const o of res.outputs) {
      assert.deepEqual(o.shape, [r.rows, 16]);
      assert.deepEqual(int32s(o), o.name === 'OUTPUT0' ? want.sum : want.diff);
    }
  });
  assert.ok(ex.batches.some((b) => b.job.rows > 4), 'some batches held several requests');
  assert.ok(ex.batches.every((b) => b.job.rows <= 32));
  assert.equal(ex.batches.reduce((n, b) => n + b.job.rows, 0), requests.reduce((n, r) => n + r.rows, 0));
  await sleep(0);
});
