import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { status } from '@grpc/grpc-js';
import { errorCatalog, isSluiceError, type ErrorKind, type SluiceError } from '../../src/core/errors.ts';
import { decodeBytesElements, isBytesData, type Tensor } from '../../src/core/tensor.ts';
import { decodeInferRequest, encodeInferResponse, type DecodeContext } from '../../src/frontdoor/grpc/codec.ts';
import { loadInferenceService, type ModelInferRequestMsg } from '../../src/frontdoor/grpc/proto.ts';
import { ERROR_CODE_KEY, grpcStatusOf, toServiceError } from '../../src/frontdoor/grpc/status.ts';

// Every message here goes through real protobufjs encoding and decoding, with the very serializers
// grpc-js uses on each side of the wire (proto-loader's, from protos/).
const infer = loadInferenceService()['ModelInfer']!;
const CTX: DecodeContext = { arrivalMs: 1, deadlineUs: 0 };

function wire(request: Record<string, unknown>): ModelInferRequestMsg {
  return infer.requestDeserialize(infer.requestSerialize(request)) as ModelInferRequestMsg;
}

function decode(request: Record<string, unknown>, ctx: DecodeContext = CTX) {
  return decodeInferRequest(wire(request), ctx);
}

function rejects(request: Record<string, unknown>, code: string, ...fragments: string[]): SluiceError {
  let caught: unknown;
  try {
    decode(request);
  } catch (e) {
    caught = e;
  }
  assert.ok(isSluiceError(caught), `expected ${code}, got ${String(caught)}`);
  assert.equal(caught.code, code, caught.message);
  for (const f of fragments) assert.ok(caught.message.includes(f), `'${caught.message}' should mention '${f}'`);
  return caught;
}

function bytesOf(view: ArrayBufferView): Buffer {
  return Buffer.from(view.buffer, view.byteOffset, view.byteLength);
}

function fixed(t: Tensor | undefined): Uint8Array {
  assert.ok(t && !isBytesData(t.data));
  return t.data;
}

describe('typed contents become little-endian tensor bytes', () => {
  const cases: [string, string, unknown[], ArrayBufferView][] = [
    ['BOOL', 'bool_contents', [true, false, true], new Uint8Array([1, 0, 1])],
    ['INT8', 'int_contents', [-128, 0, 127], new Int8Array([-128, 0, 127])],
    ['INT16', 'int_contents', [-32768, 1, 32767], new Int16Array([-32768, 1, 32767])],
    ['INT32', 'int_contents', [-2147483648, 5, 2147483647], new Int32Array([-2147483648, 5, 2147483647])],
    ['INT64', 'int64_contents', ['-9223372036854775808', '9007199254740993', '9223372036854775807'], new BigInt64Array([-(2n ** 63n), 9007199254740993n, 2n ** 63n - 1n])],
    ['UINT8', 'uint_contents', [0, 128, 255], new Uint8Array([0, 128, 255])],
    ['UINT16', 'uint_contents', [0, 40000, 65535], new Uint16Array([0, 40000, 65535])],
    ['UINT32', 'uint_contents', [0, 3000000000, 4294967295], new Uint32Array([0, 3000000000, 4294967295])],
    ['UINT64', 'uint64_contents', ['0', '18446744073709551615', '9007199254740993'], new BigUint64Array([0n, 2n ** 64n - 1n, 9007199254740993n])],
    ['FP32', 'fp32_contents', [1.5, -0.25, 3.4e38], new Float32Array([1.5, -0.25, 3.4e38])],
    ['FP64', 'fp64_contents', [Math.PI, -1e-300, 1e300], new Float64Array([Math.PI, -1e-300, 1e300])],
  ];
  for (const [datatype, field, values, expected] of cases) {
    test(datatype, () => {
      const r = decode({ model_name: 'm', inputs: [{ name: 'X', datatype, shape: [1, 3], contents: { [field]: values } }] });
      assert.deepEqual(r.inputs[0]!.shape, [1, 3]);
      assert.deepEqual(Buffer.from(fixed(r.inputs[0])), bytesOf(expected));
    });
  }

  test('BYTES from bytes_contents, one element per entry (empty and binary ones included)', () => {
    const elements = [Buffer.from('hello'), Buffer.alloc(0), Buffer.from([0, 255, 10])];
    const r = decode({ model_name: 'm', inputs: [{ name: 'S', datatype: 'BYTES', shape: [3], contents: { bytes_contents: elements } }] });
    const data = r.inputs[0]!.data;
    assert.ok(isBytesData(data));
    assert.deepEqual(data.map((e) => Buffer.from(e)), elements);
  });

  test('FP16 and BF16 have no typed field and must come raw', () => {
    rejects({ model_name: 'm', inputs: [{ name: 'H', datatype: 'FP16', shape: [1], contents: { fp32_contents: [1] } }] }, 'SLUICE_INVALID_TENSOR_DATA', "'H'", 'raw_input_contents');
  });

  test('contents in the field of another datatype are rejected by name', () => {
    rejects({ model_name: 'm', inputs: [{ name: 'X', datatype: 'INT32', shape: [2], contents: { fp32_contents: [1, 2] } }] }, 'SLUICE_INVALID_TENSOR_DATA', "'X'", 'int_contents', 'fp32_contents');
  });

  test('a value outside a narrow integer type is rejected, not wrapped', () => {
    rejects({ model_name: 'm', inputs: [{ name: 'B', datatype: 'INT8', shape: [2], contents: { int_contents: [1, 200] } }] }, 'SLUICE_INVALID_TENSOR_DATA', "'B'", 'element 1', '200');
    rejects({ model_name: 'm', inputs: [{ name: 'U', datatype: 'UINT8', shape: [1], contents: { uint_contents: [256] } }] }, 'SLUICE_INVALID_TENSOR_DATA', '256');
  });

  test('element count must match the shape', () => {
    rejects({ model_name: 'm', inputs: [{ name: 'X', datatype: 'FP32', shape: [2, 3], contents: { fp32_contents: [1, 2, 3] } }] }, 'SLUICE_DATA_SIZE_MISMATCH', "'X'", '6 elements', '3 elements');
  });
});

describe('raw_input_contents', () => {
  test('fixed-size tensors are taken as sent, without a copy of their bytes', () => {
    const a = bytesOf(new Int32Array([1, 2, 3, 4]));
    const h = bytesOf(new Uint16Array([0x3c00, 0xc000]));
    const msg = wire({ model_name: 'm', inputs: [{ name: 'A', datatype: 'INT32', shape: [2, 2] }, { name: 'H', datatype: 'FP16', shape: [2] }], raw_input_contents: [a, h] });
    const r = decodeInferRequest(msg, CTX);
    assert.equal(fixed(r.inputs[0]).buffer, msg.raw_input_contents[0]!.buffer);
    assert.deepEqual(Buffer.from(fixed(r.inputs[0])), a);
    assert.deepEqual(Buffer.from(fixed(r.inputs[1])), h);
    assert.equal(r.inputs[1]!.datatype, 'FP16');
  });

  test('BYTES raw is 4-byte little-endian length-prefixed elements', () => {
    const raw = Buffer.concat([Buffer.from([2, 0, 0, 0]), Buffer.from('hi'), Buffer.from([0, 0, 0, 0]), Buffer.from([1, 0, 0, 0, 0x7f])]);
    const r = decode({ model_name: 'm', inputs: [{ name: 'S', datatype: 'BYTES', shape: [3] }], raw_input_contents: [raw] });
    const data = r.inputs[0]!.data;
    assert.ok(isBytesData(data));
    assert.deepEqual(data.map((e) => Buffer.from(e).toString('latin1')), ['hi', '', '\x7f']);
  });

  test('BYTES raw whose length prefix runs past the end is rejected', () => {
    const raw = Buffer.concat([Buffer.from([9, 0, 0, 0]), Buffer.from('abc')]);
    rejects({ model_name: 'm', inputs: [{ name: 'S', datatype: 'BYTES', shape: [1] }], raw_input_contents: [raw] }, 'SLUICE_INVALID_TENSOR_DATA', "'S'", 'past the end');
  });

  test('byte length must be shape x element size', () => {
    rejects({ model_name: 'm', inputs: [{ name: 'A', datatype: 'INT32', shape: [1, 16] }], raw_input_contents: [Buffer.alloc(60)] }, 'SLUICE_DATA_SIZE_MISMATCH', "'A'", '64 bytes', '60 bytes');
  });

  test('mixing raw and typed contents is rejected naming the tensor and the model, as Triton does', () => {
    const e = rejects({
      model_name: 'simple',
      inputs: [{ name: 'INPUT0', datatype: 'INT32', shape: [1] }, { name: 'INPUT1', datatype: 'INT32', shape: [1], contents: { int_contents: [1] } }],
      raw_input_contents: [Buffer.alloc(4)],
    }, 'SLUICE_MIXED_TENSOR_CONTENTS', "'INPUT1'", "'simple'");
    assert.equal(grpcStatusOf(e.kind), status.INVALID_ARGUMENT);
  });

  test('one raw entry per input', () => {
    rejects({ model_name: 'm', inputs: [{ name: 'A', datatype: 'INT32', shape: [1] }, { name: 'B', datatype: 'INT32', shape: [1] }], raw_input_contents: [Buffer.alloc(4)] }, 'SLUICE_INVALID_REQUEST', 'expected 2 raw_input_contents', 'got 1');
  });
});

describe('shapes and bounds are checked before any allocation', () => {
  test('a huge shape with tiny data fails on the element bound', () => {
    rejects({ model_name: 'm', inputs: [{ name: 'X', datatype: 'FP32', shape: [1 << 30, 1 << 30], contents: { fp32_contents: [1] } }] }, 'SLUICE_TOO_MANY_ELEMENTS', "'X'");
    rejects({ model_name: 'm', inputs: [{ name: 'X', datatype: 'FP64', shape: ['9223372036854775807'] }], raw_input_contents: [Buffer.alloc(8)] }, 'SLUICE_INVALID_SHAPE', "'X'");
  });

  test('a BYTES shape claiming more elements than the raw data can hold fails before parsing', () => {
    rejects({ model_name: 'm', inputs: [{ name: 'S', datatype: 'BYTES', shape: [100000] }], raw_input_contents: [Buffer.alloc(8)] }, 'SLUICE_DATA_SIZE_MISMATCH', "'S'");
  });

  test('negative dimensions and unknown datatypes are named', () => {
    rejects({ model_name: 'm', inputs: [{ name: 'X', datatype: 'FP32', shape: [-1, 2] }] }, 'SLUICE_INVALID_SHAPE', "'X'", '-1');
    rejects({ model_name: 'm', inputs: [{ name: 'X', datatype: 'FLOAT', shape: [1] }] }, 'SLUICE_UNKNOWN_DATATYPE', "'X'", 'FLOAT');
  });

  test('an input without data is refused unless it has no elements', () => {
    rejects({ model_name: 'm', inputs: [{ name: 'X', datatype: 'FP32', shape: [2] }] }, 'SLUICE_INVALID_TENSOR_DATA', "'X'", 'no data');
    const r = decode({ model_name: 'm', inputs: [{ name: 'X', datatype: 'FP32', shape: [0, 4] }] });
    assert.equal(fixed(r.inputs[0]).byteLength, 0);
  });

  test('the same input twice is refused', () => {
    rejects({ model_name: 'm', inputs: [{ name: 'X', datatype: 'INT32', shape: [1], contents: { int_contents: [1] } }, { name: 'X', datatype: 'INT32', shape: [1], contents: { int_contents: [2] } }] }, 'SLUICE_DUPLICATE_INPUT', "'X'");
  });

  test('path-like model names and malformed versions are refused before any lookup', () => {
    rejects({ model_name: '../etc', inputs: [] }, 'SLUICE_INVALID_MODEL_NAME', '../etc');
    rejects({ model_name: 'a/b', inputs: [] }, 'SLUICE_INVALID_MODEL_NAME');
    rejects({ model_name: 'simple', model_version: '../1', inputs: [] }, 'SLUICE_INVALID_VERSION', '../1');
  });
});

describe('request fields and parameters', () => {
  const base = { model_name: 'simple', inputs: [{ name: 'A', datatype: 'INT32', shape: [1], contents: { int_contents: [7] } }] };

  test('id, version, requested outputs, arrival and signal are carried over', () => {
    const signal = new AbortController().signal;
    const r = decode({ ...base, id: 'req-42', model_version: '3', outputs: [{ name: 'OUTPUT1' }] }, { arrivalMs: 123.5, signal, deadlineUs: 0 });
    assert.equal(r.id, 'req-42');
    assert.equal(r.version, '3');
    assert.deepEqual(r.outputs, ['OUTPUT1']);
    assert.equal(r.arrivalMs, 123.5);
    assert.equal(r.signal, signal);
    assert.equal(r.protocol, 'grpc');
    assert.equal(r.priority, 0);
    assert.equal(r.timeoutUs, 0);
  });

  test('priority and timeout (us) come from int64 or uint64 parameters', () => {
    const r = decode({ ...base, parameters: { priority: { int64_param: 2 }, timeout: { uint64_param: 5000 } } });
    assert.equal(r.priority, 2);
    assert.equal(r.timeoutUs, 5000);
  });

  test('the client deadline becomes the timeout, the tighter one winning', () => {
    assert.equal(decode(base, { arrivalMs: 0, deadlineUs: 7000 }).timeoutUs, 7000);
    assert.equal(decode({ ...base, parameters: { timeout: { int64_param: 3000 } } }, { arrivalMs: 0, deadlineUs: 7000 }).timeoutUs, 3000);
    assert.equal(decode({ ...base, parameters: { timeout: { int64_param: 9000 } } }, { arrivalMs: 0, deadlineUs: 7000 }).timeoutUs, 7000);
  });

  test('malformed reserved parameters are named', () => {
    rejects({ ...base, parameters: { priority: { string_param: 'high' } } }, 'SLUICE_INVALID_PARAMETER', "'priority'", 'string_param');
    rejects({ ...base, parameters: { timeout: { int64_param: -5 } } }, 'SLUICE_INVALID_PARAMETER', "'timeout'", '-5');
    rejects({ ...base, parameters: { sequence_id: { double_param: 1.5 } } }, 'SLUICE_SEQUENCE_PARAMETER', "'sequence_id'", 'int64_param or string_param');
    rejects({ ...base, parameters: { sequence_id: { int64_param: '-3' } } }, 'SLUICE_SEQUENCE_PARAMETER', 'unsigned');
    rejects({ ...base, parameters: { sequence_id: { int64_param: '5' }, sequence_start: { int64_param: '1' } } }, 'SLUICE_SEQUENCE_PARAMETER', "'sequence_start'", 'bool_param');
    rejects({ ...base, parameters: { sequence_end: { bool_param: true } } }, 'SLUICE_SEQUENCE_PARAMETER', 'non-zero or non-empty sequence_id');
  });

  test('the sequence extension\'s parameters become the request\'s sequence flags', () => {
    assert.deepEqual(decode({ ...base, parameters: { sequence_id: { int64_param: '12' }, sequence_start: { bool_param: true }, sequence_end: { bool_param: false } } }).sequence, { id: '12', numeric: true, start: true, end: false });
    assert.deepEqual(decode({ ...base, parameters: { sequence_id: { string_param: 'abc' }, sequence_end: { bool_param: true } } }).sequence, { id: 'abc', numeric: false, start: false, end: true });
    assert.equal(decode({ ...base, parameters: { sequence_id: { int64_param: '0' } } }).sequence, undefined, '0 means no sequence');
  });

  test('shared-memory tensors are refused as unsupported, not as missing data', () => {
    rejects({ model_name: 'm', inputs: [{ name: 'X', datatype: 'FP32', shape: [4], parameters: { shared_memory_region: { string_param: 'r0' } } }] }, 'SLUICE_UNIMPLEMENTED', "input 'X'", 'shared_memory_region');
    rejects({ ...base, outputs: [{ name: 'Y', parameters: { shared_memory_region: { string_param: 'r1' } } }] }, 'SLUICE_UNIMPLEMENTED', "output 'Y'");
  });

  test('parameters sluice does not interpret pass without effect', () => {
    const r = decode({ ...base, parameters: { binary_data_output: { bool_param: true }, custom: { string_param: 'x' }, sequence_id: { int64_param: 0 } } });
    assert.equal(r.inputs.length, 1);
  });
});

describe('responses', () => {
  test('every output travels in raw_output_contents, decodable by a client', () => {
    const sum = new Int32Array([3, -1]);
    const strings = [new TextEncoder().encode('ab'), new Uint8Array(0)];
    const msg = encodeInferResponse({
      id: 'x1', model: 'simple', version: '1',
      outputs: [
        { name: 'OUTPUT0', datatype: 'INT32', shape: [1, 2], data: new Uint8Array(sum.buffer) },
        { name: 'S', datatype: 'BYTES', shape: [2], data: strings },
      ],
    });
    const decoded = infer.responseDeserialize(infer.responseSerialize(msg)) as Record<string, unknown> & { outputs: { name: string; datatype: string; shape: string[]; contents: unknown }[]; raw_output_contents: Buffer[] };
    assert.equal(decoded['id'], 'x1');
    assert.equal(decoded['model_name'], 'simple');
    assert.equal(decoded['model_version'], '1');
    assert.deepEqual(decoded.outputs.map((o) => [o.name, o.datatype, o.shape, o.contents]), [['OUTPUT0', 'INT32', ['1', '2'], null], ['S', 'BYTES', ['2'], null]]);
    const raw0 = decoded.raw_output_contents[0]!;
    assert.deepEqual([...new Int32Array(raw0.buffer.slice(raw0.byteOffset, raw0.byteOffset + raw0.byteLength))], [3, -1]);
    const elements = decodeBytesElements(decoded.raw_output_contents[1]!, 2);
    assert.ok(Array.isArray(elements));
    assert.deepEqual(elements.map((e) => Buffer.from(e).toString()), ['ab', '']);
  });
});

describe('status mapping', () => {
  test('each error kind has its gRPC status', () => {
    const expected: Record<ErrorKind, status> = {
      INVALID_ARG: status.INVALID_ARGUMENT,
      NOT_FOUND: status.NOT_FOUND,
      ALREADY_EXISTS: status.ALREADY_EXISTS,
      UNAVAILABLE: status.UNAVAILABLE,
      RESOURCE_EXHAUSTED: status.RESOURCE_EXHAUSTED,
      DEADLINE_EXCEEDED: status.DEADLINE_EXCEEDED,
      CANCELLED: status.CANCELLED,
      UNIMPLEMENTED: status.UNIMPLEMENTED,
      UNAUTHENTICATED: status.UNAUTHENTICATED,
      PERMISSION_DENIED: status.PERMISSION_DENIED,
      RATE_LIMITED: status.RESOURCE_EXHAUSTED,
      INTERNAL: status.INTERNAL,
    };
    for (const kind of new Set(errorCatalog().values())) assert.equal(grpcStatusOf(kind), expected[kind], kind);
    for (const [kind, code] of Object.entries(expected)) assert.equal(grpcStatusOf(kind as ErrorKind), code, kind);
  });

  test('a service error carries the message as details and the stable code as trailing metadata', () => {
    let e: SluiceError | undefined;
    try {
      decode({ model_name: 'm', inputs: [{ name: 'X', datatype: 'NOPE', shape: [1] }] });
    } catch (err) {
      e = err as SluiceError;
    }
    assert.ok(e);
    const se = toServiceError(e);
    assert.equal(se.code, status.INVALID_ARGUMENT);
    assert.equal(se.details, e.message);
    assert.deepEqual(se.metadata?.get(ERROR_CODE_KEY), ['SLUICE_UNKNOWN_DATATYPE']);
  });
});
