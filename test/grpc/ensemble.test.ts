// mlp_pipeline over gRPC: the same answer as over REST (raw contents), its ModelConfig carries
// ensemble_scheduling, its metadata platform "ensemble", and a failing step's status comes back.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { status } from '@grpc/grpc-js';
import { request } from 'undici';
import { startTestSluice } from '../helpers/sluice.ts';
import { connectGrpc, expectStatus } from './client.ts';

const pixels = Buffer.from(Array.from({ length: 784 }, (_, i) => (i * 11) % 256));

test('mlp_pipeline over gRPC: raw contents equal the REST answer; config and metadata say ensemble', async (t) => {
  const sluice = await startTestSluice(t);
  const grpc = connectGrpc(t, sluice.ports.grpc);

  const meta = await grpc.call('ModelMetadata', { name: 'mlp_pipeline' });
  assert.equal(meta['platform'], 'ensemble');
  const config = (await grpc.call('ModelConfig', { name: 'mlp_pipeline' }))['config'];
  assert.equal(config['platform'], 'ensemble');
  assert.equal(config['scheduling_choice'], 'ensemble_scheduling');
  const steps = config['ensemble_scheduling']['step'] as { model_name: string; model_version: string; input_map: Record<string, string>; output_map: Record<string, string> }[];
  assert.deepEqual(steps.map((s) => s.model_name), ['preprocess', 'mlp', 'postprocess']);
  assert.equal(String(steps[0]!.model_version), '-1');
  assert.deepEqual(steps[2]!.input_map, { INPUT0: 'probabilities' });
  assert.deepEqual(steps[2]!.output_map, { CLASS: 'CLASS', PROBABILITIES: 'PROBABILITIES' });
  assert.equal((await grpc.call('ModelReady', { name: 'mlp_pipeline' }))['ready'], true);

  const reply = await grpc.call('ModelInfer', { model_name: 'mlp_pipeline', inputs: [{ name: 'IMAGE', datatype: 'UINT8', shape: [1, 784] }], raw_input_contents: [pixels] });
  assert.equal(reply['model_name'], 'mlp_pipeline');
  const names = (reply['outputs'] as { name: string }[]).map((o) => o.name);
  const probs = reply['raw_output_contents'][names.indexOf('PROBABILITIES')] as Buffer;
  const cls = reply['raw_output_contents'][names.indexOf('CLASS')] as Buffer;

  const res = await request(`http://127.0.0.1:${sluice.ports.http}/v2/models/mlp_pipeline/infer`, {
    method: 'POST', body: JSON.stringify({ inputs: [{ name: 'IMAGE', datatype: 'UINT8', shape: [1, 784], data: [...pixels] }] }),
  });
  assert.equal(res.statusCode, 200);
  const json = (await res.body.json()) as { outputs: { name: string; data: number[] }[] };
  const rest = new Map(json.outputs.map((o) => [o.name, o.data]));
  const floats = [...new Float32Array(probs.buffer.slice(probs.byteOffset, probs.byteOffset + probs.length))];
  assert.deepEqual(floats, rest.get('PROBABILITIES'));
  assert.equal(Number(cls.readBigInt64LE(0)), rest.get('CLASS')![0]);
  assert.equal(Number(cls.readBigInt64LE(0)), floats.indexOf(Math.max(...floats)), 'CLASS is the argmax');

  // A wrong datatype is the ensemble's own check; a request the steps refuse keeps their status.
  await expectStatus(grpc.call('ModelInfer', { model_name: 'mlp_pipeline', inputs: [{ name: 'IMAGE', datatype: 'FP32', shape: [1, 784] }], raw_input_contents: [Buffer.alloc(784 * 4)] }), status.INVALID_ARGUMENT, 'IMAGE');
});
