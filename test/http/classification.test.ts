// Triton's classification extension over REST and gRPC: an output asked with classification K is
// answered as its top K per row, "value:index:label", labels from the output's label file.
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { status } from '@grpc/grpc-js';
import { request } from 'undici';
import { SAMPLE_REPOSITORY, startTestSluice } from '../helpers/sluice.ts';
import { connectGrpc, expectStatus } from '../grpc/client.ts';
import { tempDir } from '../access/fixture.ts';

const LABELS = ['zero', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine'];

function repository(dir: string): string {
  mkdirSync(join(dir, 'mlp', '1'), { recursive: true });
  copyFileSync(join(SAMPLE_REPOSITORY, 'mlp', '1', 'model.onnx'), join(dir, 'mlp', '1', 'model.onnx'));
  writeFileSync(join(dir, 'mlp', 'config.pbtxt'), 'name: "mlp"\nmax_batch_size: 32\noutput [ { name: "OUTPUT0" data_type: TYPE_FP32 dims: [ 10 ] label_filename: "labels.txt" } ]\n');
  writeFileSync(join(dir, 'mlp', 'labels.txt'), `${LABELS.join('\n')}\n`);
  return dir;
}

const rows = [Array.from({ length: 784 }, (_, i) => (i % 7) / 7), Array.from({ length: 784 }, (_, i) => (i % 13) / 13)];

/** The top k of one row as Triton formats it. */
function expected(values: readonly number[], k: number): string[] {
  const idx = values.map((_, i) => i).sort((a, b) => values[b]! - values[a]! || a - b);
  return idx.slice(0, k).map((i) => `${Math.fround(values[i]!).toFixed(6)}:${i}:${LABELS[i]}`);
}

async function rest(port: number, body: unknown): Promise<{ status: number; json: any }> { // eslint-disable-line @typescript-eslint/no-explicit-any
  const res = await request(`http://127.0.0.1:${port}/v2/models/mlp/infer`, { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json' } });
  return { status: res.statusCode, json: await res.body.json() };
}

test('classification: top K with labels over REST and gRPC; K past the class count gives every class; bad K refused', async (t) => {
  const repo = repository(tempDir(t));
  const sluice = await startTestSluice(t, ['--model-repository', repo]);
  const port = sluice.ports.http;
  const input = { name: 'INPUT0', datatype: 'FP32', shape: [2, 784], data: rows.flat() };
  const plain = await rest(port, { inputs: [input] });
  assert.equal(plain.status, 200);
  const values = plain.json.outputs[0].data as number[];
  const perRow = [values.slice(0, 10), values.slice(10, 20)];

  const top3 = await rest(port, { inputs: [input], outputs: [{ name: 'OUTPUT0', parameters: { classification: 3 } }] });
  assert.equal(top3.status, 200);
  const out = top3.json.outputs[0];
  assert.equal(out.datatype, 'BYTES');
  assert.deepEqual(out.shape, [2, 3]);
  assert.deepEqual(out.data, [...expected(perRow[0]!, 3), ...expected(perRow[1]!, 3)]);

  const all = await rest(port, { inputs: [input], outputs: [{ name: 'OUTPUT0', parameters: { classification: 50 } }] });
  assert.deepEqual(all.json.outputs[0].shape, [2, 10], 'K past the class count answers every class');

  const config = await request(`http://127.0.0.1:${port}/v2/models/mlp/config`);
  assert.equal(((await config.body.json()) as { output: { label_filename: string }[] }).output[0]!.label_filename, 'labels.txt');

  const bad = await rest(port, { inputs: [input], outputs: [{ name: 'OUTPUT0', parameters: { classification: -2 } }] });
  assert.equal(bad.status, 400);
  assert.match(bad.json.error, /classification/);

  const grpc = connectGrpc(t, sluice.ports.grpc);
  const raw = Buffer.from(new Float32Array(rows.flat()).buffer);
  const reply = await grpc.call('ModelInfer', { model_name: 'mlp', inputs: [{ name: 'INPUT0', datatype: 'FP32', shape: [2, 784] }], outputs: [{ name: 'OUTPUT0', parameters: { classification: { int64_param: 2 } } }], raw_input_contents: [raw] });
  assert.equal(reply['outputs'][0]['datatype'], 'BYTES');
  assert.deepEqual(reply['outputs'][0]['shape'].map(Number), [2, 2]);
  const buf = reply['raw_output_contents'][0] as Buffer;
  const strings: string[] = [];
  for (let o = 0; o < buf.length;) {
    const n = buf.readUInt32LE(o);
    strings.push(buf.subarray(o + 4, o + 4 + n).toString());
    o += 4 + n;
  }
  assert.deepEqual(strings, [...expected(perRow[0]!, 2), ...expected(perRow[1]!, 2)]);
  await expectStatus(grpc.call('ModelInfer', { model_name: 'mlp', inputs: [{ name: 'INPUT0', datatype: 'FP32', shape: [1, 784] }], outputs: [{ name: 'OUTPUT0', parameters: { classification: { string_param: 'x' } } }], raw_input_contents: [raw.subarray(0, 784 * 4)] }), status.INVALID_ARGUMENT, 'classification');
});

test('classification needs a numeric output, and a label file inside the model folder', async (t) => {
  const sluice = await startTestSluice(t);
  const res = await request(`http://127.0.0.1:${sluice.ports.http}/v2/models/simple_string/infer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ inputs: ['INPUT0', 'INPUT1'].map((name) => ({ name, datatype: 'BYTES', shape: [1, 16], data: new Array(16).fill('1') })), outputs: [{ name: 'OUTPUT0', parameters: { classification: 2 } }] }) });
  assert.equal(res.statusCode, 400);
  assert.match(((await res.body.json()) as { error: string }).error, /OUTPUT0' is BYTES; classification needs a numeric output/);

  const dir = tempDir(t);
  repository(dir);
  writeFileSync(join(dir, 'mlp', 'config.pbtxt'), 'name: "mlp"\nmax_batch_size: 32\noutput [ { name: "OUTPUT0" data_type: TYPE_FP32 dims: [ 10 ] label_filename: "../../etc/passwd" } ]\n');
  const s2 = await startTestSluice(t, ['--model-repository', dir]);
  const index = await request(`http://127.0.0.1:${s2.ports.http}/v2/repository/index`, { method: 'POST', body: '{}' });
  const entry = ((await index.body.json()) as { name: string; reason: string }[]).find((e) => e.name === 'mlp');
  assert.match(entry!.reason, /label_filename '\.\.\/\.\.\/etc\/passwd' must name a file in the model folder/);
});
