import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startTestSluice } from '../helpers/sluice.ts';
import { h1Client, h2Client, simpleRequest } from './client.ts';

test('model control over REST in explicit mode: index, load, unload; the server name', async (t) => {
  const sluice = await startTestSluice(t, ['--model-control-mode', 'explicit', '--load-model', 'simple', '--server-name', 'edge-7', '--log-level', 'error']);
  const origin = `http://127.0.0.1:${sluice.ports.http}`;
  const h1 = h1Client(origin);
  const h2 = h2Client(origin);
  t.after(() => h1.close());
  t.after(() => h2.close());
  const state = async (name: string): Promise<string | undefined> => {
    const index = (await h1.call('POST', '/v2/repository/index')).json() as { name: string; state: string }[];
    return index.find((e) => e.name === name)?.state;
  };

  await t.test('GET /v2 reports the configured server name', async () => {
    assert.equal((await h2.call('GET', '/v2')).json().name, 'edge-7');
  });

  await t.test('only the models named at start are loaded; the index lists the others as unavailable', async () => {
    assert.equal(await state('simple'), 'READY');
    assert.equal(await state('mlp'), 'UNAVAILABLE');
    const ready = (await h1.call('POST', '/v2/repository/index', { body: '{"ready": true}' })).json() as { name: string }[];
    assert.deepEqual(ready.map((e) => e.name), ['simple']);
    assert.equal((await h1.call('GET', '/v2/models/mlp/ready')).status, 400);
  });

  await t.test('load makes a model ready and servable; unload takes it away', async () => {
    const load = await h2.call('POST', '/v2/repository/models/mlp/load', { body: '{}' });
    assert.equal(load.status, 200, load.text());
    assert.equal(load.body.byteLength, 0);
    assert.equal((await h1.call('GET', '/v2/models/mlp/ready')).status, 200);
    const infer = await h1.call('POST', '/v2/models/mlp/infer', { body: Buffer.alloc(784 * 4), headers: { 'inference-header-content-length': '0' } });
    assert.equal(infer.status, 200, infer.text());
    const unload = await h1.call('POST', '/v2/repository/models/mlp/unload');
    assert.equal(unload.status, 200, unload.text());
    assert.equal((await h2.call('GET', '/v2/models/mlp/ready')).status, 400);
    assert.equal(await state('mlp'), 'UNAVAILABLE');
    const after = await h1.call('POST', '/v2/models/mlp/infer', { body: Buffer.alloc(784 * 4), headers: { 'inference-header-content-length': '0' } });
    assert.ok(after.status === 503 || after.status === 404, `infer on an unloaded model: ${after.status}`);
    assert.match(after.json().error, /mlp/);
    assert.equal((await h1.call('POST', '/v2/models/simple/infer', { body: JSON.stringify(simpleRequest()) })).status, 200);
  });

  await t.test('load refuses unknown models, path-like names, uploaded files and a config that is not a string', async () => {
    const unknown = await h1.call('POST', '/v2/repository/models/nosuch/load');
    assert.equal(unknown.status, 404, unknown.text());
    assert.match(unknown.json().error, /'nosuch'/);
    const pathLike = await h2.call('POST', '/v2/repository/models/..%2Fmodels/load');
    assert.equal(pathLike.status, 400);
    assert.match(pathLike.json().error, /invalid model name '..\/models'/);
    const files = await h1.call('POST', '/v2/repository/models/mlp/load', { body: JSON.stringify({ parameters: { 'file:1/model.onnx': 'AAAA' } }) });
    assert.equal(files.status, 400, 'model files come with their config (test/http/load-upload.test.ts)');
    assert.match(files.json().error, /'config'/);
    const notString = await h1.call('POST', '/v2/repository/models/mlp/load', { body: JSON.stringify({ parameters: { config: { max_batch_size: 4 } } }) });
    assert.equal(notString.status, 400);
    assert.match(notString.json().error, /'parameters.config' must be a string/);
    const badParams = await h1.call('POST', '/v2/repository/models/mlp/load', { body: '{"parameters": 3}' });
    assert.equal(badParams.status, 400);
    assert.match(badParams.json().error, /'parameters' must be a JSON object/);
  });
});
