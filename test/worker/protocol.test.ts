import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SluiceError } from '../../src/core/errors.ts';
import type { BatchJob } from '../../src/core/execution.ts';
import type { Tensor } from '../../src/core/tensor.ts';
import {
  MAX_FRAME_HEADER_BYTES, decodeInferRequest, decodeInferResponse, encodeInferRequest, encodeInferResponse, errorFromWorker,
} from '../../src/worker/protocol.ts';
import { parseModelRef } from '../../src/worker/control.ts';

const enc = new TextEncoder();

function int32(values: number[]): Uint8Array {
  return new Uint8Array(Int32Array.from(values).buffer);
}

const JOB: BatchJob = {
  model: 'simple',
  version: '1',
  rows: 2,
  inputs: [
    { name: 'INPUT0', datatype: 'INT32', shape: [2, 3], data: int32([1, 2, 3, 4, 5, 6]) },
    { name: 'INPUT1', datatype: 'FP64', shape: [2, 1], data: new Uint8Array(Float64Array.from([0.5, -1.25]).buffer) },
    { name: 'TEXT', datatype: 'BYTES', shape: [2], data: [enc.encode('héllo'), new Uint8Array(0)] },
  ],
  outputs: ['OUTPUT0', 'OUTPUT1'],
};

/** A frame built by hand: u32 LE header length, header JSON, payload. */
function frame(header: unknown, payload: Uint8Array = new Uint8Array(0)): Buffer {
  const json = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header));
  const len = Buffer.alloc(4);
  len.writeUInt32LE(json.byteLength);
  return Buffer.concat([len, json, payload]);
}

function assertInvalid(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof SluiceError, `expected SluiceError, got ${String(e)}`);
    assert.equal(e.kind, 'INVALID_ARG');
    assert.match(e.message, pattern);
    return true;
  });
}

void test('request frame round trip keeps names, shapes and bytes of every tensor', () => {
  const chunks = encodeInferRequest(JOB);
  // Fixed-size tensors are referenced, not copied: the chunk shares the caller's memory.
  assert.equal(chunks[1]!.buffer, (JOB.inputs[0]!.data as Uint8Array).buffer);
  const body = Buffer.concat(chunks);
  const { header, inputs } = decodeInferRequest(body);
  assert.deepEqual({ model: header.model, version: header.version, rows: header.rows, outputs: header.outputs }, { model: 'simple', version: '1', rows: 2, outputs: ['OUTPUT0', 'OUTPUT1'] });
  assert.equal(inputs.length, 3);
  assert.deepEqual([...new Int32Array(Uint8Array.from(inputs[0]!.data as Uint8Array).buffer)], [1, 2, 3, 4, 5, 6]);
  assert.deepEqual([...new Float64Array(Uint8Array.from(inputs[1]!.data as Uint8Array).buffer)], [0.5, -1.25]);
  const text = inputs[2]!.data as Uint8Array[];
  assert.deepEqual(text.map((e) => Buffer.from(e).toString('utf8')), ['héllo', '']);
  assert.deepEqual(inputs.map((t) => [t.name, t.datatype, t.shape]), JOB.inputs.map((t) => [t.name, t.datatype, t.shape]));
  // The header is padded so the first tensor starts 8-byte aligned within the frame.
  assert.equal((4 + body.readUInt32LE(0)) % 8, 0);
});

void test('response frame round trip keeps tensors, timings and cacheHit', () => {
  const outputs: Tensor[] = [
    { name: 'OUTPUT0', datatype: 'FP16', shape: [1, 2], data: Uint8Array.from([0x00, 0x3c, 0x00, 0xc0]) },
    { name: 'OUTPUT1', datatype: 'BOOL', shape: [3], data: Uint8Array.from([1, 0, 1]) },
  ];
  const body = Buffer.concat(encodeInferResponse({ outputs, computeInputNs: 10, computeInferNs: 2000, computeOutputNs: 30, cacheHit: true }));
  const r = decodeInferResponse(body);
  assert.equal(r.computeInferNs, 2000);
  assert.equal(r.cacheHit, true);
  assert.deepEqual(r.outputs.map((t) => [t.name, t.datatype, t.shape, [...(t.data as Uint8Array)]]), outputs.map((t) => [t.name, t.datatype, t.shape, [...(t.data as Uint8Array)]]));
});

void test('a tensor whose data does not match its shape is refused when encoding', () => {
  const bad: BatchJob = { ...JOB, inputs: [{ name: 'X', datatype: 'FP32', shape: [2, 2], data: new Uint8Array(12) }] };
  assertInvalid(() => encodeInferRequest(bad), /'X'.*needs 16 bytes, has 12/);
});

void test('malformed request frames are INVALID_ARG errors naming the problem', () => {
  const good = { model: 'simple', version: '1', rows: 1, outputs: [], inputs: [{ name: 'A', datatype: 'INT32', shape: [1, 2], byteLength: 8 }] };
  const eight = new Uint8Array(8);
  const cases: [string, () => unknown, RegExp][] = [
    ['empty body', () => decodeInferRequest(Buffer.alloc(0)), /shorter than its 4-byte header length/],
    ['header length past the end', () => decodeInferRequest(Buffer.from([100, 0, 0, 0, 123])), /runs past the end/],
    ['huge header length, checked before allocating', () => decodeInferRequest(Buffer.from([0xff, 0xff, 0xff, 0xff])), new RegExp(`exceeds ${MAX_FRAME_HEADER_BYTES}`)],
    ['header not JSON', () => decodeInferRequest(frame('{"model":')), /header is not JSON/],
    ['header an array', () => decodeInferRequest(frame([])), /must be a JSON object/],
    ['bad model name', () => decodeInferRequest(frame({ ...good, model: '../etc' }, eight)), /invalid model name/],
    ['bad version', () => decodeInferRequest(frame({ ...good, version: '0' }, eight)), /invalid version/],
    ['negative rows', () => decodeInferRequest(frame({ ...good, rows: -1 }, eight)), /rows must be a non-negative integer/],
    ['outputs not names', () => decodeInferRequest(frame({ ...good, outputs: [3] }, eight)), /outputs must be an array of output names/],
    ['inputs not an array', () => decodeInferRequest(frame({ ...good, inputs: {} }, eight)), /inputs must be an array/],
    ['unknown datatype', () => decodeInferRequest(frame({ ...good, inputs: [{ ...good.inputs[0], datatype: 'FP8' }] }, eight)), /unknown datatype "FP8"/],
    ['negative dim', () => decodeInferRequest(frame({ ...good, inputs: [{ ...good.inputs[0], shape: [-1, 2] }] }, eight)), /invalid shape/],
    ['overflowing shape', () => decodeInferRequest(frame({ ...good, inputs: [{ ...good.inputs[0], shape: [1e9, 1e9], byteLength: 8 }] }, eight)), /invalid shape/],
    ['byteLength disagrees with shape', () => decodeInferRequest(frame({ ...good, inputs: [{ ...good.inputs[0], byteLength: 4 }] }, eight.subarray(0, 4))), /needs 8 bytes but declares 4/],
    ['payload shorter than declared', () => decodeInferRequest(frame(good, eight.subarray(0, 6))), /declare 8 bytes but the frame carries 6/],
    ['payload longer than declared', () => decodeInferRequest(frame(good, new Uint8Array(9))), /declare 8 bytes but the frame carries 9/],
    ['duplicate tensor', () => decodeInferRequest(frame({ ...good, inputs: [good.inputs[0], good.inputs[0]] }, new Uint8Array(16))), /'A' appears twice/],
    ['BYTES element past the end', () => decodeInferRequest(frame({ ...good, inputs: [{ name: 'S', datatype: 'BYTES', shape: [1], byteLength: 6 }] }, Uint8Array.from([9, 0, 0, 0, 1, 2]))), /'S'.*past the end/],
    ['BYTES with too few elements', () => decodeInferRequest(frame({ ...good, inputs: [{ name: 'S', datatype: 'BYTES', shape: [2], byteLength: 9 }] }, Uint8Array.from([5, 0, 0, 0, 1, 2, 3, 4, 5]))), /'S'/],
  ];
  for (const [name, fn, pattern] of cases) {
    try {
      assertInvalid(fn, pattern);
    } catch (e) {
      assert.fail(`${name}: ${(e as Error).message}`);
    }
  }
});

void test('malformed response frames are refused too', () => {
  assertInvalid(() => decodeInferResponse(frame({ outputs: [], computeInputNs: 1, computeInferNs: 1, computeOutputNs: 1 })), /cacheHit/);
  assertInvalid(() => decodeInferResponse(frame({ outputs: [], computeInputNs: -1, computeInferNs: 1, computeOutputNs: 1, cacheHit: false })), /computeInputNs/);
});

void test('random garbage never crashes the decoder: it decodes or throws INVALID_ARG', () => {
  const base = Buffer.concat(encodeInferRequest(JOB));
  let seed = 42;
  const rand = (n: number): number => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  for (let i = 0; i < 500; i++) {
    const body = Buffer.from(base);
    for (let k = 0; k < 1 + rand(4); k++) body[rand(body.byteLength)] = rand(256);
    const cut = rand(3) === 0 ? body.subarray(0, rand(body.byteLength)) : body;
    try {
      decodeInferRequest(cut);
    } catch (e) {
      assert.ok(e instanceof SluiceError && e.kind === 'INVALID_ARG', `iteration ${i}: ${String(e)}`);
    }
  }
});

void test('errorFromWorker rebuilds the worker error, or names the worker when the body is not one', () => {
  const e = errorFromWorker('w0', 404, JSON.stringify({ code: 'SLUICE_MODEL_NOT_FOUND', kind: 'NOT_FOUND', message: "Request for unknown model: 'x' is not found" }));
  assert.equal(e.code, 'SLUICE_MODEL_NOT_FOUND');
  assert.equal(e.kind, 'NOT_FOUND');
  const other = errorFromWorker('w0', 502, Buffer.from('<html>bad gateway</html>'));
  assert.equal(other.code, 'SLUICE_WORKER_FAILED');
  assert.match(other.message, /w0.*HTTP 502.*bad gateway/);
  const badKind = errorFromWorker('w1', 500, JSON.stringify({ code: 'X', kind: 'WHATEVER', message: 'm' }));
  assert.equal(badKind.code, 'SLUICE_WORKER_FAILED');
});

void test('parseModelRef validates /load and /unload bodies', () => {
  assert.deepEqual(parseModelRef({ model: 'mlp', version: '3' }), { model: 'mlp', version: '3' });
  assertInvalid(() => parseModelRef({ model: 'mlp', version: 3 }), /invalid version 3/);
  assertInvalid(() => parseModelRef({ model: '..', version: '1' }), /invalid model name/);
  assertInvalid(() => parseModelRef(null), /JSON object/);
});
