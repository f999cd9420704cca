// Triton's load with model files: `file:<version>/<name>` parameters (base64 on REST, bytes on gRPC)
// with a `config` are served instead of the model folder's files, on in-process workers and on worker
// hosts alike; a bad upload answers 400 naming what was wrong and the serving version keeps serving.
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { status } from '@grpc/grpc-js';
import { request } from 'undici';
import { ELEM, encodeModel, node, type ValueSpec } from '../../models/onnx-builder.ts';
import { startTestSluice } from '../helpers/sluice.ts';
import { SAMPLE_REPOSITORY, spawnWorker } from '../worker/helpers.ts';
import { connectGrpc, expectStatus } from '../grpc/client.ts';
import { simpleRequest } from './client.ts';

/** simple's signature, another computation: OUTPUT0 = INPUT0 * INPUT1 (the repository's adds). */
function product(op = 'Mul'): Uint8Array {
  const io = (name: string): ValueSpec => ({ name, elemType: ELEM.INT32, dims: ['batch', 16] });
  return encodeModel({
    name: 'simple_upload', doc: 'uploaded', inputs: [io('INPUT0'), io('INPUT1')], outputs: [io('OUTPUT0'), io('OUTPUT1')],
    nodes: [node(op, ['INPUT0', 'INPUT1'], ['OUTPUT0']), node('Sub', ['INPUT0', 'INPUT1'], ['OUTPUT1'])],
  });
}

const CONFIG = JSON.stringify({ name: 'simple', backend: 'onnxruntime', max_batch_size: 8 });
const b64 = (b: Uint8Array): string => Buffer.from(b).toString('base64');

function client(t: TestContext, httpPort: number) {
  const base = `http://127.0.0.1:${httpPort}`;
  return {
    async load(parameters: unknown): Promise<{ status: number; text: string }> {
      const r = await request(`${base}/v2/repository/models/simple/load`, { method: 'POST', body: JSON.stringify({ parameters }) });
      return { status: r.statusCode, text: await r.body.text() };
    },
    /** OUTPUT0 for INPUT0 = 0..15 and INPUT1 = 2. */
    async output0(): Promise<number[]> {
      const body = simpleRequest();
      (body['inputs'] as { data: number[] }[])[1]!.data = Array.from({ length: 16 }, () => 2);
      const r = await request(`${base}/v2/models/simple/infer`, { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json' } });
      const json = (await r.body.json()) as { outputs?: { name: string; data: number[] }[]; error?: string };
      assert.equal(r.statusCode, 200, json.error);
      return json.outputs!.find((o) => o.name === 'OUTPUT0')!.data;
    },
    async maxBatch(): Promise<number> {
      const r = await request(`${base}/v2/models/simple/config`);
      return ((await r.body.json()) as { max_batch_size: number }).max_batch_size;
    },
    t,
  };
}

const SUM = Array.from({ length: 16 }, (_, i) => i + 2);
const PRODUCT = Array.from({ length: 16 }, (_, i) => i * 2);

test('a load with files serves them (REST base64, gRPC bytes); bad uploads answer 400 and keep the version serving', async (t) => {
  const sluice = await startTestSluice(t, ['--model-control-mode', 'explicit', '--load-model', 'simple']);
  const c = client(t, sluice.ports.http);
  assert.deepEqual(await c.output0(), SUM);

  const ok = await c.load({ config: CONFIG, 'file:1/model.onnx': b64(product()) });
  assert.equal(ok.status, 200, ok.text);
  assert.deepEqual(await c.output0(), PRODUCT, 'the uploaded file runs, not the repository one');
  assert.equal(await c.maxBatch(), 8, 'with the config that came with it');

  const refusals: [unknown, number, RegExp][] = [
    [{ 'file:1/model.onnx': b64(product()) }, 400, /'config'.*needs the model's config/],
    [{ config: CONFIG, 'file:1/model.onnx': 'not base64!' }, 400, /file:1\/model\.onnx.*base64/],
    [{ config: CONFIG, 'file:1/model.onnx': 42 }, 400, /file:1\/model\.onnx.*base64/],
    [{ config: CONFIG, 'file:one/model.onnx': b64(product()) }, 400, /version folder/],
    [{ config: CONFIG, 'file:1/../../etc/passwd': b64(product()) }, 400, /inside the version folder/],
    [{ config: CONFIG, 'file:1/.hidden': b64(product()) }, 400, /inside the version folder/],
    [{ config: CONFIG, 'file:1/model.onnx': b64(Buffer.from('this is not an onnx file')) }, 400, /model\.onnx: not a valid ONNX model.*SLUICE_CONFIG_OVERRIDE_REJECTED/],
    [{ config: CONFIG, 'file:1/other.onnx': b64(product()) }, 400, /model\.onnx is missing/],
  ];
  for (const [parameters, code, why] of refusals) {
    const r = await c.load(parameters);
    assert.equal(r.status, code, `${JSON.stringify(parameters).slice(0, 80)}: ${r.text}`);
    assert.match(r.text, why);
    assert.deepEqual(await c.output0(), PRODUCT, 'the uploaded version keeps serving after a refused load');
  }
  const unknown = await request(`http://127.0.0.1:${sluice.ports.http}/v2/repository/models/nosuch/load`, { method: 'POST', body: JSON.stringify({ parameters: { config: CONFIG, 'file:1/model.onnx': b64(product()) } }) });
  assert.equal(unknown.statusCode, 404, await unknown.body.text());

  // gRPC: bytes_param, and a file parameter of another type is refused.
  const grpc = connectGrpc(t, sluice.ports.grpc);
  await grpc.call('RepositoryModelLoad', { model_name: 'simple', parameters: { config: { string_param: CONFIG }, 'file:1/model.onnx': { bytes_param: Buffer.from(product('Sub')) } } });
  assert.deepEqual(await c.output0(), Array.from({ length: 16 }, (_, i) => i - 2), 'the file sent over gRPC runs');
  await expectStatus(grpc.call('RepositoryModelLoad', { model_name: 'simple', parameters: { config: { string_param: CONFIG }, 'file:1/model.onnx': { string_param: 'x' } } }), status.INVALID_ARGUMENT, 'bytes_param');

  // A load without files reads the repository again.
  assert.equal((await c.load({})).status, 200);
  assert.deepEqual(await c.output0(), SUM);
  assert.equal(await c.maxBatch(), 32);
});

test('worker hosts are sent the uploaded files, and a host that lost them (restarted) is sent them again', { timeout: 120_000 }, async (t) => {
  const hostArgs = ['--model-repository', SAMPLE_REPOSITORY, '--intra-op-threads', '1'];
  const host = await spawnWorker(t, ['--listen', '127.0.0.1:0', ...hostArgs]);
  const address = host.address;
  const sluice = await startTestSluice(t, ['--workers', '0', '--worker', `http://${address}`, '--model-control-mode', 'explicit', '--load-model', 'simple']);
  const c = client(t, sluice.ports.http);
  assert.deepEqual(await c.output0(), SUM);

  const ok = await c.load({ config: CONFIG, 'file:1/model.onnx': b64(product()) });
  assert.equal(ok.status, 200, ok.text);
  assert.deepEqual(await c.output0(), PRODUCT, 'the host runs the uploaded file');

  // The host is replaced at the same address: the new one holds no upload (nor any model).
  host.child.kill('SIGTERM');
  assert.equal(await host.exited, 0);
  await spawnWorker(t, ['--listen', address, ...hostArgs]);
  const deadline = Date.now() + 30_000;
  let last: number[] | string = '';
  while (Date.now() < deadline) {
    try {
      last = await c.output0();
      break;
    } catch (e) {
      last = (e as Error).message;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  assert.deepEqual(last, PRODUCT, 'the new host was sent the files again (never the repository file under the same name)');
});
