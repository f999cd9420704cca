import assert from 'node:assert/strict';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { estimateFootprint } from '../../src/worker/cache.ts';
import { WORKER_PATHS, type LoadResult } from '../../src/worker/protocol.ts';
import {
  SAMPLE_REPOSITORY, control, fp32Job, fp32Values, health, infer, int32Values, simpleJob, spawnWorker, tempDir, tempRepository,
} from './helpers.ts';

function footprint(model: string): number {
  return estimateFootprint(statSync(join(SAMPLE_REPOSITORY, model, '1', 'model.onnx')).size);
}

void test('a budget that fits one model: alternating two models evicts and reloads, answers stay right', async (t) => {
  const budget = footprint('mlp') + 1024; // mlp alone or simple alone, never both
  assert.ok(budget < footprint('mlp') + footprint('simple'));
  const w = await spawnWorker(t, ['--listen', `unix:${join(tempDir(t), 'e.sock')}`, '--model-repository', SAMPLE_REPOSITORY, '--intra-op-threads', '1', '--memory-budget', String(budget)]);
  const mlpJob = fp32Job('mlp', 2, [784]);
  let reference: number[] | undefined;
  for (let round = 0; round < 2; round++) {
    const { job, input0 } = simpleJob(2);
    const s = await infer(w.pool, job);
    assert.ok(s.ok, JSON.stringify(s));
    assert.deepEqual(int32Values(s.value.outputs[0]!.data), input0.map((x) => x + 1));
    assert.equal(s.value.cacheHit, false, `round ${round}: simple was evicted by mlp`);
    const m = await infer(w.pool, mlpJob);
    assert.ok(m.ok, JSON.stringify(m));
    const probs = fp32Values(m.value.outputs[0]!.data);
    assert.equal(probs.length, 20);
    for (const row of [probs.slice(0, 10), probs.slice(10)]) assert.ok(Math.abs(row.reduce((a, b) => a + b, 0) - 1) < 1e-4, 'softmax rows sum to 1');
    if (reference) assert.deepEqual(probs, reference, 'a reloaded mlp answers exactly as before');
    reference = probs;
    const h = await health(w.pool);
    assert.deepEqual(h.models.map((x) => x.model), ['mlp']);
    assert.ok(h.memoryUsedBytes <= budget);
  }
  const h = await health(w.pool);
  assert.deepEqual({ loads: h.loads, evictions: h.evictions }, { loads: 4, evictions: 3 });
});

void test('concurrent first requests (loads and batches) share one load', async (t) => {
  const w = await spawnWorker(t, ['--listen', '127.0.0.1:0', '--model-repository', SAMPLE_REPOSITORY, '--intra-op-threads', '1']);
  const job = fp32Job('mlp', 1, [784]);
  const [loads, batches] = await Promise.all([
    Promise.all(Array.from({ length: 6 }, () => control<LoadResult>(w.pool, WORKER_PATHS.load, { model: 'mlp', version: '1' }))),
    Promise.all(Array.from({ length: 4 }, () => infer(w.pool, job))),
  ]);
  assert.ok(loads.every((r) => r.ok) && batches.every((r) => r.ok));
  const answers = batches.map((r) => (r.ok ? fp32Values(r.value.outputs[0]!.data) : []));
  for (const a of answers) assert.deepEqual(a, answers[0]);
  const h = await health(w.pool);
  assert.equal(h.loads, 1);
  assert.equal(h.cacheHits + h.cacheMisses, 10);
});

void test('--load-model warms a model up (model_warmup count times) before the worker reports ready', async (t) => {
  const repo = tempRepository(t, ['simple']);
  const pbtxt = readFileSync(join(repo, 'simple', 'config.pbtxt'), 'utf8').replace('name: "zeros"', 'name: "zeros"\n    count: 4');
  const { writeFileSync } = await import('node:fs');
  writeFileSync(join(repo, 'simple', 'config.pbtxt'), pbtxt);
  const w = await spawnWorker(t, ['--listen', '127.0.0.1:0', '--model-repository', repo, '--intra-op-threads', '1', '--load-model', 'simple']);
  // The first look after 'ready' already sees the model loaded and its 4 warmup runs done.
  const h = await health(w.pool);
  assert.deepEqual(h.models.map((m) => m.model), ['simple']);
  assert.deepEqual({ loads: h.loads, warmupRuns: h.warmupRuns }, { loads: 1, warmupRuns: 4 });
  const r = await infer(w.pool, simpleJob(1).job);
  assert.ok(r.ok && r.value.cacheHit, 'the first batch finds the model hot');
});

void test('a broken model answers an error while the others serve', async (t) => {
  const repo = tempRepository(t, ['simple'], {
    'broken/1/model.onnx': 'definitely not an ONNX protobuf',
    'broken/config.json': JSON.stringify({ name: 'broken', maxBatchSize: 0, inputs: [{ name: 'X', datatype: 'FP32', dims: [1] }], outputs: [{ name: 'Y', datatype: 'FP32', dims: [1] }] }),
  });
  // A start-up load of the broken model is logged; the worker still starts and serves the rest.
  const w = await spawnWorker(t, ['--listen', '127.0.0.1:0', '--model-repository', repo, '--intra-op-threads', '1', '--load-model', 'broken,simple', '--log-level', 'fatal']);
  const bad = { model: 'broken', version: '1', rows: 0, inputs: [{ name: 'X', datatype: 'FP32' as const, shape: [1], data: new Uint8Array(4) }], outputs: [] };
  for (let i = 0; i < 2; i++) {
    const r = await infer(w.pool, bad);
    assert.ok(!r.ok);
    assert.equal(r.code, 'SLUICE_MODEL_LOAD_FAILED');
    assert.match(r.message, /'broken'/);
    const { job, input0 } = simpleJob(1);
    const s = await infer(w.pool, job);
    assert.ok(s.ok);
    assert.deepEqual(int32Values(s.value.outputs[1]!.data), input0.map((x) => x - 1));
  }
  const h = await health(w.pool);
  assert.deepEqual(h.models.map((m) => m.model), ['simple']);
  assert.equal(h.memoryUsedBytes, h.models[0]!.bytes, 'failed loads hold no memory');
});

void test('SIGTERM with batches running and queued: every accepted batch is answered, then exit 0', async (t) => {
  const w = await spawnWorker(t, ['--listen', '127.0.0.1:0', '--model-repository', SAMPLE_REPOSITORY, '--intra-op-threads', '1', '--load-model', 'cnn']);
  const job = fp32Job('cnn', 48, [3, 64, 64]);
  const pending = Array.from({ length: 4 }, () => infer(w.pool, job));
  // Wait until the worker holds accepted work (one batch running, more queued) before the signal.
  for (let i = 0; i < 200; i++) {
    const h = await health(w.pool);
    if (h.queuedBatches >= 1) break;
    await sleep(5);
  }
  w.child.kill('SIGTERM');
  const results = await Promise.all(pending);
  assert.deepEqual(results.map((r) => r.ok), [true, true, true, true], JSON.stringify(results.filter((r) => !r.ok)));
  assert.equal(await w.exited, 0);
});
