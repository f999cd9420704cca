import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Writable } from 'node:stream';
import { SluiceError } from '../../src/core/errors.ts';
import { createLogger } from '../../src/telemetry/logger.ts';
import { OrtThread } from '../../src/worker/ort-client.ts';
import { packFrame } from '../../src/worker/ort-messages.ts';
import { encodeInferRequest, decodeInferRequest } from '../../src/worker/protocol.ts';
import { SAMPLE_REPOSITORY, fp32Job, fp32Values, health, infer, int32Values, simpleJob, spawnWorker, testLogger } from './helpers.ts';

/** A cnn batch whose values depend on `seed`, so two batches have different answers. */
function cnnJob(rows: number, seed: number): ReturnType<typeof fp32Job> {
  const job = fp32Job('cnn', rows, [3, 64, 64]);
  const values = new Float32Array(rows * 3 * 64 * 64).map((_, i) => (((i + seed) * 7919) % 1000) / 1000);
  return { ...job, inputs: [{ ...job.inputs[0]!, data: new Uint8Array(values.buffer) }] };
}

void test('the main thread answers /health while a long batch runs in the ORT thread', async (t) => {
  const w = await spawnWorker(t, ['--listen', '127.0.0.1:0', '--model-repository', SAMPLE_REPOSITORY, '--intra-op-threads', '1', '--load-model', 'cnn']);
  let answered = false;
  // Large enough that its run lasts many /health round trips even on a fast machine.
  const batch = infer(w.pool, cnnJob(128, 1)).then((r) => {
    answered = true;
    return r;
  });
  // Probes one after the other, counting those answered with the batch running and before its answer.
  // With ONNX Runtime on the main thread at most one could be (read just before the run began); the
  // next waited for the run to end, by which time the batch's own answer had been written.
  let whileRunning = 0;
  while (!answered) {
    const h = await health(w.pool);
    if (!answered && h.running) whileRunning++;
  }
  const r = await batch;
  assert.ok(r.ok, JSON.stringify(r));
  assert.ok(whileRunning >= 3, `only ${whileRunning} /health probes were answered during the run`);
  assert.ok(r.value.computeInferNs > 0 && r.value.computeInputNs > 0, 'compute timings are measured in the thread');
  assert.equal(typeof r.value.workerQueueNs, 'number', 'the answer reports the time waited in the worker');
  assert.equal((await health(w.pool)).running, false);
});

void test('batches sent back to back (large, small, BYTES) all come back right', async (t) => {
  const w = await spawnWorker(t, ['--listen', '127.0.0.1:0', '--model-repository', SAMPLE_REPOSITORY, '--intra-op-threads', '1', '--load-model', 'cnn,simple,simple_identity']);
  const a = cnnJob(32, 1);
  const b = cnnJob(32, 2);
  // One at a time first: the reference answers.
  const refA = await infer(w.pool, a);
  const refB = await infer(w.pool, b);
  assert.ok(refA.ok && refB.ok);
  assert.notDeepEqual(fp32Values(refA.value.outputs[0]!.data), fp32Values(refB.value.outputs[0]!.data));
  // Then back to back, with a small frame (pooled Buffer: copied, not transferred) and a BYTES one between.
  const { job: small, input0 } = simpleJob(1);
  const words = ['héllo', '', 'wörld', '🙂'].map((s) => Buffer.from(s));
  const [ra, rs, rw, rb] = await Promise.all([
    infer(w.pool, a),
    infer(w.pool, small),
    infer(w.pool, { model: 'simple_identity', version: '1', rows: 2, inputs: [{ name: 'INPUT0', datatype: 'BYTES', shape: [2, 2], data: words }], outputs: ['OUTPUT0'] }),
    infer(w.pool, b),
  ]);
  assert.ok(ra.ok && rb.ok && rs.ok && rw.ok, JSON.stringify([ra, rs, rw, rb].filter((r) => !r.ok)));
  assert.deepEqual(fp32Values(ra.value.outputs[0]!.data), fp32Values(refA.value.outputs[0]!.data));
  assert.deepEqual(fp32Values(rb.value.outputs[0]!.data), fp32Values(refB.value.outputs[0]!.data));
  assert.deepEqual(int32Values(rs.value.outputs[0]!.data), input0.map((x) => x + 1));
  assert.deepEqual((rw.value.outputs[0]!.data as Uint8Array[]).map((e) => Buffer.from(e).toString()), ['héllo', '', 'wörld', '🙂']);
  const h = await health(w.pool);
  assert.deepEqual({ running: h.running, queued: h.queuedBatches }, { running: false, queued: 0 });
});

void test('errors raised in the ORT thread keep their code and kind', async (t) => {
  const w = await spawnWorker(t, ['--listen', '127.0.0.1:0', '--model-repository', SAMPLE_REPOSITORY, '--intra-op-threads', '1']);
  const nul = await infer(w.pool, { model: 'simple_identity', version: '1', rows: 1, inputs: [{ name: 'INPUT0', datatype: 'BYTES', shape: [1, 1], data: [Uint8Array.from([97, 0, 98])] }], outputs: [] });
  assert.ok(!nul.ok);
  assert.deepEqual([nul.status, nul.code, nul.kind], [400, 'SLUICE_INVALID_TENSOR_DATA', 'INVALID_ARG']);
  assert.match(nul.message, /NUL byte/);
  const wrongType = await infer(w.pool, { ...simpleJob(1).job, inputs: simpleJob(1).job.inputs.map((i) => ({ ...i, datatype: 'UINT32' as const })) });
  assert.ok(!wrongType.ok && wrongType.code === 'SLUICE_DATATYPE_MISMATCH', JSON.stringify(wrongType));
});

void test('the CUDA fallback warning logged in the thread reaches the main logger; /health reports the CPU', async (t) => {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(chunk.toString());
      done();
    },
  });
  const logger = createLogger('warn', sink);
  const ort = new OrtThread({ device: 'cuda', deviceId: 0, cudaFallback: 'cpu', intraOpThreads: 1, worker: 'w-cuda', logger });
  t.after(() => ort.close());
  assert.equal(ort.provider, 'cuda', 'cuda until the probe says otherwise');
  const s = await ort.open('simple', `${SAMPLE_REPOSITORY}/simple/1/model.onnx`);
  assert.equal(s.provider, 'cpu');
  assert.equal(ort.provider, 'cpu');
  assert.ok(lines.some((l) => /falling back to the CPU provider/.test(l)), lines.join(''));
  const r = await s.run(simpleJob(1).job.inputs, ['OUTPUT0']);
  assert.deepEqual(int32Values(r.outputs[0]!.data), simpleJob(1).input0.map((x) => x + 1));
  await s.release();
});

void test('a dead ORT thread fails calls in flight and later with SLUICE_WORKER_FAILED, once', async () => {
  const deaths: SluiceError[] = [];
  const ort = new OrtThread({
    device: 'cpu', deviceId: 0, cudaFallback: 'cpu', intraOpThreads: 1, worker: 'w-dies', logger: testLogger(),
    entry: new URL('./fixtures/dying-thread.ts', import.meta.url), onDeath: (e) => deaths.push(e),
  });
  const isDeath = (e: unknown): boolean => e instanceof SluiceError && e.code === 'SLUICE_WORKER_FAILED' && e.kind === 'UNAVAILABLE' && /w-dies.*ONNX Runtime thread died.*simulated crash/.test(e.message);
  await assert.rejects(ort.open('simple', 'x.onnx'), isDeath);
  await assert.rejects(ort.open('simple', 'x.onnx'), isDeath);
  assert.equal(deaths.length, 1);
  await ort.close();
});

void test('frames move to the thread without copies when they own their memory, and are copied when pooled', () => {
  const big = decodeFrame(Buffer.concat(encodeInferRequest(cnnJob(2, 1))));
  assert.ok(big.body.byteLength > 4096 && big.body.byteOffset === 0 && big.body.byteLength === big.body.buffer.byteLength);
  const moved = packFrame(big.inputs, big.body);
  assert.deepEqual(moved.transfer, [big.body.buffer]);
  assert.equal(moved.tensors[0]!.data, big.inputs[0]!.data, 'same view, nothing copied');
  const small = decodeFrame(Buffer.concat(encodeInferRequest(simpleJob(1).job)));
  assert.ok(small.body.byteLength < small.body.buffer.byteLength, 'a small frame lives in the shared Buffer pool');
  const copied = packFrame(small.inputs, small.body);
  assert.equal(copied.transfer.length, 1);
  assert.notEqual(copied.transfer[0], small.body.buffer, 'the pool is never transferred');
  assert.equal(copied.transfer[0]!.byteLength, small.body.byteLength, 'one copy of just the frame');
  assert.deepEqual(copied.tensors.map((x) => [...(x.data as Uint8Array)]), small.inputs.map((x) => [...(x.data as Uint8Array)]));
});

function decodeFrame(body: Buffer): { body: Buffer; inputs: ReturnType<typeof decodeInferRequest>['inputs'] } {
  return { body, inputs: decodeInferRequest(body).inputs };
}
