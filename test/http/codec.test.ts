import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import { deflateRawSync, deflateSync, gzipSync } from 'node:zlib';
import { errorCatalog, type SluiceError } from '../../src/core/errors.ts';
import { encodeBytesElements, MAX_TENSOR_ELEMENTS } from '../../src/core/tensor.ts';
import { decodeContentEncoding, readBody } from '../../src/frontdoor/http/body.ts';
import { decodeInferBody, decodeRawBody, parseHeaderLength, type InferContext } from '../../src/frontdoor/http/infer-request.ts';
import { encodeInferResponse, splitBinaryBody } from '../../src/frontdoor/http/infer-response.ts';
import { negotiateEncoding } from '../../src/frontdoor/http/infer-route.ts';
import { decodeJsonTensorData, encodeJsonTensorData } from '../../src/frontdoor/http/json-tensor.ts';
import { httpStatusOf, httpStatusOfError } from '../../src/frontdoor/http/status.ts';

const ctx: InferContext = { model: 'm', version: '', arrivalMs: 1 };

function bytes(view: ArrayBufferView): number[] {
  return Array.from(new Uint8Array(view.buffer, view.byteOffset, view.byteLength));
}

function throwsSluice(fn: () => unknown, code: string, message: RegExp): void {
  assert.throws(fn, (e: SluiceError) => {
    assert.equal(e.code, code, e.message);
    assert.match(e.message, message);
    return true;
  });
}

test('JSON data decodes to little-endian bytes for every fixed datatype', () => {
  const cases: [string, unknown[], ArrayBufferView][] = [
    ['BOOL', [true, false, true], new Uint8Array([1, 0, 1])],
    ['UINT8', [0, 255, 7], new Uint8Array([0, 255, 7])],
    ['UINT16', [0, 65535, 258], new Uint16Array([0, 65535, 258])],
    ['UINT32', [0, 4294967295, 1], new Uint32Array([0, 4294967295, 1])],
    ['UINT64', ['18446744073709551615', 0, 42], new BigUint64Array([18446744073709551615n, 0n, 42n])],
    ['INT8', [-128, 127, 0], new Int8Array([-128, 127, 0])],
    ['INT16', [-32768, 32767, -1], new Int16Array([-32768, 32767, -1])],
    ['INT32', [-2147483648, 2147483647, 5], new Int32Array([-2147483648, 2147483647, 5])],
    ['INT64', ['-9223372036854775808', '9223372036854775807', -3], new BigInt64Array([-(2n ** 63n), 2n ** 63n - 1n, -3n])],
    ['FP32', [1.5, -0.25, 'Infinity'], new Float32Array([1.5, -0.25, Infinity])],
    ['FP64', [0.1, -1e300, 'NaN'], new Float64Array([0.1, -1e300, NaN])],
  ];
  for (const [dt, values, expected] of cases) {
    const got = decodeJsonTensorData('x', dt as 'INT8', values, 3) as Uint8Array;
    assert.deepEqual(bytes(got), bytes(expected), dt);
  }
  const strings = decodeJsonTensorData('s', 'BYTES', ['héllo', ''], 2) as Uint8Array[];
  assert.deepEqual(strings.map((b) => Buffer.from(b).toString()), ['héllo', '']);
});

test('nested JSON data flattens row-major and must match the shape element count', () => {
  const nested = decodeJsonTensorData('x', 'INT32', [[1, 2, 3], [4, 5, 6]], 6) as Uint8Array;
  assert.deepEqual(bytes(nested), bytes(new Int32Array([1, 2, 3, 4, 5, 6])));
  throwsSluice(() => decodeJsonTensorData('x', 'INT32', [[1, 2], [3]], 4), 'SLUICE_DATA_SIZE_MISMATCH', /tensor 'x'.*4 elements, got 3 elements/);
  throwsSluice(() => decodeJsonTensorData('x', 'INT32', [1, 2, 3, 4, 5], 4), 'SLUICE_DATA_SIZE_MISMATCH', /more than 4/);
  // 100k levels of nesting: no stack overflow, a clean size error.
  let deep: unknown = [1];
  for (let i = 0; i < 100_000; i++) deep = [deep];
  throwsSluice(() => decodeJsonTensorData('x', 'INT32', deep, 2), 'SLUICE_DATA_SIZE_MISMATCH', /2 elements, got 1 elements/);
});

test('JSON data is range- and type-checked per datatype, naming the element', () => {
  throwsSluice(() => decodeJsonTensorData('a', 'INT8', [1, 128], 2), 'SLUICE_INVALID_TENSOR_DATA', /element 1 \(128\) is out of range for INT8 \[-128, 127\]/);
  throwsSluice(() => decodeJsonTensorData('a', 'UINT8', [-1], 1), 'SLUICE_INVALID_TENSOR_DATA', /out of range for UINT8/);
  throwsSluice(() => decodeJsonTensorData('a', 'INT32', [1.5], 1), 'SLUICE_INVALID_TENSOR_DATA', /element 0 \(1.5\) is not an integer/);
  throwsSluice(() => decodeJsonTensorData('a', 'INT32', ['7'], 1), 'SLUICE_INVALID_TENSOR_DATA', /is not an integer \(INT32\)/);
  throwsSluice(() => decodeJsonTensorData('a', 'UINT64', ['-1'], 1), 'SLUICE_INVALID_TENSOR_DATA', /out of range for UINT64/);
  throwsSluice(() => decodeJsonTensorData('a', 'INT64', ['9223372036854775808'], 1), 'SLUICE_INVALID_TENSOR_DATA', /out of range for INT64/);
  throwsSluice(() => decodeJsonTensorData('a', 'INT64', [2 ** 60], 1), 'SLUICE_INVALID_TENSOR_DATA', /exactly representable.*decimal strings/);
  throwsSluice(() => decodeJsonTensorData('a', 'BOOL', [1], 1), 'SLUICE_INVALID_TENSOR_DATA', /true or false/);
  throwsSluice(() => decodeJsonTensorData('a', 'BYTES', [5], 1), 'SLUICE_INVALID_TENSOR_DATA', /is not a string/);
  throwsSluice(() => decodeJsonTensorData('a', 'FP32', [null], 1), 'SLUICE_INVALID_TENSOR_DATA', /is not a number/);
  throwsSluice(() => decodeJsonTensorData('a', 'FP16', [1], 1), 'SLUICE_DATATYPE_NEEDS_BINARY', /FP16 has no JSON representation/);
  throwsSluice(() => decodeJsonTensorData('a', 'BF16', [1], 1), 'SLUICE_DATATYPE_NEEDS_BINARY', /BF16/);
  throwsSluice(() => decodeJsonTensorData('a', 'FP32', 3, 1), 'SLUICE_INVALID_TENSOR_DATA', /'data' must be an array/);
});

test('JSON encoding: exact 64-bit literals, strings for non-finite floats, unaligned views', () => {
  const i64 = { name: 'o', datatype: 'INT64' as const, shape: [2], data: new Uint8Array(new BigInt64Array([2n ** 63n - 1n, -5n]).buffer) };
  assert.equal(encodeJsonTensorData(i64), '[9223372036854775807,-5]');
  const f32 = { name: 'o', datatype: 'FP32' as const, shape: [3], data: new Uint8Array(new Float32Array([0.5, NaN, -Infinity]).buffer) };
  assert.equal(encodeJsonTensorData(f32), '[0.5,"NaN","-Infinity"]');
  const backing = new Uint8Array(9);
  backing.set(new Uint8Array(new Int32Array([7, -7]).buffer), 1);
  assert.equal(encodeJsonTensorData({ name: 'o', datatype: 'INT32', shape: [2], data: backing.subarray(1) }), '[7,-7]');
  assert.equal(encodeJsonTensorData({ name: 'o', datatype: 'BOOL', shape: [2], data: new Uint8Array([1, 0]) }), '[true,false]');
  assert.equal(encodeJsonTensorData({ name: 'o', datatype: 'BYTES', shape: [2], data: [Buffer.from('a"b'), Buffer.from('ü')] }), '["a\\"b","ü"]');
  assert.equal(encodeJsonTensorData({ name: 'o', datatype: 'FP16', shape: [1], data: new Uint8Array(2) }), undefined);
});

test('infer body: JSON and binary inputs mixed, parameters, requested outputs', () => {
  const header = {
    id: 'r1',
    parameters: { priority: 2, timeout: 1500, binary_data_output: true },
    inputs: [
      { name: 'A', shape: [2], datatype: 'INT32', parameters: { binary_data_size: 8 } },
      { name: 'B', shape: [1, 2], datatype: 'FP32', data: [[1, 2]] },
      { name: 'C', shape: [2], datatype: 'BYTES', parameters: { binary_data_size: 13 } },
    ],
    outputs: [{ name: 'X', parameters: { binary_data: false } }, { name: 'Y' }],
  };
  const json = Buffer.from(JSON.stringify(header));
  const a = Buffer.from(new Int32Array([3, -4]).buffer);
  const c = Buffer.from(encodeBytesElements([Buffer.from('hi'), Buffer.from('you')]));
  const body = Buffer.concat([json, a, c]);
  const { request, encoding } = decodeInferBody(body, json.byteLength, ctx);
  assert.equal(request.id, 'r1');
  assert.equal(request.priority, 2);
  assert.equal(request.timeoutUs, 1500);
  assert.equal(request.protocol, 'http');
  assert.deepEqual(request.outputs, ['X', 'Y']);
  assert.deepEqual(bytes(request.inputs[0]!.data as Uint8Array), bytes(new Int32Array([3, -4])));
  assert.deepEqual(request.inputs[1]!.shape, [1, 2]);
  assert.deepEqual((request.inputs[2]!.data as Uint8Array[]).map((e) => Buffer.from(e).toString()), ['hi', 'you']);
  assert.equal(encoding.binaryDefault, true);
  assert.equal(encoding.binary.get('X'), false);
  assert.equal(encoding.binary.has('Y'), false);
});

test('infer body: sizes are checked before use', () => {
  const make = (inputs: unknown[], tail: Buffer): Buffer => {
    const json = Buffer.from(JSON.stringify({ inputs }));
    return Buffer.concat([json, tail]);
  };
  const hdr = (inputs: unknown[]): number => Buffer.byteLength(JSON.stringify({ inputs }));
  const i32 = (size: number): unknown[] => [{ name: 'A', shape: [4], datatype: 'INT32', parameters: { binary_data_size: size } }];
  throwsSluice(() => decodeInferBody(make(i32(12), Buffer.alloc(12)), hdr(i32(12)), ctx), 'SLUICE_DATA_SIZE_MISMATCH', /need 16 bytes.*binary_data_size 12/);
  throwsSluice(() => decodeInferBody(make(i32(16), Buffer.alloc(8)), hdr(i32(16)), ctx), 'SLUICE_INVALID_TENSOR_DATA', /runs past the end/);
  throwsSluice(() => decodeInferBody(make(i32(16), Buffer.alloc(20)), hdr(i32(16)), ctx), 'SLUICE_INVALID_BINARY_HEADER', /4 bytes of binary data/);
  throwsSluice(() => decodeInferBody(make(i32(-1), Buffer.alloc(0)), hdr(i32(-1)), ctx), 'SLUICE_INVALID_PARAMETER', /binary_data_size/);
  const huge = [{ name: 'A', shape: [1 << 20, 1 << 20], datatype: 'INT32', data: [1] }];
  throwsSluice(() => decodeInferBody(make(huge, Buffer.alloc(0)), undefined, ctx), 'SLUICE_TOO_MANY_ELEMENTS', new RegExp(`limit of ${MAX_TENSOR_ELEMENTS} elements`));
  const bytesBad = [{ name: 'S', shape: [2], datatype: 'BYTES', parameters: { binary_data_size: 6 } }];
  const tail = Buffer.from([5, 0, 0, 0, 104, 105]);
  throwsSluice(() => decodeInferBody(make(bytesBad, tail), hdr(bytesBad), ctx), 'SLUICE_INVALID_TENSOR_DATA', /claims 5 bytes past the end/);
});

test('Inference-Header-Content-Length is validated against the body', () => {
  assert.equal(parseHeaderLength(undefined, 10), undefined);
  assert.equal(parseHeaderLength(' 7 ', 10), 7);
  throwsSluice(() => parseHeaderLength('11', 10), 'SLUICE_INVALID_BINARY_HEADER', /11 exceeds the body length 10/);
  throwsSluice(() => parseHeaderLength('-1', 10), 'SLUICE_INVALID_BINARY_HEADER', /not a non-negative integer/);
  throwsSluice(() => parseHeaderLength('1e3', 2000), 'SLUICE_INVALID_BINARY_HEADER', /not a non-negative integer/);
});

test('raw binary body: the single input shape is deduced from the size', () => {
  const spec = { name: 'IN', datatype: 'FP32' as const, shape: [-1, 4] };
  const { request } = decodeRawBody(Buffer.alloc(32), spec, ctx);
  assert.deepEqual(request.inputs[0]!.shape, [2, 4]);
  throwsSluice(() => decodeRawBody(Buffer.alloc(20), spec, ctx), 'SLUICE_DATA_SIZE_MISMATCH', /a multiple of 4 elements/);
  throwsSluice(() => decodeRawBody(Buffer.alloc(6), spec, ctx), 'SLUICE_DATA_SIZE_MISMATCH', /a multiple of 4 bytes/);
  throwsSluice(() => decodeRawBody(Buffer.alloc(8), { ...spec, shape: [-1, -1] }, ctx), 'SLUICE_INVALID_REQUEST', /more than one variable dimension/);
  throwsSluice(() => decodeRawBody(Buffer.alloc(8), undefined, ctx), 'SLUICE_INVALID_REQUEST', /exactly one input/);
  const str = decodeRawBody(Buffer.from('abc'), { name: 'S', datatype: 'BYTES', shape: [-1, 1] }, ctx).request.inputs[0]!;
  assert.deepEqual(str.shape, [1, 1]);
  assert.equal(Buffer.from((str.data as Uint8Array[])[0]!).toString(), 'abc');
});

test('infer response: JSON, binary per output or by default, FP16 always binary', () => {
  const outputs = [
    { name: 'A', datatype: 'INT32' as const, shape: [2], data: new Uint8Array(new Int32Array([1, 2]).buffer) },
    { name: 'H', datatype: 'FP16' as const, shape: [1], data: new Uint8Array([0x00, 0x3c]) },
    { name: 'S', datatype: 'BYTES' as const, shape: [1], data: [Buffer.from('ok')] },
  ];
  const res = { id: '', model: 'm', version: '1', outputs };
  const mixed = encodeInferResponse(res, { binaryDefault: false, binary: new Map([['S', true]]) });
  assert.equal(mixed.contentType, 'application/octet-stream');
  const { json, binary } = splitBinaryBody(mixed.body, mixed.headerLength);
  assert.deepEqual(json, {
    model_name: 'm', model_version: '1', outputs: [
      { name: 'A', datatype: 'INT32', shape: [2], data: [1, 2] },
      { name: 'H', datatype: 'FP16', shape: [1], parameters: { binary_data_size: 2 } },
      { name: 'S', datatype: 'BYTES', shape: [1], parameters: { binary_data_size: 6 } },
    ],
  });
  assert.deepEqual(Array.from(binary), [0x00, 0x3c, 2, 0, 0, 0, 0x6f, 0x6b]);
  const plain = encodeInferResponse({ ...res, id: 'q', outputs: [outputs[0]!] }, { binaryDefault: false, binary: new Map() });
  assert.equal(plain.headerLength, undefined);
  assert.equal(plain.contentType, 'application/json');
  assert.equal(plain.body.toString(), '{"id":"q","model_name":"m","model_version":"1","outputs":[{"name":"A","datatype":"INT32","shape":[2],"data":[1,2]}]}');
  const allBinary = encodeInferResponse({ ...res, outputs: [outputs[0]!] }, { binaryDefault: true, binary: new Map() });
  assert.equal(allBinary.body.byteLength - allBinary.headerLength!, 8);
});

test('request bodies: gzip and deflate (zlib or raw) decode; bombs, truncation and unknown encodings are refused', async () => {
  const data = Buffer.from('{"hello":"world"}');
  const limit = 1024;
  assert.deepEqual(await decodeContentEncoding(gzipSync(data), { 'content-encoding': 'gzip' }, limit), data);
  assert.deepEqual(await decodeContentEncoding(deflateSync(data), { 'content-encoding': 'deflate' }, limit), data);
  assert.deepEqual(await decodeContentEncoding(deflateRawSync(data), { 'content-encoding': 'Deflate' }, limit), data);
  assert.equal(await decodeContentEncoding(data, {}, limit), data);
  const bomb = gzipSync(Buffer.alloc(10 * 1024 * 1024));
  assert.ok(bomb.byteLength < limit * 20);
  await assert.rejects(decodeContentEncoding(bomb, { 'content-encoding': 'gzip' }, limit), (e: SluiceError) => e.code === 'SLUICE_BODY_TOO_LARGE' && /limit of 1024 bytes once gzip-decompressed/.test(e.message));
  const gz = gzipSync(Buffer.alloc(500, 7));
  await assert.rejects(decodeContentEncoding(gz.subarray(0, gz.byteLength - 10), { 'content-encoding': 'gzip' }, limit), /failed to decompress the gzip request body: unexpected end of file/);
  await assert.rejects(decodeContentEncoding(data, { 'content-encoding': 'gzip' }, limit), /failed to decompress the gzip request body/);
  await assert.rejects(decodeContentEncoding(data, { 'content-encoding': 'br' }, limit), /unsupported Content-Encoding 'br'/);
});

test('readBody stops at the limit, whatever the declared length', async () => {
  const ok = await readBody(Readable.from([Buffer.alloc(10), Buffer.alloc(10)]), {}, 20);
  assert.equal(ok.byteLength, 20);
  await assert.rejects(readBody(Readable.from([Buffer.alloc(15), Buffer.alloc(15)]), {}, 20), /exceeds the limit of 20 bytes/);
  await assert.rejects(readBody(Readable.from([]), { 'content-length': '21' }, 20), /exceeds the limit of 20 bytes/);
});

test('Accept-Encoding negotiation prefers gzip and honours q=0', () => {
  assert.equal(negotiateEncoding(undefined), undefined);
  assert.equal(negotiateEncoding('gzip, deflate'), 'gzip');
  assert.equal(negotiateEncoding('deflate'), 'deflate');
  assert.equal(negotiateEncoding('gzip;q=0, deflate;q=0.5'), 'deflate');
  assert.equal(negotiateEncoding('br, identity'), undefined);
});

test('every error kind maps to the HTTP status Triton clients expect', () => {
  const expected: Record<string, number> = { INVALID_ARG: 400, NOT_FOUND: 404, ALREADY_EXISTS: 400, UNAVAILABLE: 503, RESOURCE_EXHAUSTED: 503, DEADLINE_EXCEEDED: 504, CANCELLED: 499, UNIMPLEMENTED: 501, UNAUTHENTICATED: 401, PERMISSION_DENIED: 403, RATE_LIMITED: 429, INTERNAL: 500 };
  for (const kind of new Set(errorCatalog().values())) assert.equal(httpStatusOf(kind), expected[kind], kind);
  assert.equal(httpStatusOfError({ code: 'SLUICE_BODY_TOO_LARGE', kind: 'INVALID_ARG' } as SluiceError), 413);
});
