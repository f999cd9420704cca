import assert from 'node:assert/strict';
import { test } from 'node:test';
import { encodeBytesElements } from '../../src/core/tensor.ts';
import { startTestSluice } from '../helpers/sluice.ts';
import { binaryBody, h1Client, h2Client, splitResponse, type HttpClient, type HttpResult } from './client.ts';

type Values = readonly (number | string | boolean)[];

/** Three elements of every datatype the identity model carries, edge values included. */
const VALUES: Readonly<Record<string, Values>> = {
  BOOL: [true, false, true],
  UINT8: [0, 255, 7],
  UINT16: [0, 65535, 258],
  UINT32: [0, 4294967295, 1],
  UINT64: ['18446744073709551615', 0, 42],
  INT8: [-128, 127, 0],
  INT16: [-32768, 32767, -1],
  INT32: [-2147483648, 2147483647, 5],
  INT64: ['-9223372036854775808', '9223372036854775807', -3],
  FP32: [1.5, -0.25, 1024],
  FP64: [0.1, -1e300, 2.5],
  BYTES: ['hello', '', 'ünï ✓'],
};
/** FP16 has no JSON form: 1.0, -2.0 and 65504 as raw half-precision bits. */
const FP16_BYTES = Buffer.from(new Uint16Array([0x3c00, 0xc000, 0x7bff]).buffer);
const DATATYPES = [...Object.keys(VALUES), 'FP16'];

function leBytes(dt: string): Buffer {
  const v = VALUES[dt];
  const buf = (a: ArrayBufferView): Buffer => Buffer.from(a.buffer, a.byteOffset, a.byteLength);
  switch (dt) {
    case 'FP16': return FP16_BYTES;
    case 'BOOL': return Buffer.from(v!.map((x) => (x ? 1 : 0)));
    case 'UINT8': return Buffer.from(v as number[]);
    case 'UINT16': return buf(new Uint16Array(v as number[]));
    case 'UINT32': return buf(new Uint32Array(v as number[]));
    case 'UINT64': return buf(new BigUint64Array(v!.map((x) => BigInt(x))));
    case 'INT8': return buf(new Int8Array(v as number[]));
    case 'INT16': return buf(new Int16Array(v as number[]));
    case 'INT32': return buf(new Int32Array(v as number[]));
    case 'INT64': return buf(new BigInt64Array(v!.map((x) => BigInt(x))));
    case 'FP32': return buf(new Float32Array(v as number[]));
    case 'FP64': return buf(new Float64Array(v as number[]));
    default: return Buffer.from(encodeBytesElements(v!.map((s) => Buffer.from(String(s)))));
  }
}

/** The JSON text sluice writes for an output's data (64-bit integers as exact literals). */
function jsonText(dt: string): string {
  return JSON.stringify(VALUES[dt]!.map((x) => (typeof x === 'string' && dt !== 'BYTES' ? BigInt(x) : x)), (_k, x: unknown) => (typeof x === 'bigint' ? `#${x}#` : x)).replace(/"#(-?\d+)#"/g, '$1');
}

type Mode = 'json' | 'binary' | 'mixed';

/** Sends every datatype through the identity model; `binaryIn(dt)` / `binaryOut(dt)` pick the encoding per tensor. */
async function roundTrip(client: HttpClient, mode: Mode): Promise<HttpResult> {
  const binaryIn = (dt: string, i: number): boolean => dt === 'FP16' || mode === 'binary' || (mode === 'mixed' && i % 2 === 0);
  const inputs: unknown[] = [];
  const tensors: Buffer[] = [];
  DATATYPES.forEach((dt, i) => {
    const input: Record<string, unknown> = { name: `INPUT_${dt}`, datatype: dt, shape: [1, 3] };
    if (binaryIn(dt, i)) {
      const b = leBytes(dt);
      input['parameters'] = { binary_data_size: b.byteLength };
      tensors.push(b);
    } else {
      // Nested and flat JSON data are both valid: alternate them.
      input['data'] = i % 3 === 0 ? [VALUES[dt]] : VALUES[dt];
    }
    inputs.push(input);
  });
  const header: Record<string, unknown> = { id: `${mode}-1`, inputs };
  if (mode === 'binary') header['parameters'] = { binary_data_output: true };
  if (mode === 'mixed') header['outputs'] = DATATYPES.map((dt, i) => ({ name: `OUTPUT_${dt}`, parameters: { binary_data: i % 2 === 1 } }));
  const { body, headers } = binaryBody(header, tensors);
  return client.call('POST', '/v2/models/identity/infer', { body, headers });
}

function checkRoundTrip(res: HttpResult, mode: Mode): void {
  assert.equal(res.status, 200, res.text());
  assert.equal(res.headers['content-type'], 'application/octet-stream');
  const { json, binary } = splitResponse(res);
  assert.equal(json.id, `${mode}-1`);
  assert.equal(json.outputs.length, DATATYPES.length);
  const headerText = res.body.subarray(0, Number(res.headers['inference-header-content-length'])).toString();
  let offset = 0;
  for (const out of json.outputs as { name: string; datatype: string; shape: number[]; data?: unknown; parameters?: { binary_data_size: number } }[]) {
    const dt = out.name.replace('OUTPUT_', '');
    assert.equal(out.datatype, dt);
    assert.deepEqual(out.shape, [1, 3]);
    const i = DATATYPES.indexOf(dt);
    const wantBinary = dt === 'FP16' || mode === 'binary' || (mode === 'mixed' && i % 2 === 1);
    if (wantBinary) {
      const size = out.parameters!.binary_data_size;
      assert.deepEqual(binary.subarray(offset, offset + size), leBytes(dt), `${mode} ${dt} binary`);
      offset += size;
    } else {
      assert.equal(out.parameters, undefined);
      assert.ok(headerText.includes(`"name":"${out.name}","datatype":"${dt}","shape":[1,3],"data":${jsonText(dt)}`), `${mode} ${dt} JSON: ${headerText}`);
    }
  }
  assert.equal(offset, binary.byteLength);
}

test('every datatype round-trips through identity in JSON, binary and mixed, over HTTP/1.1 and h2c', async (t) => {
  const sluice = await startTestSluice(t);
  const origin = `http://127.0.0.1:${sluice.ports.http}`;
  for (const client of [h1Client(origin), h2Client(origin)]) {
    t.after(() => client.close());
    for (const mode of ['json', 'binary', 'mixed'] as const) {
      await t.test(`${client.name} ${mode}`, async () => checkRoundTrip(await roundTrip(client, mode), mode));
    }
  }

  const client = h1Client(origin);
  t.after(() => client.close());

  await t.test('requested outputs: only the named ones come back', async () => {
    const { body, headers } = binaryBody({
      inputs: DATATYPES.map((dt) => ({ name: `INPUT_${dt}`, datatype: dt, shape: [1, 3], parameters: { binary_data_size: leBytes(dt).byteLength } })),
      outputs: [{ name: 'OUTPUT_INT8' }, { name: 'OUTPUT_BYTES' }],
    }, DATATYPES.map(leBytes));
    const res = await client.call('POST', '/v2/models/identity/infer', { body, headers });
    assert.equal(res.status, 200, res.text());
    const outs = res.json().outputs as { name: string; data: unknown[] }[];
    assert.deepEqual(outs.map((o) => o.name).sort(), ['OUTPUT_BYTES', 'OUTPUT_INT8']);
    assert.deepEqual(outs.find((o) => o.name === 'OUTPUT_BYTES')!.data, VALUES['BYTES']);
  });

  await t.test('BYTES arithmetic: simple_string sums decimal strings', async () => {
    const a = Array.from({ length: 16 }, (_, i) => String(i));
    const b = Array.from({ length: 16 }, () => '10');
    const res = await client.call('POST', '/v2/models/simple_string/infer', {
      body: JSON.stringify({ inputs: [{ name: 'INPUT0', shape: [1, 16], datatype: 'BYTES', data: a }, { name: 'INPUT1', shape: [1, 16], datatype: 'BYTES', data: b }] }),
    });
    assert.equal(res.status, 200, res.text());
    const sum = res.json().outputs.find((o: { name: string }) => o.name === 'OUTPUT0');
    assert.deepEqual(sum.data.map(Number), a.map((x) => Number(x) + 10));
  });

  await t.test('a raw binary body (Inference-Header-Content-Length: 0) feeds the single input of mlp', async () => {
    const rows = 2;
    const res = await client.call('POST', '/v2/models/mlp/infer', { body: Buffer.alloc(rows * 784 * 4), headers: { 'inference-header-content-length': '0' } });
    assert.equal(res.status, 200, res.text());
    const [out] = res.json().outputs;
    assert.deepEqual(out.shape, [rows, 10]);
    const firstRow = (out.data as number[]).slice(0, 10).reduce((s, x) => s + x, 0);
    assert.ok(Math.abs(firstRow - 1) < 1e-4, `softmax row sums to ${firstRow}`);
  });

  await t.test('the README curl example: a form-encoded JSON body (curl -d) is accepted', async () => {
    const data = Array.from({ length: 16 }, (_, i) => i);
    const res = await client.call('POST', '/v2/models/simple/infer', {
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: JSON.stringify({ inputs: [{ name: 'INPUT0', shape: [1, 16], datatype: 'INT32', data }, { name: 'INPUT1', shape: [1, 16], datatype: 'INT32', data }] }),
    });
    assert.equal(res.status, 200, res.text());
    assert.deepEqual(res.json().outputs[0].data, data.map((x) => 2 * x));
  });
});
