// Queue policy against real ONNX Runtime sessions: bounds, deadlines from arrival, cancellation,
// draining, and what happens when a batch fails.
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { test, type TestContext } from 'node:test';
import { ShuttingDown, type SluiceError } from '../../src/core/errors.ts';
import { RequestMemory, requestBytes } from '../../src/scheduler/memory.ts';
import { batchLimitsOf } from '../../src/scheduler/policy.ts';
import type { Metrics } from '../../src/telemetry/metrics.ts';
import { expectedSimple, int32Tensor, int32s, keepAlive, makeBatcher, sampleConfig, seedsOfBatch, simpleRequest, sleep, submit, ticks } from './fixtures.ts';
import { OrtTestExecutor } from './ort-executor.ts';

function executor(t: TestContext, slots = 1): OrtTestExecutor {
  const ex = new OrtTestExecutor({ slots });
  t.after(() => ex.close());
  keepAlive(t);
  return ex;
}

function isError(code: string, kind: string, message?: RegExp): (e: SluiceError) => boolean {
  return (e) => {
    assert.equal(e.code, code);
    assert.equal(e.kind, kind);
    if (message) assert.match(e.message, message);
    return true;
  };
}

async function shed(metrics: Metrics, reason: string): Promise<number> {
  const m = await metrics.requestsShed.get();
  return m.values.find((v) => v.labels.reason === reason)?.value ?? 0;
}

function executedSeeds(ex: OrtTestExecutor): number[] {
  return ex.batches.flatMap((b) => seedsOfBatch(b.job.inputs));
}

void test('a full queue refuses at once with QueueFull (RESOURCE_EXHAUSTED); everything accepted is answered', async (t) => {
  const ex = executor(t);
  const config = await sampleConfig('simple', { defaultQueuePolicy: { maxQueueSize: 3 } });
  const rig = makeBatcher(ex, config);
  ex.hold();
  const accepted = [1, 2, 3, 4].map((seed) => submit(rig, config, simpleRequest(seed)));
  assert.equal(rig.batcher.depth(), 3, 'one request runs, three wait');
  await assert.rejects(submit(rig, config, simpleRequest(5)), isError('SLUICE_QUEUE_FULL', 'RESOURCE_EXHAUSTED', /model 'simple' is full \(max_queue_size 3\)/));
  assert.equal(await shed(rig.metrics, 'queue_full'), 1);
  // A front door asking before it reads a body gets the same answer, counted the same way.
  assert.equal(rig.batcher.refuseOnArrival(performance.now())?.code, 'SLUICE_QUEUE_FULL');
  assert.equal(await shed(rig.metrics, 'queue_full'), 2);
  ex.release();
  const answers = await Promise.all(accepted);
  answers.forEach((res, i) => assert.deepEqual(int32s(res.outputs[0]!), expectedSimple(i + 1, 1).sum));
  assert.deepEqual(executedSeeds(ex).sort(), [1, 2, 3, 4]);
});

void test('admission by expected wait: a request that would wait past max_expected_wait_microseconds is refused at once; the rest are answered', async (t) => {
  const ex = executor(t);
  const config = await sampleConfig('simple', { defaultQueuePolicy: { maxExpectedWaitUs: 15_000 } });
  const rig = makeBatcher(ex, config);
  const { maxRows } = batchLimitsOf(config);
  // Unmeasured, nothing is refused: the first batches measure the cost.
  assert.equal(ex.costOf('simple', '1'), undefined);
  ex.cost = { perBatchMs: 4, perRowMs: 0.5, workers: 1 };
  const batchMs = 4 + maxRows * 0.5;
  ex.hold();
  const running = submit(rig, config, simpleRequest(1));
  await ticks();
  // A request waits for the full batches queued ahead of it, each 4 + maxRows * 0.5 ms; the batch it
  // joins does not count, so the first maxRows queued requests are all admitted.
  assert.ok(batchMs > 15 && batchMs / 2 < 15, `simple batches ${maxRows} rows`);
  const queued = Array.from({ length: maxRows }, (_, i) => submit(rig, config, simpleRequest(i + 2)));
  const started = performance.now();
  await assert.rejects(submit(rig, config, simpleRequest(50)), isError('SLUICE_EXPECTED_WAIT_TOO_LONG', 'RESOURCE_EXHAUSTED', new RegExp(`would wait about ${batchMs * 1000} us .* max_expected_wait_microseconds of 15000`)));
  assert.ok(performance.now() - started < 50, 'refused at once, not after waiting');
  assert.equal(await shed(rig.metrics, 'expected_wait'), 1);
  assert.equal(rig.batcher.refuseOnArrival(performance.now())?.code, 'SLUICE_EXPECTED_WAIT_TOO_LONG', 'the same verdict from the headers alone');
  assert.equal(await shed(rig.metrics, 'expected_wait'), 2);
  // Two workers halve the wait: the same request is accepted.
  ex.cost = { perBatchMs: 4, perRowMs: 0.5, workers: 2 };
  assert.equal(rig.batcher.refuseOnArrival(performance.now()), undefined);
  const accepted = submit(rig, config, simpleRequest(51));
  ex.release();
  const answers = await Promise.all([running, ...queued, accepted]);
  assert.equal(answers.length, maxRows + 2, 'every accepted request is answered');
  assert.deepEqual(int32s(answers.at(-1)!.outputs[0]!), expectedSimple(51, 1).sum);
});

void test('the gateway memory bound refuses a request whose inputs would pass it, and every way out of the queue gives the bytes back', async (t) => {
  const ex = executor(t);
  const config = await sampleConfig('simple', { defaultQueuePolicy: { allowTimeoutOverride: true } });
  const one = requestBytes(simpleRequest(1));
  assert.equal(one, 2 * 16 * 4, 'two INT32 [1,16] inputs');
  const memory = new RequestMemory(3 * one);
  const rig = makeBatcher(ex, config, '1', memory);
  ex.hold();
  const accepted = [1, 2, 3].map((seed) => submit(rig, config, simpleRequest(seed)));
  assert.equal(memory.heldBytes, 3 * one, 'one running, two queued: all three held');
  await assert.rejects(submit(rig, config, simpleRequest(4)), isError('SLUICE_REQUEST_MEMORY_FULL', 'RESOURCE_EXHAUSTED', new RegExp(`model 'simple' needs ${one} bytes while accepted requests hold ${3 * one} of ${3 * one}`)));
  assert.equal(await shed(rig.metrics, 'queue_full'), 1);
  assert.equal(memory.heldBytes, 3 * one, 'a refused request holds nothing');
  ex.release();
  await Promise.all(accepted);
  assert.equal(memory.heldBytes, 0, 'answered requests give their bytes back');

  // Cancelled and expired requests give theirs back too.
  ex.hold();
  const running = submit(rig, config, simpleRequest(5));
  const ac = new AbortController();
  const cancelled = submit(rig, config, simpleRequest(6, 1, { signal: ac.signal }));
  const expired = submit(rig, config, simpleRequest(7, 1, { timeoutUs: 20_000 }));
  assert.equal(memory.heldBytes, 3 * one);
  ac.abort();
  await assert.rejects(cancelled, isError('SLUICE_REQUEST_CANCELLED', 'CANCELLED'));
  await assert.rejects(expired, isError('SLUICE_REQUEST_TIMEOUT', 'DEADLINE_EXCEEDED'));
  assert.equal(memory.heldBytes, one, 'only the running request still holds its bytes');
  ex.release();
  await running;
  assert.equal(memory.heldBytes, 0);
  // A request larger than the whole bound can never be accepted, whatever is held.
  await assert.rejects(submit(rig, config, simpleRequest(8, 4)), isError('SLUICE_REQUEST_MEMORY_FULL', 'RESOURCE_EXHAUSTED'));
  assert.equal(memory.heldBytes, 0);
});

void test('deadlines count from arrival: expired requests leave the queue, are rejected, and never run', async (t) => {
  const ex = executor(t);
  const config = await sampleConfig('simple', { defaultQueuePolicy: { defaultTimeoutUs: 40_000 } });
  const rig = makeBatcher(ex, config);
  ex.hold();
  const running = submit(rig, config, simpleRequest(1));
  const now = performance.now();
  const stale = submit(rig, config, simpleRequest(2, 1, { arrivalMs: now - 100 }));
  const older = submit(rig, config, simpleRequest(3, 1, { arrivalMs: now - 30 }));
  const fresh = submit(rig, config, simpleRequest(4, 1, { arrivalMs: now }));
  await assert.rejects(stale, isError('SLUICE_REQUEST_TIMEOUT', 'DEADLINE_EXCEEDED', /waited longer than 40000 us/));
  await assert.rejects(older, isError('SLUICE_REQUEST_TIMEOUT', 'DEADLINE_EXCEEDED'));
  const olderAt = performance.now() - now;
  assert.ok(olderAt >= 9, `the 30 ms old request expires about 10 ms in (${olderAt.toFixed(1)} ms)`);
  assert.equal(rig.batcher.depth(), 1, 'while the fresh one, 40 ms from its own arrival, still waits');
  await assert.rejects(fresh, isError('SLUICE_REQUEST_TIMEOUT', 'DEADLINE_EXCEEDED'));
  assert.ok(performance.now() - now >= 39);
  assert.equal(rig.batcher.depth(), 0);
  ex.release();
  await running;
  await ticks();
  assert.deepEqual(executedSeeds(ex), [1], 'no expired request ran');
  assert.equal(await shed(rig.metrics, 'timeout'), 3);
  assert.equal(rig.stats.snapshot().fail.count, 3);
});

void test('a request timeout overrides the default only when the policy allows it', async (t) => {
  const ex = executor(t);
  const strict = await sampleConfig('simple', { defaultQueuePolicy: { defaultTimeoutUs: 0, allowTimeoutOverride: false } });
  const lenient = await sampleConfig('simple', { defaultQueuePolicy: { defaultTimeoutUs: 0, allowTimeoutOverride: true } });
  const a = makeBatcher(ex, strict);
  const b = makeBatcher(ex, lenient);
  ex.hold();
  const running = submit(a, strict, simpleRequest(1));
  const ignored = submit(a, strict, simpleRequest(2, 1, { timeoutUs: 5_000 }));
  const honoured = submit(b, lenient, simpleRequest(3, 1, { timeoutUs: 5_000 }));
  await assert.rejects(honoured, isError('SLUICE_REQUEST_TIMEOUT', 'DEADLINE_EXCEEDED', /5000 us/));
  await sleep(20);
  assert.equal(a.batcher.depth(), 1, 'the strict model keeps the request: its policy has no timeout');
  ex.release();
  await running;
  assert.deepEqual(int32s((await ignored).outputs[0]!), expectedSimple(2, 1).sum);
});

void test('timeout action DELAY moves an expired request behind the others instead of rejecting it', async (t) => {
  const ex = executor(t);
  const config = await sampleConfig('simple', { preferredBatchSizes: [1], defaultQueuePolicy: { defaultTimeoutUs: 10_000, timeoutAction: 'DELAY' } }, { maxBatchSize: 1 });
  const rig = makeBatcher(ex, config);
  ex.hold();
  const all = [submit(rig, config, simpleRequest(1))];
  all.push(submit(rig, config, simpleRequest(2, 1, { arrivalMs: performance.now() - 50 })));
  all.push(submit(rig, config, simpleRequest(3)));
  ex.release();
  await Promise.all(all);
  assert.deepEqual(executedSeeds(ex), [1, 3, 2]);
});

void test('cancel before dispatch removes the request (RequestCancelled); after dispatch the answer still comes', async (t) => {
  const ex = executor(t);
  const config = await sampleConfig('simple');
  const rig = makeBatcher(ex, config);
  ex.hold();
  const runningAbort = new AbortController();
  const running = submit(rig, config, simpleRequest(1, 1, { signal: runningAbort.signal }));
  const queuedAbort = new AbortController();
  const queued = submit(rig, config, simpleRequest(2, 1, { signal: queuedAbort.signal }));
  const other = submit(rig, config, simpleRequest(3));
  queuedAbort.abort();
  runningAbort.abort();
  await assert.rejects(queued, isError('SLUICE_REQUEST_CANCELLED', 'CANCELLED', /model 'simple' was cancelled/));
  assert.equal(rig.batcher.depth(), 1);
  const gone = new AbortController();
  gone.abort();
  await assert.rejects(submit(rig, config, simpleRequest(4, 1, { signal: gone.signal })), isError('SLUICE_REQUEST_CANCELLED', 'CANCELLED'));
  ex.release();
  assert.deepEqual(int32s((await running).outputs[0]!), expectedSimple(1, 1).sum);
  await other;
  assert.deepEqual(executedSeeds(ex), [1, 3], 'the cancelled request never ran');
  assert.equal(await shed(rig.metrics, 'cancelled'), 2);
});

void test('drain resolves only once every queued and running request is answered', async (t) => {
  const ex = executor(t);
  const config = await sampleConfig('simple');
  const rig = makeBatcher(ex, config);
  ex.hold();
  let answered = 0;
  const all = [1, 2, 3, 4].map((seed) => submit(rig, config, simpleRequest(seed)).then(() => answered++));
  let drained = false;
  const drain = rig.batcher.drain().then(() => (drained = true));
  await ticks();
  assert.equal(drained, false);
  assert.equal(rig.batcher.inflight(), 1);
  ex.release();
  await drain;
  assert.equal(answered, 4);
  await Promise.all(all);
  assert.equal(rig.batcher.depth() + rig.batcher.inflight(), 0);
});

void test('close rejects what is still queued with the given error and stops sending', async (t) => {
  const ex = executor(t);
  const config = await sampleConfig('simple', { defaultQueuePolicy: { defaultTimeoutUs: 60_000_000 } });
  const rig = makeBatcher(ex, config);
  ex.hold();
  const running = submit(rig, config, simpleRequest(1));
  const queued = submit(rig, config, simpleRequest(2));
  rig.batcher.close(ShuttingDown());
  await assert.rejects(queued, isError('SLUICE_SHUTTING_DOWN', 'UNAVAILABLE'));
  await assert.rejects(submit(rig, config, simpleRequest(3)), isError('SLUICE_SHUTTING_DOWN', 'UNAVAILABLE'));
  ex.release();
  await running;
  assert.deepEqual(executedSeeds(ex), [1]);
});

void test('a batch the runtime rejects fails each of its requests, and only its requests', async (t) => {
  const ex = executor(t);
  // The config claims any width; the ONNX file insists on 16, so ONNX Runtime rejects 8-wide batches.
  const config = await sampleConfig('simple', {}, {
    inputs: [{ name: 'INPUT0', datatype: 'INT32', dims: [-1] }, { name: 'INPUT1', datatype: 'INT32', dims: [-1] }],
  });
  const rig = makeBatcher(ex, config);
  const narrow = (seed: number) => simpleRequest(seed, 1, { inputs: [int32Tensor('INPUT0', 1, 8, () => seed), int32Tensor('INPUT1', 1, 8, () => seed)] });
  ex.hold();
  const first = submit(rig, config, simpleRequest(1));
  const bad = [10, 11].map((seed) => submit(rig, config, narrow(seed)));
  const good = submit(rig, config, simpleRequest(2));
  ex.release();
  await first;
  for (const b of bad) await assert.rejects(b, isError('SLUICE_INFERENCE_FAILED', 'INTERNAL', /inference failed for model 'simple'/));
  assert.deepEqual(int32s((await good).outputs[1]!), expectedSimple(2, 1).diff);
  // The narrow pair formed its own batch; when it failed each ran alone (bisect.ts), failed again, and
  // with no batch-mate that ran both keep the inference error. Then the good one.
  assert.deepEqual(ex.batches.map((b) => b.job.rows), [1, 2, 1, 1, 1]);
  assert.equal(rig.stats.snapshot().fail.count, 2);
});

void test('queue duration is recorded per request at dispatch', async (t) => {
  const ex = executor(t);
  const config = await sampleConfig('simple');
  const rig = makeBatcher(ex, config);
  ex.hold();
  const all = [1, 2, 3].map((seed) => submit(rig, config, simpleRequest(seed)));
  await sleep(15);
  ex.release();
  await Promise.all(all);
  const hist = await rig.metrics.queueDuration.get();
  const count = hist.values.find((v) => v.metricName === 'sluice_queue_duration_seconds_count')?.value;
  const sum = hist.values.find((v) => v.metricName === 'sluice_queue_duration_seconds_sum')?.value ?? 0;
  assert.equal(count, 3);
  assert.ok(sum >= 0.028, `two requests waited about 15 ms each (sum ${sum})`);
  const stats = rig.stats.snapshot();
  assert.equal(stats.queue.count, 3);
  assert.ok(stats.queue.ns >= 28e6);
});
