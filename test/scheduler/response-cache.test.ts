// The response cache: what its key holds, LRU within the byte budget, only successful answers, and,
// through GatewayService on real ONNX Runtime, hits that never reach the model's queue.
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import type { InferRequest, InferResponse } from '../../src/core/inference.ts';
import type { Tensor } from '../../src/core/tensor.ts';
import { ResponseCache, type CacheTarget } from '../../src/scheduler/response-cache.ts';
import type { RequestPlan } from '../../src/scheduler/scheduler.ts';
import { GatewayService } from '../../src/scheduler/service.ts';
import { ModelStatsRecorder } from '../../src/scheduler/stats.ts';
import { createLogger, type Logger } from '../../src/telemetry/logger.ts';
import { Metrics } from '../../src/telemetry/metrics.ts';
import { expectedSimple, int32s, keepAlive, quietLogger, simpleRequest } from './fixtures.ts';
import { MODELS_ROOT, OrtTestExecutor } from './ort-executor.ts';
import { makeRepository, serviceConfig } from './repo-fixture.ts';

const OUTPUTS = ['OUTPUT0', 'OUTPUT1'];

function planOf(outputs: readonly string[] = OUTPUTS): RequestPlan {
  return { rows: 1, shapeKey: '', level: 1, outputs, allOutputs: outputs.length === OUTPUTS.length };
}

function targetOf(generation = 1, model = 'simple', version = '1'): CacheTarget {
  return { model, version, generation, stats: new ModelStatsRecorder(model, version) };
}

/** A stand-in for the model's queue: answers from the inputs (OUTPUTi = INPUT0 + i) and counts runs. */
class FakeModel {
  runs = 0;
  fail: Error | undefined;

  run(request: InferRequest, plan: RequestPlan): () => Promise<InferResponse> {
    return () => {
      this.runs++;
      if (this.fail) return Promise.reject(this.fail);
      const input = request.inputs.find((t) => t.name === 'INPUT0')!.data as Uint8Array;
      const outputs: Tensor[] = plan.outputs.map((name, i) => ({ name, datatype: 'INT32', shape: [1, input.byteLength / 4], data: input.map((b) => b + i) }));
      return Promise.resolve({ id: request.id, model: request.model, version: '1', outputs });
    };
  }
}

async function serve(cache: ResponseCache, model: FakeModel, request: InferRequest, target = targetOf(), plan = planOf()): Promise<InferResponse> {
  return cache.serve(target, request, plan, model.run(request, plan));
}

function bytesOf(r: InferResponse): number[][] {
  return r.outputs.map((t) => [...(t.data as Uint8Array)]);
}

/** What one simple answer (1 row, both outputs) costs the cache; the same for 'cached', a name as long. */
async function entryBytes(): Promise<number> {
  const probe = new ResponseCache({ limitBytes: 1 << 20 });
  await serve(probe, new FakeModel(), simpleRequest(1));
  return probe.snapshot().usedBytes;
}

void test('the same request twice: the second is a hit with the same bytes, the model ran once', async () => {
  const cache = new ResponseCache({ limitBytes: 1 << 20 });
  const model = new FakeModel();
  const target = targetOf();
  const first = await serve(cache, model, simpleRequest(7), target);
  const second = await serve(cache, model, simpleRequest(7, 1, { id: 'again' }), target);
  assert.equal(model.runs, 1);
  assert.deepEqual(bytesOf(second), bytesOf(first));
  assert.deepEqual(second.outputs.map((t) => [t.name, t.datatype, t.shape]), first.outputs.map((t) => [t.name, t.datatype, t.shape]));
  assert.equal(second.id, 'again', 'a hit answers with its own request id');
  assert.equal(second.version, '1');
  const s = target.stats.snapshot();
  assert.equal(s.cacheHit.count, 1);
  assert.equal(s.cacheMiss.count, 1);
  assert.ok(s.cacheHit.ns > 0 && s.cacheMiss.ns > 0, 'lookup times are recorded');
  assert.equal(s.executionCount, 0, 'a hit is no execution');
  assert.equal(s.inferenceCount, 0, 'a hit is no inference_count');
  assert.equal(s.success.count, 1, "the hit's success (the miss is the batcher's to record)");
  assert.equal(s.queue.count, 1, 'a hit counts in queue, as in Triton');
  assert.ok(s.lastInference > 0);
  assert.equal(cache.snapshot().entries, 1);
});

void test('the key: input bytes, shapes, datatypes, outputs, model and version; never the order of inputs', async () => {
  const cache = new ResponseCache({ limitBytes: 1 << 20 });
  const model = new FakeModel();
  await serve(cache, model, simpleRequest(1));
  assert.equal(model.runs, 1);
  const base = simpleRequest(1);
  const [in0, in1] = base.inputs as [Tensor, Tensor];
  // Each of these must miss: they differ in one thing only.
  const misses: [string, InferRequest, CacheTarget?, RequestPlan?][] = [
    ['other data', simpleRequest(2)],
    ['one byte differs', { ...base, inputs: [{ ...in0, data: Uint8Array.from(in0.data as Uint8Array, (b, i) => (i === 63 ? b ^ 1 : b)) }, in1] }],
    ['same bytes, other shape', { ...base, inputs: [{ ...in0, shape: [2, 8] }, { ...in1, shape: [2, 8] }] }],
    ['same bytes, other datatype', { ...base, inputs: [{ ...in0, datatype: 'FP32' }, in1] }],
    ['other outputs', simpleRequest(1), undefined, planOf(['OUTPUT1'])],
    ['other version', simpleRequest(1), targetOf(1, 'simple', '2')],
    ['other model', simpleRequest(1, 1, { model: 'other' }), targetOf(1, 'other')],
  ];
  for (const [why, request, target, plan] of misses) {
    const before: number = model.runs;
    await serve(cache, model, request, target, plan);
    assert.equal(model.runs, before + 1, `${why}: a miss`);
  }
  const before = model.runs;
  await serve(cache, model, { ...base, inputs: [in1, in0] });
  assert.equal(model.runs, before, 'the same inputs in another order: a hit');
});

void test('BYTES inputs are keyed element by element: ["a", "bc"] is not ["ab", "c"]', async () => {
  const cache = new ResponseCache({ limitBytes: 1 << 20 });
  const model = new FakeModel();
  const text = (elements: string[]): InferRequest => ({
    ...simpleRequest(1),
    inputs: [{ name: 'INPUT0', datatype: 'BYTES', shape: [1, elements.length], data: elements.map((e) => Buffer.from(e)) }],
  });
  const run = (elements: string[]): Promise<InferResponse> => cache.serve(targetOf(), text(elements), planOf(['OUTPUT0']), () => {
    model.runs++;
    return Promise.resolve({ id: '', model: 'simple', version: '1', outputs: [{ name: 'OUTPUT0', datatype: 'BYTES', shape: [1, elements.length], data: elements.map((e) => Buffer.from(e.toUpperCase())) }] });
  });
  await run(['a', 'bc']);
  await run(['ab', 'c']);
  assert.equal(model.runs, 2);
  const hit = await run(['a', 'bc']);
  assert.equal(model.runs, 2);
  assert.deepEqual((hit.outputs[0]!.data as Uint8Array[]).map((e) => Buffer.from(e).toString()), ['A', 'BC'], 'BYTES answers come back element by element');
});

void test('only successful answers are cached', async () => {
  const cache = new ResponseCache({ limitBytes: 1 << 20 });
  const model = new FakeModel();
  model.fail = new Error('the model failed');
  await assert.rejects(serve(cache, model, simpleRequest(3)), /the model failed/);
  assert.equal(cache.snapshot().entries, 0);
  model.fail = undefined;
  await serve(cache, model, simpleRequest(3));
  await serve(cache, model, simpleRequest(3));
  assert.equal(model.runs, 2, 'the failed request left nothing behind: the next one ran, the one after hit');
});

void test('LRU within the byte budget: the least recently used answer goes first', async () => {
  const size = await entryBytes();
  const cache = new ResponseCache({ limitBytes: Math.floor(2.5 * size) });
  const model = new FakeModel();
  await serve(cache, model, simpleRequest(1)); // A
  await serve(cache, model, simpleRequest(2)); // B
  await serve(cache, model, simpleRequest(1)); // A again: now the most recent
  assert.equal(model.runs, 2);
  await serve(cache, model, simpleRequest(3)); // C: evicts B
  assert.deepEqual(cache.snapshot(), { entries: 2, usedBytes: 2 * size, limitBytes: Math.floor(2.5 * size), evictions: 1 });
  await serve(cache, model, simpleRequest(1));
  await serve(cache, model, simpleRequest(3));
  assert.equal(model.runs, 3, 'A and C are still cached');
  await serve(cache, model, simpleRequest(2));
  assert.equal(model.runs, 4, 'B was evicted');
  assert.ok(cache.snapshot().usedBytes <= cache.snapshot().limitBytes);
});

void test('an answer larger than the whole budget is not cached, and evicts nothing', async () => {
  const size = await entryBytes();
  const cache = new ResponseCache({ limitBytes: size });
  const model = new FakeModel();
  await serve(cache, model, simpleRequest(1));
  assert.equal(cache.snapshot().entries, 1, 'an answer of exactly the budget fits');
  await serve(cache, model, simpleRequest(2, 2));
  assert.deepEqual(cache.snapshot(), { entries: 1, usedBytes: size, limitBytes: size, evictions: 0 });
  await serve(cache, model, simpleRequest(2, 2));
  assert.equal(model.runs, 3, 'the two-row answer ran both times');
  assert.throws(() => new ResponseCache({ limitBytes: 0 }), /positive/);
});

void test('the cache keeps its own copy: a client that reuses its buffers cannot change a stored answer', async () => {
  const cache = new ResponseCache({ limitBytes: 1 << 20 });
  const model = new FakeModel();
  const first = await serve(cache, model, simpleRequest(4));
  const expected = bytesOf(first);
  (first.outputs[0]!.data as Uint8Array).fill(0);
  assert.deepEqual(bytesOf(await serve(cache, model, simpleRequest(4))), expected);
  assert.equal(model.runs, 1);
});

void test('a new load of a version (a new generation) never gets the old load its answers, and drops them', async () => {
  const cache = new ResponseCache({ limitBytes: 1 << 20 });
  const model = new FakeModel();
  await serve(cache, model, simpleRequest(5), targetOf(1));
  await serve(cache, model, simpleRequest(6), targetOf(1));
  assert.equal(cache.snapshot().entries, 2);
  await serve(cache, model, simpleRequest(5), targetOf(2));
  assert.equal(model.runs, 3, 'generation 2 missed');
  assert.equal(cache.snapshot().entries, 1, "generation 1's answers are gone");
  await serve(cache, model, simpleRequest(5), targetOf(2));
  assert.equal(model.runs, 3);
});

// --- Through GatewayService, on real ONNX Runtime sessions ---

const SIMPLE_CONFIG = readFileSync(join(MODELS_ROOT, 'simple', 'config.pbtxt'), 'utf8');

/** The scheduler test repository plus `cached` (simple with response_cache on, config.pbtxt) and `jcached` (config.json). */
function cachedRepository(t: TestContext): string {
  const root = makeRepository(t);
  for (const name of ['cached', 'jcached']) {
    mkdirSync(join(root, name, '1'), { recursive: true });
    copyFileSync(join(MODELS_ROOT, 'simple', '1', 'model.onnx'), join(root, name, '1', 'model.onnx'));
  }
  writeFileSync(join(root, 'cached', 'config.pbtxt'), `${SIMPLE_CONFIG.replace('name: "simple"', 'name: "cached"')}\nresponse_cache { enable: true }\n`);
  writeFileSync(join(root, 'jcached', 'config.json'), JSON.stringify({ maxBatchSize: 8, responseCache: { enable: true } }));
  return root;
}

async function startService(t: TestContext, flags: readonly string[], logger: Logger = quietLogger): Promise<{ service: GatewayService; ex: OrtTestExecutor; root: string }> {
  keepAlive(t);
  const root = cachedRepository(t);
  const ex = new OrtTestExecutor({ root });
  const service = new GatewayService({ config: serviceConfig(root, flags), executor: ex, metrics: new Metrics({ defaultMetrics: false }), logger });
  t.after(async () => {
    service.close();
    await ex.close();
  });
  await service.start();
  return { service, ex, root };
}

void test('GatewayService: a hit never reaches the queue or the model; statistics count it as Triton does', async (t) => {
  const { service, ex } = await startService(t, ['--cache-config', 'local,size=1mb']);
  assert.equal(service.modelConfig('cached', '').responseCache?.enable, true);
  assert.equal(service.modelConfig('jcached', '').responseCache?.enable, true, 'config.json: responseCache');
  assert.equal(service.modelConfig('simple', '').responseCache?.enable, false);
  const first = await service.infer(simpleRequest(9, 2, { model: 'cached' }));
  const batches = ex.batches.length;
  const second = await service.infer(simpleRequest(9, 2, { model: 'cached' }));
  assert.equal(ex.batches.length, batches, 'the second request ran no batch');
  assert.deepEqual(second.outputs.map((o) => Buffer.from(o.data as Uint8Array)), first.outputs.map((o) => Buffer.from(o.data as Uint8Array)));
  assert.deepEqual(int32s(second.outputs[0]!), expectedSimple(9, 2).sum);
  const s = service.modelStats('cached', '1')[0]!;
  assert.deepEqual([s.executionCount, s.inferenceCount, s.success.count, s.cacheHit.count, s.cacheMiss.count], [1, 2, 2, 1, 1]);
  await service.infer(simpleRequest(9, 2, { model: 'jcached' }));
  await service.infer(simpleRequest(9, 2, { model: 'jcached' }));
  assert.equal(ex.batches.length, batches + 1, 'jcached ran once: its own entry, not cached\'s');
  // A model that does not enable the cache never uses it, on the same gateway.
  await service.infer(simpleRequest(9, 2));
  await service.infer(simpleRequest(9, 2));
  assert.equal(ex.batches.length, batches + 3);
  const plain = service.modelStats('simple', '1')[0]!;
  assert.deepEqual([plain.executionCount, plain.cacheHit.count, plain.cacheMiss.count], [2, 0, 0]);
  assert.equal(service.responseCacheStats()?.entries, 2);
});

void test('GatewayService: LRU eviction within a tiny --cache-config budget', async (t) => {
  const size = await entryBytes();
  const { service, ex } = await startService(t, ['--cache-config', `local,size=${Math.floor(1.5 * size)}`]);
  const run = async (seed: number): Promise<number> => {
    const before = ex.batches.length;
    await service.infer(simpleRequest(seed, 1, { model: 'cached' }));
    return ex.batches.length - before;
  };
  assert.deepEqual([await run(1), await run(1), await run(2), await run(2), await run(1)], [1, 0, 1, 0, 1], 'one answer fits: 2 evicted 1');
  assert.deepEqual(service.responseCacheStats(), { entries: 1, usedBytes: size, limitBytes: Math.floor(1.5 * size), evictions: 2 });
});

void test('GatewayService: without --cache-config, a model that enables the cache runs every request (and the start says so once)', async (t) => {
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger('warn', { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
  const { service, ex } = await startService(t, [], logger);
  const said = lines.filter((l) => typeof l['msg'] === 'string' && l['msg'].includes('response_cache'));
  assert.equal(said.length, 1, 'one line at start');
  assert.deepEqual(said[0]!['models'], ['cached', 'jcached']);
  const before = ex.batches.length;
  await service.infer(simpleRequest(9, 1, { model: 'cached' }));
  await service.infer(simpleRequest(9, 1, { model: 'cached' }));
  assert.equal(ex.batches.length, before + 2);
  const s = service.modelStats('cached', '1')[0]!;
  assert.deepEqual([s.executionCount, s.cacheHit.count, s.cacheMiss.count], [2, 0, 0]);
  assert.equal(service.responseCacheStats(), undefined);
});

void test('GatewayService: a version reloaded in place (its model file replaced) starts with no cached answers', async (t) => {
  const { service, ex, root } = await startService(t, ['--cache-config', 'local,size=1mb', '--model-control-mode', 'explicit', '--load-model', 'cached']);
  const run = async (): Promise<number> => {
    const before = ex.batches.length;
    await service.infer(simpleRequest(4, 1, { model: 'cached' }));
    return ex.batches.length - before;
  };
  assert.deepEqual([await run(), await run()], [1, 0]);
  const file = join(root, 'cached', '1', 'model.onnx');
  utimesSync(file, new Date(), new Date(Date.now() + 60_000));
  await service.loadModel('cached');
  assert.deepEqual([await run(), await run()], [1, 0], 'the new load missed once, then cached its own answer');
  assert.equal(service.responseCacheStats()?.entries, 1, "the old load's answer was dropped");
});
