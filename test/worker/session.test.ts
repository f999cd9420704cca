import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { elementSize, type DataType } from '../../src/core/datatypes.ts';
import { SluiceError } from '../../src/core/errors.ts';
import type { Tensor } from '../../src/core/tensor.ts';
import { SessionFactory } from '../../src/worker/session.ts';
import { SAMPLE_REPOSITORY, int32Bytes, int32Values, testLogger } from './helpers.ts';

const TYPES: readonly DataType[] = ['BOOL', 'UINT8', 'UINT16', 'UINT32', 'UINT64', 'INT8', 'INT16', 'INT32', 'INT64', 'FP16', 'FP32', 'FP64'];

function factory(): SessionFactory {
  return new SessionFactory({ device: 'cpu', deviceId: 0, cudaFallback: 'cpu', intraOpThreads: 1, logger: testLogger() });
}

function file(model: string): string {
  return join(SAMPLE_REPOSITORY, model, '1', 'model.onnx');
}

/** Bytes at an odd offset inside a larger buffer: a typed-array view of them is impossible without a copy. */
function misaligned(bytes: Uint8Array): Uint8Array {
  const backing = new Uint8Array(bytes.byteLength + 1);
  backing.set(bytes, 1);
  return backing.subarray(1);
}

void test('identity passes every datatype through bit for bit, aligned or not', async (t) => {
  const session = await factory().open('identity', file('identity'));
  t.after(() => session.release());
  const rows = 2;
  const cols = 3;
  const inputs: Tensor[] = TYPES.map((dt, k) => {
    const bytes = new Uint8Array(rows * cols * elementSize(dt));
    // BOOL must hold 0/1; FP16 0x3c00 = 1.0 keeps a valid number; the rest: any byte pattern.
    for (let i = 0; i < bytes.length; i++) bytes[i] = dt === 'BOOL' ? i % 2 : (i * 31 + k) & 0xff;
    if (dt === 'FP16') for (let i = 1; i < bytes.length; i += 2) bytes[i] = 0x3c;
    if (dt === 'FP32' || dt === 'FP64') new (dt === 'FP32' ? Float32Array : Float64Array)(bytes.buffer).forEach((_, i, a) => (a[i] = i * 1.5 - 2));
    return { name: `INPUT_${dt}`, datatype: dt, shape: [rows, cols], data: k % 2 === 0 ? misaligned(bytes) : bytes };
  });
  const text = ['zürich', '', '東京', 'a b', 'x', 'yy'].map((s) => new TextEncoder().encode(s));
  inputs.push({ name: 'INPUT_BYTES', datatype: 'BYTES', shape: [rows, cols], data: text });
  const r = await session.run(inputs, []);
  assert.equal(r.outputs.length, TYPES.length + 1);
  for (const input of inputs) {
    const out = r.outputs.find((o) => o.name === input.name.replace('INPUT_', 'OUTPUT_'));
    assert.ok(out, `missing output for ${input.name}`);
    assert.equal(out.datatype, input.datatype);
    assert.deepEqual(out.shape, [rows, cols]);
    if (input.datatype === 'BYTES') {
      assert.deepEqual((out.data as Uint8Array[]).map((e) => Buffer.from(e).toString()), (input.data as Uint8Array[]).map((e) => Buffer.from(e).toString()));
    } else {
      assert.deepEqual([...(out.data as Uint8Array)], [...(input.data as Uint8Array)], input.datatype);
    }
  }
  assert.ok(r.computeInferNs > 0);
});

void test('BYTES elements ONNX Runtime would corrupt (NUL, invalid UTF-8) are refused, not mangled', async (t) => {
  const session = await factory().open('simple_identity', file('simple_identity'));
  t.after(() => session.release());
  const run = (element: Uint8Array): Promise<unknown> => session.run([{ name: 'INPUT0', datatype: 'BYTES', shape: [1, 2], data: [Buffer.from('ok'), element] }], []);
  await assert.rejects(run(Buffer.from('a\u0000b')), (e: unknown) => e instanceof SluiceError && e.code === 'SLUICE_INVALID_TENSOR_DATA' && /'INPUT0'.*element 1 contains a NUL byte/.test(e.message));
  await assert.rejects(run(Uint8Array.from([0xff, 0xfe])), (e: unknown) => e instanceof SluiceError && e.kind === 'INVALID_ARG' && /element 1 is not valid UTF-8/.test(e.message));
  const r = await session.run([{ name: 'INPUT0', datatype: 'BYTES', shape: [1, 1], data: [Buffer.from('ünïcode')] }], []);
  assert.equal(Buffer.from((r.outputs[0]!.data as Uint8Array[])[0]!).toString(), 'ünïcode');
});

void test('simple computes sum and difference; asking for one output returns only that one', async (t) => {
  const session = await factory().open('simple', file('simple'));
  t.after(() => session.release());
  const a = Array.from({ length: 32 }, (_, i) => i * 3);
  const b = Array.from({ length: 32 }, (_, i) => 100 - i);
  const inputs: Tensor[] = [
    { name: 'INPUT0', datatype: 'INT32', shape: [2, 16], data: int32Bytes(a) },
    { name: 'INPUT1', datatype: 'INT32', shape: [2, 16], data: int32Bytes(b) },
  ];
  const r = await session.run(inputs, ['OUTPUT1']);
  assert.deepEqual(r.outputs.map((o) => o.name), ['OUTPUT1']);
  assert.deepEqual(int32Values(r.outputs[0]!.data), a.map((x, i) => x - b[i]!));
});

void test('inputs that do not fit the model are INVALID_ARG errors naming the tensor', async (t) => {
  const session = await factory().open('simple', file('simple'));
  t.after(() => session.release());
  const ok: Tensor = { name: 'INPUT0', datatype: 'INT32', shape: [1, 16], data: new Uint8Array(64) };
  const cases: [Tensor[], string[], RegExp, string][] = [
    [[ok, { ...ok, name: 'NOPE' }], [], /unexpected inference input 'NOPE'/, 'SLUICE_UNKNOWN_INPUT'],
    [[ok], [], /missing input 'INPUT1'/, 'SLUICE_MISSING_INPUT'],
    [[ok, { ...ok, name: 'INPUT1', datatype: 'FP32' }], [], /'INPUT1' data-type is 'FP32', but model 'simple' expects 'INT32'/, 'SLUICE_DATATYPE_MISMATCH'],
    [[ok, { ...ok, name: 'INPUT1', shape: [16], data: new Uint8Array(64) }], [], /shape for input 'INPUT1'/, 'SLUICE_SHAPE_MISMATCH'],
    [[ok, { ...ok, name: 'INPUT1' }], ['OUTPUT9'], /unexpected inference output 'OUTPUT9'/, 'SLUICE_UNKNOWN_OUTPUT'],
  ];
  for (const [inputs, outputs, pattern, code] of cases) {
    await assert.rejects(session.run(inputs, outputs), (e: unknown) => e instanceof SluiceError && e.code === code && e.kind === 'INVALID_ARG' && pattern.test(e.message));
  }
  // A wrong inner dimension passes the rank check and reaches ONNX Runtime: its error comes back wrapped.
  await assert.rejects(session.run([{ ...ok, shape: [2, 8] }, { ...ok, name: 'INPUT1' }], []), (e: unknown) => e instanceof SluiceError && e.code === 'SLUICE_INFERENCE_FAILED');
});

void test('a file that is not an ONNX model fails to load with the model named', async (t) => {
  const { tempRepository } = await import('./helpers.ts');
  const repo = tempRepository(t, [], { 'broken/1/model.onnx': 'this is not protobuf' });
  await assert.rejects(factory().open('broken', join(repo, 'broken', '1', 'model.onnx')), (e: unknown) => e instanceof SluiceError && e.code === 'SLUICE_MODEL_LOAD_FAILED' && /'broken'/.test(e.message));
});

void test('cuda with fallback cpu serves on the CPU when the CUDA provider cannot load; fallback fail refuses', async (t) => {
  const log = testLogger();
  const fallback = new SessionFactory({ device: 'cuda', deviceId: 0, cudaFallback: 'cpu', intraOpThreads: 1, logger: log });
  const s = await fallback.open('simple', file('simple'));
  t.after(() => s.release());
  // On a machine with a working CUDA provider the session runs there; everywhere else it falls back.
  assert.equal(s.provider, fallback.provider);
  if (s.provider === 'cuda') return;
  const r = await s.run([
    { name: 'INPUT0', datatype: 'INT32', shape: [1, 16], data: int32Bytes(Array(16).fill(5)) },
    { name: 'INPUT1', datatype: 'INT32', shape: [1, 16], data: int32Bytes(Array(16).fill(2)) },
  ], ['OUTPUT0']);
  assert.deepEqual(int32Values(r.outputs[0]!.data), Array(16).fill(7));
  const strict = new SessionFactory({ device: 'cuda', deviceId: 0, cudaFallback: 'fail', intraOpThreads: 1, logger: log });
  for (let i = 0; i < 2; i++) {
    await assert.rejects(strict.open('simple', file('simple')), (e: unknown) => e instanceof SluiceError && e.code === 'SLUICE_MODEL_LOAD_FAILED' && /CUDA/.test(e.message));
  }
});

void test('webgpu: the bundled provider serves when an adapter exists; without one the model falls back to the CPU with a warning naming WebGPU, or fails to load with fallback fail', async (t) => {
  const warnings: string[] = [];
  const errors: string[] = [];
  const log = { warn: (_: object, msg: string) => warnings.push(msg), error: (_: object, msg: string) => errors.push(msg) };
  const fallback = new SessionFactory({ device: 'webgpu', deviceId: 0, cudaFallback: 'cpu', intraOpThreads: 1, logger: log });
  const s = await fallback.open('simple', file('simple'));
  t.after(() => s.release());
  assert.equal(s.provider, fallback.provider);
  const r = await s.run([
    { name: 'INPUT0', datatype: 'INT32', shape: [1, 16], data: int32Bytes(Array(16).fill(5)) },
    { name: 'INPUT1', datatype: 'INT32', shape: [1, 16], data: int32Bytes(Array(16).fill(2)) },
  ], ['OUTPUT0']);
  assert.deepEqual(int32Values(r.outputs[0]!.data), Array(16).fill(7), `right answer on ${s.provider}`);
  if (s.provider === 'webgpu') {
    t.diagnostic('a WebGPU adapter exists here: the session runs on it');
    assert.deepEqual(warnings, []);
    return;
  }
  assert.equal(s.provider, 'cpu');
  assert.deepEqual(warnings, ['WebGPU execution provider cannot load; falling back to the CPU provider (cuda-fallback=cpu)']);
  // The probe is made once: a second model goes straight to the CPU, without another warning.
  const again = await fallback.open('simple', file('simple'));
  t.after(() => again.release());
  assert.equal(again.provider, 'cpu');
  assert.equal(warnings.length, 1);
  const strict = new SessionFactory({ device: 'webgpu', deviceId: 0, cudaFallback: 'fail', intraOpThreads: 1, logger: log });
  for (let i = 0; i < 2; i++) {
    await assert.rejects(strict.open('simple', file('simple')), (e: unknown) => e instanceof SluiceError && e.code === 'SLUICE_MODEL_LOAD_FAILED' && /the WebGPU execution provider cannot load and cuda-fallback is 'fail'/.test(e.message));
  }
  assert.equal(errors.length, 1, 'the failure is logged once, at error');
});
