import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { credentials, Metadata, status } from '@grpc/grpc-js';
import { startGrpcServer } from '../../src/frontdoor/grpc/server.ts';
import { createLogger } from '../../src/telemetry/logger.ts';
import { startTestSluice, testConfig } from '../helpers/sluice.ts';
import { connectGrpc, expectStatus, int32Values, outputOf, range16, simpleRequest } from './client.ts';

test('every GRPCInferenceService method against a running sluice', { timeout: 60_000 }, async (t) => {
  const sluice = await startTestSluice(t);
  const c = connectGrpc(t, sluice.ports.grpc);

  await t.test('health', async () => {
    assert.deepEqual(await c.call('ServerLive'), { live: true });
    assert.deepEqual(await c.call('ServerReady'), { ready: true });
    assert.deepEqual(await c.call('ModelReady', { name: 'simple' }), { ready: true });
    assert.deepEqual(await c.call('ModelReady', { name: 'simple', version: '1' }), { ready: true });
  });

  await t.test('server and model metadata', async () => {
    const server = await c.call('ServerMetadata');
    assert.equal(server['name'], 'sluice');
    assert.match(server['version'] as string, /^\d+\.\d+\.\d+/);
    assert.ok((server['extensions'] as string[]).includes('statistics'));
    const m = await c.call('ModelMetadata', { name: 'simple' });
    assert.equal(m['name'], 'simple');
    assert.deepEqual(m['versions'], ['1']);
    assert.deepEqual(m['inputs'], [
      { name: 'INPUT0', datatype: 'INT32', shape: ['-1', '16'] },
      { name: 'INPUT1', datatype: 'INT32', shape: ['-1', '16'] },
    ]);
    assert.deepEqual((m['outputs'] as { name: string }[]).map((o) => o.name), ['OUTPUT0', 'OUTPUT1']);
  });

  await t.test('model configuration in Triton terms', async () => {
    const { config } = await c.call('ModelConfig', { name: 'simple' });
    assert.equal(config.name, 'simple');
    assert.equal(config.max_batch_size, 32);
    assert.deepEqual(config.input.map((i: { name: string; data_type: string; dims: string[] }) => [i.name, i.data_type, i.dims]), [['INPUT0', 'TYPE_INT32', ['16']], ['INPUT1', 'TYPE_INT32', ['16']]]);
    assert.equal(config.scheduling_choice, 'dynamic_batching');
    assert.deepEqual(config.dynamic_batching.preferred_batch_size, [8, 16, 32]);
    assert.equal(config.dynamic_batching.default_queue_policy.max_queue_size, 1024);
    assert.equal(config.dynamic_batching.default_queue_policy.timeout_action, 'REJECT');
    assert.equal(config.version_policy.policy_choice, 'latest');
    assert.equal(config.version_policy.latest.num_versions, 1);
    assert.equal(config.model_warmup[0].name, 'zeros');
    assert.equal(config.model_warmup[0].inputs.INPUT0.data_type, 'TYPE_INT32');
  });

  await t.test('ModelInfer on the simple model: sum and difference', async () => {
    const a = range16(0);
    const b = range16(100);
    const reply = await c.call('ModelInfer', simpleRequest(a, b, { id: 'sum-1' }));
    assert.equal(reply['id'], 'sum-1');
    assert.equal(reply['model_name'], 'simple');
    assert.equal(reply['model_version'], '1');
    const sum = outputOf(reply, 'OUTPUT0');
    assert.equal(sum.datatype, 'INT32');
    assert.deepEqual(sum.shape, [1, 16]);
    assert.deepEqual(int32Values(sum.raw), a.map((x, i) => x + b[i]!));
    assert.deepEqual(int32Values(outputOf(reply, 'OUTPUT1').raw), a.map((x, i) => x - b[i]!));
  });

  await t.test('statistics count the inference', async () => {
    const { model_stats } = await c.call('ModelStatistics', { name: 'simple' });
    assert.equal(model_stats.length, 1);
    const s = model_stats[0];
    assert.equal(s.name, 'simple');
    assert.equal(s.version, '1');
    assert.ok(Number(s.inference_count) >= 1, `inference_count ${s.inference_count}`);
    assert.ok(Number(s.execution_count) >= 1);
    assert.ok(Number(s.inference_stats.success.count) >= 1);
    assert.ok(Number(s.inference_stats.compute_infer.ns) > 0);
    const all = await c.call('ModelStatistics', {});
    assert.ok(all['model_stats'].length >= 2, 'an empty name lists every model');
    await expectStatus(c.call('ModelStatistics', { name: 'no_such_model' }), status.NOT_FOUND, 'no_such_model');
  });

  await t.test('repository index; load and unload refused while model control is off', async () => {
    const { models } = await c.call('RepositoryIndex', { ready: true });
    const simple = (models as { name: string; version: string; state: string }[]).find((m) => m.name === 'simple');
    assert.deepEqual(simple && [simple.version, simple.state], ['1', 'READY']);
    await expectStatus(c.call('RepositoryModelLoad', { model_name: 'simple' }), status.UNAVAILABLE, 'model control');
    await expectStatus(c.call('RepositoryModelUnload', { model_name: 'simple' }), status.UNAVAILABLE, 'model control');
    assert.deepEqual(await c.call('ModelReady', { name: 'simple' }), { ready: true });
  });

  await t.test('CUDA shared-memory methods answer UNIMPLEMENTED and say so', async () => {
    for (const method of ['CudaSharedMemoryStatus', 'CudaSharedMemoryRegister', 'CudaSharedMemoryUnregister']) {
      await expectStatus(c.call(method, {}), status.UNIMPLEMENTED, method, 'not supported');
    }
  });

  await t.test('unknown models are NOT_FOUND, path-like names INVALID_ARGUMENT', async () => {
    await expectStatus(c.call('ModelMetadata', { name: 'nope' }), status.NOT_FOUND, "'nope'");
    await expectStatus(c.call('ModelConfig', { name: 'nope' }), status.NOT_FOUND, "'nope'");
    await expectStatus(c.call('ModelMetadata', { name: '../simple' }), status.INVALID_ARGUMENT, '../simple');
    await expectStatus(c.call('ModelReady', { name: 'simple', version: 'x/1' }), status.INVALID_ARGUMENT, 'x/1');
    await expectStatus(c.call('ModelMetadata', { name: 'simple', version: '7' }), status.NOT_FOUND, '7');
  });

  await t.test('gzip-compressed requests are accepted', async () => {
    const gz = connectGrpc(t, sluice.ports.grpc, { 'grpc.default_compression_algorithm': 2, 'grpc.default_compression_level': 2 });
    const reply = await gz.call('ModelInfer', simpleRequest(new Array<number>(16).fill(7), new Array<number>(16).fill(2)));
    assert.deepEqual(int32Values(outputOf(reply, 'OUTPUT0').raw), new Array<number>(16).fill(9));
  });

  await t.test('an idle channel that pings every second is not sent away', async () => {
    const pinging = connectGrpc(t, sluice.ports.grpc, { 'grpc.keepalive_time_ms': 1000, 'grpc.keepalive_timeout_ms': 1000, 'grpc.keepalive_permit_without_calls': 1 });
    assert.deepEqual(await pinging.call('ServerLive'), { live: true });
    await new Promise((r) => setTimeout(r, 3500));
    assert.deepEqual(await pinging.call('ServerLive'), { live: true });
  });

  await t.test('the sluice-error-code trailer names the catalog code', async () => {
    const err = await expectStatus(c.call('ModelInfer', { model_name: 'nope', inputs: [] }), status.NOT_FOUND);
    assert.deepEqual(err.metadata.get('sluice-error-code'), ['SLUICE_MODEL_NOT_FOUND']);
  });

  await t.test('TLS, over the same service', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sluice-grpc-tls-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const cert = join(dir, 'cert.pem');
    const key = join(dir, 'key.pem');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1'], { stdio: 'ignore' });
    const config = testConfig(['--grpc-tls-cert', cert, '--grpc-tls-key', key]);
    const server = await startGrpcServer({ config, service: sluice.service, metrics: sluice.metrics, logger: createLogger('warn') });
    t.after(() => server.close());
    const tls = connectGrpc(t, server.port, { 'grpc.ssl_target_name_override': 'localhost' }, credentials.createSsl(readFileSync(cert)));
    const reply = await tls.call('ModelInfer', simpleRequest(range16(1), range16(1)));
    assert.deepEqual(int32Values(outputOf(reply, 'OUTPUT0').raw), range16(1).map((x) => 2 * x));
    const plain = connectGrpc(t, server.port, { 'grpc.initial_reconnect_backoff_ms': 100 });
    await expectStatus(plain.call('ServerLive', {}, { deadline: Date.now() + 1500 }), status.UNAVAILABLE);
  });

  await t.test('metadata from the client does not disturb a call', async () => {
    const md = new Metadata();
    md.set('x-request-source', 'test');
    const reply = await new Promise<Record<string, unknown>>((resolve, reject) => {
      (c.client as unknown as { ServerLive(r: object, m: Metadata, cb: (e: Error | null, r: Record<string, unknown>) => void): void }).ServerLive({}, md, (e, r) => (e ? reject(e) : resolve(r)));
    });
    assert.deepEqual(reply, { live: true });
  });
});

test('explicit model control: load and unload over gRPC', { timeout: 60_000 }, async (t) => {
  const sluice = await startTestSluice(t, ['--model-control-mode', 'explicit']);
  const c = connectGrpc(t, sluice.ports.grpc);
  assert.deepEqual(await c.call('ModelReady', { name: 'simple' }), { ready: false });
  await expectStatus(c.call('ModelInfer', simpleRequest(range16(0), range16(0))), status.UNAVAILABLE, "'simple'");
  assert.deepEqual(await c.call('RepositoryModelLoad', { model_name: 'simple' }), {});
  assert.deepEqual(await c.call('ModelReady', { name: 'simple' }), { ready: true });
  const reply = await c.call('ModelInfer', simpleRequest(range16(2), range16(3)));
  assert.deepEqual(int32Values(outputOf(reply, 'OUTPUT1').raw), new Array<number>(16).fill(-1));
  const ready = (await c.call('RepositoryIndex', { ready: true }))['models'] as { name: string }[];
  assert.deepEqual(ready.map((m) => m.name), ['simple']);
  await expectStatus(c.call('RepositoryModelLoad', { model_name: 'simple', parameters: { 'file:1/model.onnx': { bytes_param: Buffer.from('x') } } }), status.INVALID_ARGUMENT, "needs the model's config");
  await expectStatus(c.call('RepositoryModelLoad', { model_name: 'no_such_model' }), status.NOT_FOUND, 'no_such_model');
  assert.deepEqual(await c.call('RepositoryModelUnload', { model_name: 'simple' }), {});
  assert.deepEqual(await c.call('ModelReady', { name: 'simple' }), { ready: false });
  const all = (await c.call('RepositoryIndex', { ready: false }))['models'] as { name: string; state: string }[];
  assert.equal(all.find((m) => m.name === 'simple')?.state, 'UNAVAILABLE');
});
