import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { test } from 'node:test';
import { status, type ClientUnaryCall, type ServiceError } from '@grpc/grpc-js';
import { startGrpcServer } from '../../src/frontdoor/grpc/server.ts';
import { createLogger } from '../../src/telemetry/logger.ts';
import { startTestSluice, testConfig } from '../helpers/sluice.ts';
import { connectGrpc, expectStatus, int32Bytes, range16, simpleRequest, type Reply } from './client.ts';
import { slowSimpleConfig, tempRepository } from './repo.ts';

type Sluice = Awaited<ReturnType<typeof startTestSluice>>;

const DELAY_MS = 1500;

async function grpcRequests(sluice: Sluice, model?: string, statusLabel?: string): Promise<number> {
  const metric = await sluice.metrics.requests.get();
  return metric.values
    .filter((v) => v.labels['protocol'] === 'grpc' && (model === undefined || v.labels['model'] === model) && (statusLabel === undefined || v.labels['status'] === statusLabel))
    .reduce((n, v) => n + v.value, 0);
}

function executions(sluice: Sluice, model: string): number {
  return sluice.service.modelStats(model, '').reduce((n, s) => n + s.executionCount, 0);
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The bad-request table shared with REST, each row mapped to its gRPC status and what the message names. */
const BAD: readonly { what: string; request: Record<string, unknown>; code: status; says: string[] }[] = [
  { what: 'unknown model', request: { ...simpleRequest(range16(0), range16(0)), model_name: 'no_such_model' }, code: status.NOT_FOUND, says: ["'no_such_model'"] },
  { what: 'unknown version', request: simpleRequest(range16(0), range16(0), { model_version: '9' }), code: status.NOT_FOUND, says: ["'simple'", '9'] },
  { what: 'path-like model name', request: { ...simpleRequest(range16(0), range16(0)), model_name: '../models/simple' }, code: status.INVALID_ARGUMENT, says: ['../models/simple'] },
  { what: 'unknown input', request: { ...simpleRequest(range16(0), range16(0)), inputs: [{ name: 'INPUT0', datatype: 'INT32', shape: [1, 16] }, { name: 'INPUT9', datatype: 'INT32', shape: [1, 16] }] }, code: status.INVALID_ARGUMENT, says: ["'INPUT9'", "'simple'"] },
  { what: 'missing input', request: { model_name: 'simple', inputs: [{ name: 'INPUT0', datatype: 'INT32', shape: [1, 16] }], raw_input_contents: [int32Bytes(range16(0))] }, code: status.INVALID_ARGUMENT, says: ["'INPUT1'"] },
  { what: 'wrong datatype', request: { ...simpleRequest(range16(0), range16(0)), inputs: [{ name: 'INPUT0', datatype: 'FP32', shape: [1, 16] }, { name: 'INPUT1', datatype: 'INT32', shape: [1, 16] }] }, code: status.INVALID_ARGUMENT, says: ["'INPUT0'", 'FP32', 'INT32'] },
  { what: 'unknown datatype', request: { ...simpleRequest(range16(0), range16(0)), inputs: [{ name: 'INPUT0', datatype: 'INT128', shape: [1, 16] }, { name: 'INPUT1', datatype: 'INT32', shape: [1, 16] }] }, code: status.INVALID_ARGUMENT, says: ["'INPUT0'", 'INT128'] },
  { what: 'shape and data size disagree', request: { model_name: 'simple', inputs: [{ name: 'INPUT0', datatype: 'INT32', shape: [1, 16] }, { name: 'INPUT1', datatype: 'INT32', shape: [1, 16] }], raw_input_contents: [int32Bytes(range16(0)), Buffer.alloc(60)] }, code: status.INVALID_ARGUMENT, says: ["'INPUT1'", '64 bytes', '60 bytes'] },
  { what: 'typed contents count disagrees with the shape', request: { model_name: 'simple', inputs: [{ name: 'INPUT0', datatype: 'INT32', shape: [1, 16], contents: { int_contents: [1, 2, 3] } }, { name: 'INPUT1', datatype: 'INT32', shape: [1, 16], contents: { int_contents: range16(0) } }] }, code: status.INVALID_ARGUMENT, says: ["'INPUT0'", '16 elements', '3 elements'] },
  { what: 'huge shape, tiny data', request: { model_name: 'simple', inputs: [{ name: 'INPUT0', datatype: 'INT32', shape: [2147483648, 2147483648] }, { name: 'INPUT1', datatype: 'INT32', shape: [1, 16] }], raw_input_contents: [Buffer.alloc(64), Buffer.alloc(64)] }, code: status.INVALID_ARGUMENT, says: ["'INPUT0'", 'limit'] },
  { what: 'shape the model does not take', request: { model_name: 'simple', inputs: [{ name: 'INPUT0', datatype: 'INT32', shape: [1, 8] }, { name: 'INPUT1', datatype: 'INT32', shape: [1, 8] }], raw_input_contents: [Buffer.alloc(32), Buffer.alloc(32)] }, code: status.INVALID_ARGUMENT, says: ["'INPUT0'", '[-1,16]', '[1,8]'] },
  { what: 'batch above max_batch_size', request: simpleRequest(new Array<number>(33 * 16).fill(1), new Array<number>(33 * 16).fill(1)), code: status.INVALID_ARGUMENT, says: ['32', '33'] },
  { what: 'raw and typed contents mixed', request: { model_name: 'simple', inputs: [{ name: 'INPUT0', datatype: 'INT32', shape: [1, 16] }, { name: 'INPUT1', datatype: 'INT32', shape: [1, 16], contents: { int_contents: range16(0) } }], raw_input_contents: [int32Bytes(range16(0))] }, code: status.INVALID_ARGUMENT, says: ["'INPUT1'", "'simple'", 'raw_input_contents'] },
  { what: 'unknown output', request: simpleRequest(range16(0), range16(0), { outputs: [{ name: 'OUTPUT7' }] }), code: status.INVALID_ARGUMENT, says: ["'OUTPUT7'"] },
  { what: 'priority out of range', request: simpleRequest(range16(0), range16(0), { parameters: { priority: { int64_param: 9 } } }), code: status.INVALID_ARGUMENT, says: ['priority', '9'] },
  { what: 'classification not an integer', request: simpleRequest(range16(0), range16(0), { outputs: [{ name: 'OUTPUT0', parameters: { classification: { string_param: 'top3' } } }] }), code: status.INVALID_ARGUMENT, says: ['classification'] },
];

test('gRPC error paths', { timeout: 60_000 }, async (t) => {
  const repo = tempRepository(t, ['simple'], { slow: slowSimpleConfig('slow', DELAY_MS * 1000, 2) });
  const sluice = await startTestSluice(t, ['--model-repository', repo]);
  const c = connectGrpc(t, sluice.ports.grpc);

  await t.test('the bad-request table: each row has its status, a message naming the culprit, one metric', async () => {
    for (const row of BAD) {
      const before = await grpcRequests(sluice);
      await expectStatus(c.call('ModelInfer', row.request), row.code, ...row.says).catch((e: Error) => assert.fail(`${row.what}: ${e.message}`));
      assert.equal(await grpcRequests(sluice) - before, 1, `${row.what}: counted once`);
    }
    // A good request afterwards: nothing above left the server in a bad state.
    await c.call('ModelInfer', simpleRequest(range16(0), range16(0)));
  });

  await t.test('a message above the receive limit is RESOURCE_EXHAUSTED; the next call works', async () => {
    const config = testConfig(['--grpc-max-receive-message-size', '64kb']);
    const small = await startGrpcServer({ config, service: sluice.service, metrics: sluice.metrics, logger: createLogger('warn') });
    t.after(() => small.close());
    const sc = connectGrpc(t, small.port);
    const rows = 32;
    const big = { model_name: 'simple', inputs: [{ name: 'INPUT0', datatype: 'BYTES', shape: [rows, 16] }], raw_input_contents: [Buffer.alloc(80 * 1024)] };
    await expectStatus(sc.call('ModelInfer', big), status.RESOURCE_EXHAUSTED, String(64 * 1024));
    const ok = await sc.call('ModelInfer', simpleRequest(range16(0), range16(1)));
    assert.equal(ok['model_name'], 'simple');
  });

  await t.test('queue full: the request beyond max_queue_size is RESOURCE_EXHAUSTED, the queued ones are served', async () => {
    const before = await grpcRequests(sluice, 'slow', 'queue_full');
    const calls = [0, 1, 2].map((i) => c.call('ModelInfer', simpleRequest(range16(i), range16(0), { model_name: 'slow', id: `q${i}` })).then((r) => r, (e: ServiceError) => e));
    const results = await Promise.all(calls);
    const rejected = results.filter((r): r is ServiceError => r instanceof Error);
    assert.equal(rejected.length, 1, results.map((r) => (r instanceof Error ? r.details : 'ok')).join('; '));
    assert.equal(rejected[0]!.code, status.RESOURCE_EXHAUSTED);
    assert.match(rejected[0]!.details, /queue of model 'slow' is full/);
    assert.equal(results.filter((r) => !(r instanceof Error)).length, 2);
    assert.equal(await grpcRequests(sluice, 'slow', 'queue_full') - before, 1);
  });

  await t.test('a deadline shorter than the queue wait is DEADLINE_EXCEEDED at the deadline, and the request leaves the queue', async () => {
    const execBefore = executions(sluice, 'slow');
    const timeoutsBefore = await grpcRequests(sluice, 'slow', 'timeout');
    const start = performance.now();
    await expectStatus(c.call('ModelInfer', simpleRequest(range16(0), range16(0), { model_name: 'slow' }), { deadline: Date.now() + 300 }), status.DEADLINE_EXCEEDED);
    const elapsed = performance.now() - start;
    assert.ok(elapsed < DELAY_MS - 300, `answered after ${elapsed} ms, not at the deadline`);
    // Past the batcher's delay: a request still queued would have run by now.
    await sleep(DELAY_MS + 500);
    assert.equal(executions(sluice, 'slow'), execBefore, 'the expired request never ran');
    assert.equal(await grpcRequests(sluice, 'slow', 'timeout') - timeoutsBefore, 1);
  });

  await t.test('a cancelled call is dropped from the queue and counted as cancelled', async () => {
    const execBefore = executions(sluice, 'slow');
    const cancelledBefore = await grpcRequests(sluice, 'slow', 'cancelled');
    const client = c.client as unknown as { ModelInfer(r: object, cb: (e: ServiceError | null, r?: Reply) => void): ClientUnaryCall };
    const outcome = new Promise<ServiceError | null>((resolve) => {
      const call = client.ModelInfer(simpleRequest(range16(0), range16(0), { model_name: 'slow' }), (e) => resolve(e));
      setTimeout(() => call.cancel(), 200);
    });
    const err = await outcome;
    assert.equal(err?.code, status.CANCELLED);
    await sleep(DELAY_MS + 500);
    assert.equal(executions(sluice, 'slow'), execBefore, 'the cancelled request never ran');
    assert.equal(await grpcRequests(sluice, 'slow', 'cancelled') - cancelledBefore, 1);
  });
});
