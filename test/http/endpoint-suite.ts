import assert from 'node:assert/strict';
import type { TestContext } from 'node:test';
import { gunzipSync, gzipSync, deflateSync, inflateSync } from 'node:zlib';
import { simpleRequest, splitResponse, type HttpClient } from './client.ts';

const SUMS = Array.from({ length: 16 }, (_, i) => i + 1);
const DIFFS = Array.from({ length: 16 }, (_, i) => i - 1);

/**
 * Every REST endpoint against a sluice with the sample repository in model control mode none, over
 * the given client: run once per transport (HTTP/1.1, h2c, TLS h1 and h2).
 */
export async function endpointSuite(t: TestContext, client: HttpClient): Promise<void> {
  const call = client.call.bind(client);

  await t.test('GET /v2 reports server metadata with the protocol extensions', async () => {
    const res = await call('GET', '/v2');
    assert.equal(res.status, 200);
    assert.match(res.headers['content-type'] ?? '', /application\/json/);
    const meta = res.json();
    assert.equal(meta.name, 'sluice');
    assert.equal(typeof meta.version, 'string');
    for (const ext of ['binary_tensor_data', 'statistics', 'model_configuration', 'model_repository']) assert.ok(meta.extensions.includes(ext), ext);
  });

  await t.test('health: live and ready answer 200 with an empty body', async () => {
    for (const path of ['/v2/health/live', '/v2/health/ready']) {
      const res = await call('GET', path);
      assert.equal(res.status, 200, path);
      assert.equal(res.body.byteLength, 0, path);
    }
  });

  await t.test('model metadata, plain and per version', async () => {
    for (const path of ['/v2/models/simple', '/v2/models/simple/versions/1']) {
      const res = await call('GET', path);
      assert.equal(res.status, 200, path);
      const m = res.json();
      assert.equal(m.name, 'simple');
      assert.deepEqual(m.versions, ['1']);
      assert.equal(m.platform, 'onnxruntime_onnx');
      assert.deepEqual(m.inputs.map((i: { name: string }) => i.name), ['INPUT0', 'INPUT1']);
      assert.deepEqual(m.inputs[0], { name: 'INPUT0', datatype: 'INT32', shape: [-1, 16] });
      assert.deepEqual(m.outputs.map((o: { name: string }) => o.name), ['OUTPUT0', 'OUTPUT1']);
    }
    const missing = await call('GET', '/v2/models/simple/versions/7');
    assert.equal(missing.status, 404);
    assert.match(missing.json().error, /'simple' version 7 is not found/);
  });

  await t.test('model ready: 200 for a ready model and version, 400 otherwise', async () => {
    assert.equal((await call('GET', '/v2/models/simple/ready')).status, 200);
    assert.equal((await call('GET', '/v2/models/simple/versions/1/ready')).status, 200);
    assert.equal((await call('GET', '/v2/models/simple/versions/9/ready')).status, 400);
    assert.equal((await call('GET', '/v2/models/nosuch/ready')).status, 400);
  });

  await t.test('model configuration in Triton JSON form', async () => {
    for (const path of ['/v2/models/simple/config', '/v2/models/simple/versions/1/config']) {
      const res = await call('GET', path);
      assert.equal(res.status, 200, path);
      const c = res.json();
      assert.equal(c.name, 'simple');
      assert.equal(c.backend, 'onnxruntime');
      assert.equal(c.max_batch_size, 32);
      assert.deepEqual(c.input.map((i: { name: string; data_type: string; dims: number[] }) => [i.name, i.data_type, i.dims]), [['INPUT0', 'TYPE_INT32', [16]], ['INPUT1', 'TYPE_INT32', [16]]]);
      assert.equal(c.output[1].name, 'OUTPUT1');
      assert.ok(Array.isArray(c.dynamic_batching.preferred_batch_size));
      assert.equal(typeof c.dynamic_batching.max_queue_delay_microseconds, 'number');
      assert.equal(c.dynamic_batching.default_queue_policy.timeout_action, 'REJECT');
      assert.ok(c.instance_group.length >= 1);
      assert.deepEqual(c.version_policy, { latest: { num_versions: 1 } });
    }
    const strings = (await call('GET', '/v2/models/simple_string/config')).json();
    assert.equal(strings.input[0].data_type, 'TYPE_STRING');
  });

  await t.test('infer: the simple model sums and subtracts, plain and per version', async () => {
    for (const path of ['/v2/models/simple/infer', '/v2/models/simple/versions/1/infer']) {
      const res = await call('POST', path, { body: JSON.stringify(simpleRequest({ id: 'req-7' })), headers: { 'content-type': 'application/json' } });
      assert.equal(res.status, 200, res.text());
      assert.match(res.headers['content-type'] ?? '', /application\/json/);
      const r = res.json();
      assert.equal(r.id, 'req-7');
      assert.equal(r.model_name, 'simple');
      assert.equal(r.model_version, '1');
      const byName = Object.fromEntries(r.outputs.map((o: { name: string }) => [o.name, o]));
      assert.deepEqual(byName.OUTPUT0, { name: 'OUTPUT0', datatype: 'INT32', shape: [1, 16], data: SUMS });
      assert.deepEqual(byName.OUTPUT1.data, DIFFS);
    }
  });

  await t.test('infer: a requested subset of outputs, one of them binary', async () => {
    const only1 = (await call('POST', '/v2/models/simple/infer', { body: JSON.stringify(simpleRequest({ outputs: [{ name: 'OUTPUT1' }] })) })).json();
    assert.deepEqual(only1.outputs.map((o: { name: string }) => o.name), ['OUTPUT1']);
    assert.deepEqual(only1.outputs[0].data, DIFFS);
    const res = await call('POST', '/v2/models/simple/infer', { body: JSON.stringify(simpleRequest({ outputs: [{ name: 'OUTPUT0', parameters: { binary_data: true } }] })) });
    assert.equal(res.status, 200);
    assert.equal(res.headers['content-type'], 'application/octet-stream');
    const { json, binary } = splitResponse(res);
    assert.deepEqual(json.outputs, [{ name: 'OUTPUT0', datatype: 'INT32', shape: [1, 16], parameters: { binary_data_size: 64 } }]);
    assert.deepEqual(Array.from(new Int32Array(binary.buffer.slice(binary.byteOffset, binary.byteOffset + 64))), SUMS);
  });

  await t.test('compression: gzip and deflate request bodies; responses compressed only on infer and only when asked', async () => {
    const body = Buffer.from(JSON.stringify(simpleRequest()));
    for (const [encoding, compress] of [['gzip', gzipSync], ['deflate', deflateSync]] as const) {
      const res = await call('POST', '/v2/models/simple/infer', { body: compress(body), headers: { 'content-encoding': encoding } });
      assert.equal(res.status, 200, `${encoding}: ${res.text()}`);
      assert.deepEqual(res.json().outputs[0].data, SUMS);
    }
    const plain = await call('POST', '/v2/models/simple/infer', { body });
    assert.equal(plain.headers['content-encoding'], undefined);
    const gz = await call('POST', '/v2/models/simple/infer', { body, headers: { 'accept-encoding': 'gzip' } });
    assert.equal(gz.headers['content-encoding'], 'gzip');
    assert.deepEqual(JSON.parse(gunzipSync(gz.body).toString()).outputs[0].data, SUMS);
    const df = await call('POST', '/v2/models/simple/infer', { body, headers: { 'accept-encoding': 'br;q=1, deflate' } });
    assert.equal(df.headers['content-encoding'], 'deflate');
    assert.deepEqual(JSON.parse(inflateSync(df.body).toString()).outputs[0].data, SUMS);
    const refused = await call('POST', '/v2/models/simple/infer', { body, headers: { 'accept-encoding': 'gzip;q=0' } });
    assert.equal(refused.headers['content-encoding'], undefined);
    const meta = await call('GET', '/v2', { headers: { 'accept-encoding': 'gzip, deflate' } });
    assert.equal(meta.headers['content-encoding'], undefined);
    assert.equal(meta.json().name, 'sluice');
  });

  await t.test('statistics: all models, one model, one version', async () => {
    const all = (await call('GET', '/v2/models/stats')).json();
    const names = all.model_stats.map((s: { name: string }) => s.name);
    for (const m of ['simple', 'identity', 'mlp', 'cnn']) assert.ok(names.includes(m), m);
    for (const path of ['/v2/models/simple/stats', '/v2/models/simple/versions/1/stats']) {
      const res = await call('GET', path);
      assert.equal(res.status, 200, path);
      const [s] = res.json().model_stats;
      assert.equal(s.name, 'simple');
      assert.equal(s.version, '1');
      assert.ok(s.inference_count >= 2, `inference_count ${s.inference_count}`);
      assert.ok(s.execution_count >= 1);
      assert.ok(s.last_inference > 0);
      assert.ok(s.inference_stats.success.count >= 2);
      assert.ok(s.inference_stats.compute_infer.ns > 0);
      for (const k of ['fail', 'queue', 'compute_input', 'compute_output']) assert.equal(typeof s.inference_stats[k].count, 'number', k);
      assert.ok(s.batch_stats.length >= 1);
      assert.equal(typeof s.batch_stats[0].batch_size, 'number');
    }
    assert.equal((await call('GET', '/v2/models/nosuch/stats')).status, 404);
  });

  await t.test('repository: index, ready-only index; load and unload refused without explicit model control', async () => {
    const index = await call('POST', '/v2/repository/index');
    assert.equal(index.status, 200);
    const simple = index.json().find((e: { name: string }) => e.name === 'simple');
    assert.deepEqual(simple, { name: 'simple', version: '1', state: 'READY', reason: '' });
    const ready = (await call('POST', '/v2/repository/index', { body: '{"ready":true}' })).json();
    assert.ok(ready.length >= 4 && ready.every((e: { state: string }) => e.state === 'READY'));
    for (const op of ['load', 'unload']) {
      const res = await call('POST', `/v2/repository/models/simple/${op}`);
      assert.equal(res.status, 503, op);
      assert.match(res.json().error, /model control mode/);
    }
  });

  await t.test('unknown routes answer 404 with a JSON error', async () => {
    const res = await call('GET', '/v3/nothing');
    assert.equal(res.status, 404);
    assert.match(res.json().error, /no route for GET \/v3\/nothing/);
  });
}
