// Keys, scopes and rate limits over gRPC: the authorization metadata, UNAUTHENTICATED, PERMISSION_DENIED,
// RESOURCE_EXHAUSTED with retry-after, per message on ModelStreamInfer.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { Metadata, status } from '@grpc/grpc-js';
import { startTestSluice } from '../helpers/sluice.ts';
import { connectGrpc, expectStatus, range16, simpleRequest, type GrpcTestClient, type Reply } from '../grpc/client.ts';
import { keys, tempDir, type TestKey } from './fixture.ts';

const K = keys('infer', 'simpleOnly', 'meta', 'control', 'limited');

function auth(k: TestKey | string): { metadata: Metadata } {
  const m = new Metadata();
  m.set('authorization', typeof k === 'string' ? k : `Bearer ${k.key}`);
  return { metadata: m };
}

async function start(t: TestContext): Promise<GrpcTestClient> {
  const file = join(tempDir(t), 'auth.yaml');
  writeFileSync(file, `tenants:
  - name: team-a
    keys:
      - { sha256: ${K.infer.sha256}, scopes: [infer] }
      - { sha256: ${K.simpleOnly.sha256}, scopes: ["infer:simple"] }
  - name: viewer
    keys: [{ sha256: ${K.meta.sha256}, scopes: [metadata] }]
  - name: ops
    keys: [{ sha256: ${K.control.sha256}, scopes: [control] }]
  - name: limited
    limits: { requests_per_second: 0.5, requests_burst: 1 }
    keys: [{ sha256: ${K.limited.sha256}, scopes: [infer] }]
`);
  const s = await startTestSluice(t, ['--auth-config', file, '--model-control-mode', 'explicit', '--load-model', 'simple', '--load-model', 'mlp']);
  return connectGrpc(t, s.ports.grpc);
}

const SIMPLE = simpleRequest(range16(0), range16(1));
const MLP = { model_name: 'mlp', inputs: [{ name: 'INPUT0', datatype: 'FP32', shape: [1, 784] }], raw_input_contents: [Buffer.alloc(784 * 4)] };

test('gRPC: no key, a bad key, a wrong scope and a right one, per method; health stays open', async (t) => {
  const c = await start(t);
  await expectStatus(c.call('ModelInfer', SIMPLE), status.UNAUTHENTICATED, "send the call metadata 'authorization: Bearer <key>'");
  await expectStatus(c.call('ModelInfer', SIMPLE, auth('Token abc')), status.UNAUTHENTICATED, "use 'Bearer <key>'");
  const bad = await expectStatus(c.call('ModelInfer', SIMPLE, auth(`Bearer ${K.infer.key}0`)), status.UNAUTHENTICATED, 'unknown to this server');
  assert.ok(!bad.details.includes(K.infer.key), 'the key is never echoed');
  assert.equal((await c.call('ModelInfer', SIMPLE, auth(K.infer)))['model_name'], 'simple');
  assert.equal((await c.call('ModelInfer', SIMPLE, auth(K.simpleOnly)))['model_name'], 'simple');
  await expectStatus(c.call('ModelInfer', MLP, auth(K.simpleOnly)), status.PERMISSION_DENIED, "lacks the scope 'infer:mlp'");
  await expectStatus(c.call('ModelInfer', SIMPLE, auth(K.meta)), status.PERMISSION_DENIED, "tenant 'viewer' lacks the scope 'infer:simple'");

  for (const method of ['ServerLive', 'ServerReady']) await c.call(method, {});
  assert.equal((await c.call('ModelReady', { name: 'simple' }))['ready'], true);
  for (const [method, req] of [['ServerMetadata', {}], ['ModelMetadata', { name: 'simple' }], ['ModelConfig', { name: 'simple' }], ['ModelStatistics', {}], ['RepositoryIndex', {}]] as const) {
    await expectStatus(c.call(method, req), status.UNAUTHENTICATED);
    await expectStatus(c.call(method, req, auth(K.infer)), status.PERMISSION_DENIED, "lacks the scope 'metadata'");
    await c.call(method, req, auth(K.meta));
  }
  await expectStatus(c.call('RepositoryModelUnload', { model_name: 'simple' }, auth(K.infer)), status.PERMISSION_DENIED, "lacks the scope 'control'");
  await expectStatus(c.call('RepositoryModelUnload', { model_name: 'simple' }, auth(K.meta)), status.PERMISSION_DENIED, "lacks the scope 'control'");
  await expectStatus(c.call('TraceSetting', {}, auth(K.infer)), status.PERMISSION_DENIED, "lacks the scope 'control'");
  await c.call('RepositoryModelUnload', { model_name: 'mlp' }, auth(K.control));
  await expectStatus(c.call('ModelInfer', MLP, auth(K.infer)), status.UNAVAILABLE);
});

test('gRPC: a rate-limited tenant gets RESOURCE_EXHAUSTED with retry-after metadata', async (t) => {
  const c = await start(t);
  await c.call('ModelInfer', SIMPLE, auth(K.limited));
  const e = await expectStatus(c.call('ModelInfer', SIMPLE, auth(K.limited)), status.RESOURCE_EXHAUSTED, "tenant 'limited' is over its rate limit");
  assert.ok(Number(e.metadata.get('retry-after')[0]) >= 1);
  assert.equal(e.metadata.get('sluice-error-code')[0], 'SLUICE_RATE_LIMITED');
  await c.call('ModelInfer', SIMPLE, auth(K.infer));
});

test('gRPC streams: no key ends the call at once; a key is checked per message against the model it names', async (t) => {
  const c = await start(t);
  const anon = c.stream();
  const ended = new Promise<{ code: number; details: string }>((resolve) => anon.on('error', (e: { code: number; details: string }) => resolve(e)));
  anon.on('data', () => assert.fail('no answer without a key'));
  anon.write(SIMPLE);
  const e = await ended;
  assert.equal(e.code, status.UNAUTHENTICATED);

  const s = c.stream(auth(K.simpleOnly));
  const replies: Reply[] = [];
  const done = new Promise<void>((resolve, reject) => {
    s.on('data', (r: Reply) => replies.push(r));
    s.on('end', resolve);
    s.on('error', reject);
  });
  s.write({ ...SIMPLE, id: 'ok' });
  s.write({ ...MLP, id: 'denied' });
  s.end();
  await done;
  const byId = new Map(replies.map((r) => [r['infer_response']['id'] as string, r]));
  assert.equal(byId.get('ok')!['error_message'], '');
  assert.match(byId.get('denied')!['error_message'] as string, /lacks the scope 'infer:mlp'/);
});
