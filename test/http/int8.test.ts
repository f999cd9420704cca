// simple_int8 served as Triton's int8 client examples use it: INT8 tensors over REST JSON and gRPC raw.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { request } from 'undici';
import { startTestSluice } from '../helpers/sluice.ts';
import { connectGrpc } from '../grpc/client.ts';

test('simple_int8 over REST JSON and gRPC raw contents: sum and difference, wrapping as INT8', async (t) => {
  const sluice = await startTestSluice(t);
  const a = Array.from({ length: 16 }, (_, i) => i);
  const b = new Array<number>(16).fill(1);
  const res = await request(`http://127.0.0.1:${sluice.ports.http}/v2/models/simple_int8/infer`, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ inputs: [{ name: 'INPUT0', datatype: 'INT8', shape: [1, 16], data: a }, { name: 'INPUT1', datatype: 'INT8', shape: [1, 16], data: b }] }),
  });
  assert.equal(res.statusCode, 200);
  const json = (await res.body.json()) as { outputs: { name: string; datatype: string; data: number[] }[] };
  const out = new Map(json.outputs.map((o) => [o.name, o]));
  assert.equal(out.get('OUTPUT0')!.datatype, 'INT8');
  assert.deepEqual(out.get('OUTPUT0')!.data, a.map((x) => x + 1));
  assert.deepEqual(out.get('OUTPUT1')!.data, a.map((x) => x - 1));

  const grpc = connectGrpc(t, sluice.ports.grpc);
  const big = Buffer.from(Int8Array.from({ length: 16 }, () => 127).buffer);
  const reply = await grpc.call('ModelInfer', { model_name: 'simple_int8', inputs: [{ name: 'INPUT0', datatype: 'INT8', shape: [1, 16] }, { name: 'INPUT1', datatype: 'INT8', shape: [1, 16] }], raw_input_contents: [big, big] });
  const names = (reply['outputs'] as { name: string }[]).map((o) => o.name);
  const sum = reply['raw_output_contents'][names.indexOf('OUTPUT0')] as Buffer;
  assert.deepEqual([...new Int8Array(sum.buffer, sum.byteOffset, sum.length)], new Array(16).fill(-2), '127 + 127 wraps to -2');
});
