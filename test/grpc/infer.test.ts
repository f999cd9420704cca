import assert from 'node:assert/strict';
import { once } from 'node:events';
import { performance } from 'node:perf_hooks';
import { test } from 'node:test';
import { status } from '@grpc/grpc-js';
import type { InferRequest, InferResponse, InferenceService } from '../../src/core/inference.ts';
import { encodeBytesElements } from '../../src/core/tensor.ts';
import { MAX_STREAM_INFLIGHT } from '../../src/frontdoor/grpc/infer.ts';
import { startGrpcServer } from '../../src/frontdoor/grpc/server.ts';
import { createLogger } from '../../src/telemetry/logger.ts';
import { startTestSluice, testConfig } from '../helpers/sluice.ts';
import { connectGrpc, expectStatus, int32Values, outputOf, range16, simpleRequest, type Reply } from './client.ts';

const le = (view: ArrayBufferView): Buffer => Buffer.from(view.buffer, view.byteOffset, view.byteLength);

/** Three elements of every datatype, as typed contents and as the bytes the model must echo. */
const TYPED: readonly { dt: string; field: string; values: unknown[]; bytes: Buffer }[] = [
  { dt: 'BOOL', field: 'bool_contents', values: [true, false, true], bytes: Buffer.from([1, 0, 1]) },
  { dt: 'UINT8', field: 'uint_contents', values: [0, 7, 255], bytes: Buffer.from([0, 7, 255]) },
  { dt: 'UINT16', field: 'uint_contents', values: [0, 513, 65535], bytes: le(new Uint16Array([0, 513, 65535])) },
  { dt: 'UINT32', field: 'uint_contents', values: [0, 70000, 4294967295], bytes: le(new Uint32Array([0, 70000, 4294967295])) },
  { dt: 'UINT64', field: 'uint64_contents', values: ['0', '9007199254740993', '18446744073709551615'], bytes: le(new BigUint64Array([0n, 9007199254740993n, 2n ** 64n - 1n])) },
  { dt: 'INT8', field: 'int_contents', values: [-128, -1, 127], bytes: le(new Int8Array([-128, -1, 127])) },
  { dt: 'INT16', field: 'int_contents', values: [-32768, 2, 32767], bytes: le(new Int16Array([-32768, 2, 32767])) },
  { dt: 'INT32', field: 'int_contents', values: [-2147483648, 3, 2147483647], bytes: le(new Int32Array([-2147483648, 3, 2147483647])) },
  { dt: 'INT64', field: 'int64_contents', values: ['-9223372036854775808', '-9007199254740993', '9223372036854775807'], bytes: le(new BigInt64Array([-(2n ** 63n), -9007199254740993n, 2n ** 63n - 1n])) },
  { dt: 'FP32', field: 'fp32_contents', values: [1.5, -0, 3.4028234663852886e38], bytes: le(new Float32Array([1.5, -0, 3.4028234663852886e38])) },
  { dt: 'FP64', field: 'fp64_contents', values: [Math.PI, -1e-300, 1e300], bytes: le(new Float64Array([Math.PI, -1e-300, 1e300])) },
  // ONNX Runtime string tensors carry UTF-8 without NUL bytes (the worker refuses others): multi-byte UTF-8 here.
  { dt: 'BYTES', field: 'bytes_contents', values: [Buffer.from('sluice'), Buffer.alloc(0), Buffer.from('süß ✓')], bytes: Buffer.from(encodeBytesElements([Buffer.from('sluice'), new Uint8Array(0), Buffer.from('süß ✓')])) },
];
/** FP16 has no typed field: 1.0, -2.0 and the largest finite half, as raw bits. */
const FP16 = { dt: 'FP16', bytes: le(new Uint16Array([0x3c00, 0xc000, 0x7bff])) };

/** Counts how many infer() calls are running at once on a real service, each held a little longer. */
function slowed(inner: InferenceService, holdMs: number): { service: InferenceService; maxConcurrent: () => number } {
  let running = 0;
  let max = 0;
  // Every method but infer goes straight to the real service (bound: it keeps #private state).
  const service: InferenceService = {
    serverMetadata: () => inner.serverMetadata(),
    isLive: () => inner.isLive(),
    isReady: () => inner.isReady(),
    hasModel: (name) => inner.hasModel(name),
    modelMetadata: (name, version) => inner.modelMetadata(name, version),
    modelReady: (name, version) => inner.modelReady(name, version),
    modelConfig: (name, version) => inner.modelConfig(name, version),
    modelStats: (name, version) => inner.modelStats(name, version),
    repositoryIndex: (readyOnly) => inner.repositoryIndex(readyOnly),
    loadModel: (name) => inner.loadModel(name),
    unloadModel: (name) => inner.unloadModel(name),
    refuseOnArrival: (name, version, arrivalMs) => inner.refuseOnArrival(name, version, arrivalMs),
    infer: async () => Promise.reject(new Error('replaced below')),
    generate: (r) => inner.generate(r),
    // Through the slowed infer below, as a model that is not decoupled answers once.
    inferStream: async (r, emit) => emit(await service.infer(r), true),
  };
  service.infer = async (r: InferRequest): Promise<InferResponse> => {
    running++;
    max = Math.max(max, running);
    try {
      await new Promise((res) => setTimeout(res, holdMs));
      return await inner.infer(r);
    } finally {
      running--;
    }
  };
  return { service, maxConcurrent: () => max };
}

async function requestCount(sluice: Awaited<ReturnType<typeof startTestSluice>>, model: string, statusLabel: string): Promise<number> {
  const metric = await sluice.metrics.requests.get();
  return metric.values.filter((v) => v.labels['model'] === model && v.labels['protocol'] === 'grpc' && v.labels['status'] === statusLabel).reduce((n, v) => n + v.value, 0);
}

test('inference over gRPC', { timeout: 60_000 }, async (t) => {
  const sluice = await startTestSluice(t);
  const c = connectGrpc(t, sluice.ports.grpc);

  await t.test('every datatype through raw contents is echoed bit for bit by the identity model', async () => {
    const all = [...TYPED, FP16];
    const reply = await c.call('ModelInfer', {
      model_name: 'identity',
      inputs: all.map((x) => ({ name: `INPUT_${x.dt}`, datatype: x.dt, shape: [1, 3] })),
      raw_input_contents: all.map((x) => x.bytes),
    });
    for (const x of all) {
      const out = outputOf(reply, `OUTPUT_${x.dt}`);
      assert.equal(out.datatype, x.dt);
      assert.deepEqual(out.shape, [1, 3]);
      assert.deepEqual(out.raw, x.bytes, x.dt);
    }
  });

  await t.test('every datatype with a typed field through typed contents, answered in raw contents', async () => {
    const reply = await c.call('ModelInfer', {
      model_name: 'identity',
      inputs: [
        ...TYPED.map((x) => ({ name: `INPUT_${x.dt}`, datatype: x.dt, shape: [1, 3], contents: { [x.field]: x.values } })),
        // FP16 has no typed field and raw contents cannot be mixed in: an empty FP16 tensor needs no data.
        { name: 'INPUT_FP16', datatype: 'FP16', shape: [1, 0] },
      ],
    });
    for (const x of TYPED) assert.deepEqual(outputOf(reply, `OUTPUT_${x.dt}`).raw, x.bytes, x.dt);
    assert.deepEqual(outputOf(reply, 'OUTPUT_FP16').shape, [1, 0]);
  });

  await t.test('simple: batched rows, typed contents, requested outputs subset, id echoed', async () => {
    const a = [...range16(0), ...range16(50)];
    const b = [...range16(10), ...range16(-20)];
    const reply = await c.call('ModelInfer', {
      model_name: 'simple', id: 'two-rows',
      inputs: [
        { name: 'INPUT0', datatype: 'INT32', shape: [2, 16], contents: { int_contents: a } },
        { name: 'INPUT1', datatype: 'INT32', shape: [2, 16], contents: { int_contents: b } },
      ],
      outputs: [{ name: 'OUTPUT1' }],
    });
    assert.equal(reply['id'], 'two-rows');
    assert.deepEqual((reply['outputs'] as { name: string }[]).map((o) => o.name), ['OUTPUT1']);
    const diff = outputOf(reply, 'OUTPUT1');
    assert.deepEqual(diff.shape, [2, 16]);
    assert.deepEqual(int32Values(diff.raw), a.map((x, i) => x - b[i]!));
  });

  await t.test('streaming: good and bad requests interleaved, each answered, the stream stays open', async () => {
    const before = { ok: await requestCount(sluice, 'simple', 'success'), bad: await requestCount(sluice, 'simple', 'invalid'), unknown: await requestCount(sluice, '_unknown', 'not_found') };
    const stream = c.stream();
    const replies = new Map<string, Reply>();
    stream.on('data', (r: Reply) => replies.set(r['infer_response']?.['id'] as string, r));
    const done = once(stream, 'status');
    const good = (id: string, k: number): Record<string, unknown> => simpleRequest(range16(k), range16(2 * k), { id });
    stream.write(good('g1', 1));
    stream.write({ model_name: 'no_such_model', id: 'b1', inputs: [] });
    stream.write(good('g2', 2));
    stream.write({ ...good('b2', 0), inputs: [{ name: 'INPUT0', datatype: 'INT32', shape: [1, 16], contents: { int_contents: range16(0) } }, { name: 'INPUT1', datatype: 'INT32', shape: [1, 16] }] });
    stream.write({ ...good('b3', 0), inputs: [{ name: 'INPUT0', datatype: 'INT32', shape: [1, 8] }, { name: 'INPUT1', datatype: 'INT32', shape: [1, 8] }], raw_input_contents: [Buffer.alloc(32), Buffer.alloc(32)] });
    stream.write(good('g3', 3));
    while (replies.size < 6) await once(stream, 'data');
    for (const [id, k] of [['g1', 1], ['g2', 2], ['g3', 3]] as const) {
      const r = replies.get(id)!;
      assert.equal(r['error_message'], '', id);
      assert.deepEqual(int32Values(outputOf(r['infer_response'] as Reply, 'OUTPUT0').raw), range16(k).map((x, i) => x + range16(2 * k)[i]!));
    }
    assert.match(replies.get('b1')!['error_message'] as string, /unknown model: 'no_such_model'/);
    assert.match(replies.get('b2')!['error_message'] as string, /contents field must not be specified when using raw_input_contents for 'INPUT0' for model 'simple'/);
    assert.match(replies.get('b3')!['error_message'] as string, /unexpected shape for input 'INPUT0' for model 'simple'/);
    // Still open after errors: one more request, then a clean end.
    stream.write(good('g4', 4));
    while (replies.size < 7) await once(stream, 'data');
    assert.equal(replies.get('g4')!['error_message'], '');
    stream.end();
    const [finalStatus] = (await done) as [{ code: number }];
    assert.equal(finalStatus.code, status.OK);
    // Exactly one metric observation per stream message.
    assert.equal(await requestCount(sluice, 'simple', 'success') - before.ok, 4);
    assert.equal(await requestCount(sluice, 'simple', 'invalid') - before.bad, 2);
    assert.equal(await requestCount(sluice, '_unknown', 'not_found') - before.unknown, 1);
  });

  await t.test(`a stream runs at most ${MAX_STREAM_INFLIGHT} requests at once and loses none`, async () => {
    const slow = slowed(sluice.service, 250);
    const server = await startGrpcServer({ config: testConfig(), service: slow.service, metrics: sluice.metrics, logger: createLogger('warn') });
    t.after(() => server.close());
    const sc = connectGrpc(t, server.port);
    const stream = sc.stream();
    const n = MAX_STREAM_INFLIGHT * 3;
    const seen = new Set<string>();
    let errors = 0;
    stream.on('data', (r: Reply) => {
      if (r['error_message'] !== '') errors++;
      seen.add(r['infer_response']['id'] as string);
    });
    for (let i = 0; i < n; i++) stream.write(simpleRequest(range16(i), range16(0), { id: `r${i}` }));
    stream.end();
    await once(stream, 'status');
    assert.equal(errors, 0);
    assert.equal(seen.size, n);
    assert.equal(slow.maxConcurrent(), MAX_STREAM_INFLIGHT);
  });

  await t.test('shutdown answers a stream\'s in-flight requests, then ends the stream instead of waiting for the client', async () => {
    const slow = slowed(sluice.service, 300);
    const server = await startGrpcServer({ config: testConfig(), service: slow.service, metrics: sluice.metrics, logger: createLogger('warn') });
    const sc = connectGrpc(t, server.port);
    const stream = sc.stream();
    const replies: Reply[] = [];
    stream.on('data', (r: Reply) => replies.push(r));
    const ended = once(stream, 'status');
    stream.write(simpleRequest(range16(1), range16(1), { id: 'in-flight' }));
    await new Promise((r) => setTimeout(r, 100));
    const start = performance.now();
    await server.close();
    const [finalStatus] = (await ended) as [{ code: number }];
    assert.ok(performance.now() - start < 5000, 'close did not wait for the client to end its stream');
    assert.equal(finalStatus.code, status.OK);
    assert.deepEqual(replies.map((r) => [r['error_message'], r['infer_response']['id']]), [['', 'in-flight']]);
  });

  await t.test('a wrong-typed request on a unary call is INVALID_ARGUMENT and counted once', async () => {
    const before = await requestCount(sluice, 'simple', 'invalid');
    await expectStatus(c.call('ModelInfer', { ...simpleRequest(range16(0), range16(0)), inputs: [{ name: 'INPUT0', datatype: 'FP32', shape: [1, 16] }, { name: 'INPUT1', datatype: 'INT32', shape: [1, 16] }] }), status.INVALID_ARGUMENT, "'INPUT0'", 'FP32', 'INT32');
    assert.equal(await requestCount(sluice, 'simple', 'invalid') - before, 1);
  });
});
