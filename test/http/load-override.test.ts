// Triton's load override: the load API's `config` parameter (a model config in protobuf JSON) is
// served instead of the config on disk; an override that cannot serve leaves the serving version.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { status } from '@grpc/grpc-js';
import { request } from 'undici';
import { startTestSluice } from '../helpers/sluice.ts';
import { connectGrpc, expectStatus } from '../grpc/client.ts';
import { simpleRequest } from './client.ts';

test('a load with a config override changes the served config; a bad one keeps the version serving', async (t) => {
  const sluice = await startTestSluice(t, ['--model-control-mode', 'explicit', '--load-model', 'simple']);
  const base = `http://127.0.0.1:${sluice.ports.http}`;
  const load = async (parameters: unknown): Promise<{ status: number; text: string }> => {
    const r = await request(`${base}/v2/repository/models/simple/load`, { method: 'POST', body: JSON.stringify({ parameters }) });
    return { status: r.statusCode, text: await r.body.text() };
  };
  const config = async (): Promise<{ max_batch_size: number; dynamic_batching?: { preferred_batch_size: number[] } }> => {
    const r = await request(`${base}/v2/models/simple/config`);
    return (await r.body.json()) as { max_batch_size: number };
  };
  const infer = async (rows = 1): Promise<number> => {
    const one = simpleRequest();
    const body = rows === 1 ? one : { ...one, inputs: (one['inputs'] as { shape: number[]; data: number[] }[]).map((i) => ({ ...i, shape: [rows, 16], data: Array.from({ length: rows }, () => i.data).flat() })) };
    const r = await request(`${base}/v2/models/simple/infer`, { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json' } });
    await r.body.dump();
    return r.statusCode;
  };
  assert.equal((await config()).max_batch_size, 32);

  const override = JSON.stringify({ name: 'simple', backend: 'onnxruntime', max_batch_size: 4, dynamic_batching: { preferred_batch_size: [2, 4], max_queue_delay_microseconds: '100' } });
  const ok = await load({ config: override });
  assert.equal(ok.status, 200, ok.text);
  assert.equal((await config()).max_batch_size, 4);
  assert.deepEqual((await config()).dynamic_batching?.preferred_batch_size, [2, 4]);
  assert.equal(await infer(4), 200);
  assert.equal(await infer(8), 400, 'the override bounds the batch now');

  const notJson = await load({ config: '{"max_batch_size": ' });
  assert.equal(notJson.status, 400);
  assert.match(notJson.text, /config parameter is not JSON/);
  const badField = await load({ config: JSON.stringify({ name: 'simple', max_batch_size: -3 }) });
  assert.equal(badField.status, 400, badField.text);
  assert.match(badField.text, /max_batch_size/);
  const badShape = await load({ config: JSON.stringify({ name: 'simple', max_batch_size: 4, input: [{ name: 'INPUT0', data_type: 'TYPE_INT32', dims: ['7'] }] }) });
  assert.equal(badShape.status, 400, badShape.text);
  assert.match(badShape.text, /failed to load 'simple' with the config override.*INPUT0.*dim 0.*7.*16/);
  assert.match(badShape.text, /SLUICE_CONFIG_OVERRIDE_REJECTED/);
  // Triton's own form of a full override, enums by name and 64-bit integers as strings, is read as config.pbtxt is.
  const full = await load({ config: JSON.stringify({ name: 'simple', max_batch_size: 4, input: [{ name: 'INPUT0', data_type: 'TYPE_INT32', dims: ['16'] }, { name: 'INPUT1', data_type: 'TYPE_INT32', dims: ['16'] }], instance_group: [{ kind: 'KIND_CPU', count: 1 }], dynamic_batching: { default_queue_policy: { timeout_action: 'REJECT', max_queue_size: '64' } } }) });
  assert.equal(full.status, 200, full.text);
  assert.equal((await config()).max_batch_size, 4, 'the version loaded with the good override still serves');
  assert.equal(await infer(2), 200);
  const files = await load({ 'file:1/model.onnx': 'AAAA' });
  assert.equal(files.status, 400, 'model files need the config that goes with them (test/http/load-upload.test.ts)');
  assert.match(files.text, /'config'/);

  const grpc = connectGrpc(t, sluice.ports.grpc);
  await grpc.call('RepositoryModelLoad', { model_name: 'simple', parameters: { config: { string_param: JSON.stringify({ name: 'simple', max_batch_size: 16 }) } } });
  assert.equal((await config()).max_batch_size, 16);
  await expectStatus(grpc.call('RepositoryModelLoad', { model_name: 'simple', parameters: { config: { bool_param: true } } }), status.INVALID_ARGUMENT, 'config');
  assert.equal((await load({})).status, 200, 'a load without an override reads the disk again');
  assert.equal((await config()).max_batch_size, 32);
});
