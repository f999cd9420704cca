import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { setImmediate as tick } from 'node:timers/promises';
import { SluiceError } from '../../src/core/errors.ts';
import type { ModelConfig, WarmupSpec } from '../../src/core/model.ts';
import { ModelCache, estimateFootprint } from '../../src/worker/cache.ts';
import { repositoryResolver, type ModelResolver } from '../../src/worker/resolve.ts';
import { SessionFactory } from '../../src/worker/session.ts';
import { SAMPLE_REPOSITORY, int32Bytes, int32Values, testLogger } from './helpers.ts';

function footprint(model: string): number {
  return estimateFootprint(statSync(join(SAMPLE_REPOSITORY, model, '1', 'model.onnx')).size);
}

function config(name: string, over: Partial<ModelConfig> = {}): ModelConfig {
  return {
    name, platform: 'onnxruntime_onnx', backend: 'onnxruntime', maxBatchSize: 32, inputs: [], outputs: [],
    dynamicBatching: {
      preferredBatchSizes: [], maxQueueDelayUs: 0, preserveOrdering: false, priorityLevels: 0, defaultPriorityLevel: 0,
      defaultQueuePolicy: { timeoutAction: 'REJECT', defaultTimeoutUs: 0, allowTimeoutOverride: true, maxQueueSize: 0, maxExpectedWaitUs: 0 },
      priorityQueuePolicy: {}, allowedBatchSizes: [],
    },
    instanceGroups: [], versionPolicy: { latest: { numVersions: 1 } }, warmup: [], pinned: false, source: 'json', unknownFields: [],
    ...over,
  };
}

/** The sample repository with configs given here (the worker's own resolution of files, real sessions). */
function resolverWith(configs: Record<string, ModelConfig>): ModelResolver {
  const files = repositoryResolver(SAMPLE_REPOSITORY);
  return {
    latestVersion: (m) => files.latestVersion(m),
    resolve: async (m, v) => ({ ...(await files.resolve(m, v)), config: configs[m] }),
  };
}

function cache(budgetBytes: number, configs: Record<string, ModelConfig> = {}): ModelCache {
  const logger = testLogger();
  return new ModelCache({ budgetBytes, resolver: resolverWith(configs), opener: new SessionFactory({ device: 'cpu', deviceId: 0, cudaFallback: 'cpu', intraOpThreads: 1, logger }), logger });
}

async function sum(c: ModelCache): Promise<number[]> {
  const lease = await c.acquire('simple', '1');
  try {
    const r = await lease.session.run([
      { name: 'INPUT0', datatype: 'INT32', shape: [1, 16], data: int32Bytes(Array(16).fill(40)) },
      { name: 'INPUT1', datatype: 'INT32', shape: [1, 16], data: int32Bytes(Array(16).fill(2)) },
    ], ['OUTPUT0']);
    return int32Values(r.outputs[0]!.data);
  } finally {
    lease.release();
  }
}

void test('concurrent first requests for a model share one load', async (t) => {
  const c = cache(1 << 30);
  t.after(() => c.close());
  const leases = await Promise.all(Array.from({ length: 8 }, () => c.acquire('mlp', '1')));
  assert.ok(leases.every((l) => !l.cacheHit && l.session === leases[0]!.session));
  for (const l of leases) l.release();
  const again = await c.acquire('mlp', '1');
  again.release();
  const s = c.snapshot();
  assert.deepEqual({ loads: s.loads, misses: s.cacheMisses, hits: s.cacheHits, hit: again.cacheHit }, { loads: 1, misses: 8, hits: 1, hit: true });
  assert.equal(s.memoryUsedBytes, footprint('mlp'));
});

void test('a load past the budget evicts the least recently used idle model', async (t) => {
  // Any two of simple, cnn and identity fit; all three do not.
  const budget = footprint('simple') + footprint('cnn') + footprint('identity') - 1;
  const c = cache(budget);
  t.after(() => c.close());
  assert.deepEqual(await sum(c), Array(16).fill(42));
  await c.load('cnn', '1');
  assert.deepEqual(await sum(c), Array(16).fill(42)); // simple is now the most recently used
  await c.load('identity', '1');
  const s = c.snapshot();
  assert.deepEqual(s.models.map((m) => m.model).sort(), ['identity', 'simple']);
  assert.equal(s.evictions, 1);
  assert.ok(s.memoryUsedBytes <= budget);
  await c.load('cnn', '1');
  assert.deepEqual(c.snapshot().models.map((m) => m.model).sort(), ['cnn', 'identity']);
  assert.deepEqual(await sum(c), Array(16).fill(42)); // reloaded after its eviction, same answer
  assert.equal(c.snapshot().loads, 5);
});

void test('a model with a run in flight is never evicted: the next load waits for it', async (t) => {
  const c = cache(footprint('cnn') + 1);
  t.after(() => c.close());
  const held = await c.acquire('simple', '1');
  let loaded = false;
  const next = c.acquire('cnn', '1').then((l) => {
    loaded = true;
    return l;
  });
  for (let i = 0; i < 20; i++) await tick();
  assert.equal(loaded, false, 'cnn must wait while simple is leased');
  assert.deepEqual(c.snapshot().models.map((m) => m.model), ['simple']);
  held.release();
  const lease = await next;
  lease.release();
  assert.deepEqual(c.snapshot().models.map((m) => m.model), ['cnn']);
  assert.equal(c.snapshot().evictions, 1);
});

void test('a model larger than the budget is refused with RESOURCE_EXHAUSTED; a pinned one loads anyway', async (t) => {
  const small = cache(footprint('mlp') - 1);
  t.after(() => small.close());
  await assert.rejects(small.acquire('mlp', '1'), (e: unknown) => e instanceof SluiceError && e.code === 'SLUICE_MODEL_EXCEEDS_MEMORY_BUDGET' && e.kind === 'RESOURCE_EXHAUSTED' && /'mlp'/.test(e.message));
  assert.deepEqual(await sum(small), Array(16).fill(42));
  const pinned = cache(footprint('mlp') - 1, { mlp: config('mlp', { pinned: true }) });
  t.after(() => pinned.close());
  await pinned.load('mlp', '1');
  assert.ok(pinned.snapshot().models.some((m) => m.model === 'mlp' && m.pinned));
  // The pinned model is never evicted to make room: the next model is refused instead.
  await assert.rejects(pinned.load('simple', '1'), (e: unknown) => e instanceof SluiceError && e.kind === 'RESOURCE_EXHAUSTED' && /'simple'/.test(e.message));
});

void test('warmup runs every sample count times before the model is ready; a failing warmup fails the load', async (t) => {
  const warm: WarmupSpec = { name: 'w', batchSize: 4, count: 3, inputs: { INPUT0: { datatype: 'INT32', dims: [16], randomData: true }, INPUT1: { datatype: 'INT32', dims: [16], zeroData: true } } };
  const broken: WarmupSpec = { ...warm, inputs: { NOT_AN_INPUT: { datatype: 'INT32', dims: [16], zeroData: true } } };
  const c = cache(1 << 30, { simple: config('simple', { warmup: [warm] }), identity: config('identity', { warmup: [broken] }) });
  t.after(() => c.close());
  const lease = await c.acquire('simple', '1');
  assert.equal(c.snapshot().warmupRuns, 3, 'all warmup runs happen before the first lease');
  lease.release();
  await assert.rejects(c.acquire('identity', '1'), (e: unknown) => e instanceof SluiceError && e.code === 'SLUICE_MODEL_LOAD_FAILED' && /warmup sample 'w' failed/.test(e.message));
  assert.deepEqual(c.snapshot().models.map((m) => m.model), ['simple']);
  assert.equal(c.snapshot().memoryUsedBytes, footprint('simple'), 'a failed load gives its reservation back');
});

void test('unload of a busy model lets its run finish, then frees its memory', async (t) => {
  const c = cache(1 << 30);
  t.after(() => c.close());
  const lease = await c.acquire('simple', '1');
  assert.equal(await c.unload('simple', '1'), true);
  assert.deepEqual(c.snapshot().models, []);
  assert.equal(c.snapshot().memoryUsedBytes, footprint('simple'), 'still held by the running lease');
  const r = await lease.session.run([
    { name: 'INPUT0', datatype: 'INT32', shape: [1, 16], data: int32Bytes(Array(16).fill(1)) },
    { name: 'INPUT1', datatype: 'INT32', shape: [1, 16], data: int32Bytes(Array(16).fill(1)) },
  ], ['OUTPUT1']);
  assert.deepEqual(int32Values(r.outputs[0]!.data), Array(16).fill(0));
  lease.release();
  assert.equal(c.snapshot().memoryUsedBytes, 0);
  assert.equal(await c.unload('simple', '1'), false);
});

void test('unknown models and versions are NOT_FOUND', async (t) => {
  const c = cache(1 << 30);
  t.after(() => c.close());
  await assert.rejects(c.acquire('nope', '1'), (e: unknown) => e instanceof SluiceError && e.kind === 'NOT_FOUND');
  await assert.rejects(c.acquire('simple', '7'), (e: unknown) => e instanceof SluiceError && e.code === 'SLUICE_MODEL_VERSION_NOT_FOUND');
});
