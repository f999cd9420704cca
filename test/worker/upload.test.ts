// Uploaded model files between gateway and worker: the staging store (src/repository/uploads.ts), the
// /upload body (src/worker/upload-frame.ts) and a worker host that runs a version by its source only.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { test } from 'node:test';
import { ELEM, encodeModel, node, type ValueSpec } from '../../models/onnx-builder.ts';
import { SOURCE_PATTERN } from '../../src/core/model.ts';
import { UploadStore, sourceOf, uploadPathOf } from '../../src/repository/uploads.ts';
import { WORKER_PATHS } from '../../src/worker/protocol.ts';
import { UPLOAD_CONTENT_TYPE, decodeUpload, encodeUpload } from '../../src/worker/upload-frame.ts';
import { SAMPLE_REPOSITORY, control, infer, int32Values, simpleJob, spawnWorker, tempDir } from './helpers.ts';

function mulModel(): Uint8Array {
  const io = (name: string): ValueSpec => ({ name, elemType: ELEM.INT32, dims: ['batch', 16] });
  return encodeModel({
    name: 'mul', doc: 'OUTPUT0 = INPUT0 * INPUT1', inputs: [io('INPUT0'), io('INPUT1')], outputs: [io('OUTPUT0'), io('OUTPUT1')],
    nodes: [node('Mul', ['INPUT0', 'INPUT1'], ['OUTPUT0']), node('Sub', ['INPUT0', 'INPUT1'], ['OUTPUT1'])],
  });
}
const CONFIG = JSON.stringify({ name: 'simple', max_batch_size: 8 });

test('a source names model, version, config and every file: any change is another source', () => {
  const files = [{ path: 'model.onnx', data: Buffer.from('abc') }, { path: 'extra/w.bin', data: Buffer.from('d') }];
  const s = sourceOf('m', '1', '{}', files);
  assert.match(s, SOURCE_PATTERN);
  assert.equal(sourceOf('m', '1', '{}', [...files].reverse()), s, 'file order does not matter');
  for (const other of [
    sourceOf('n', '1', '{}', files), sourceOf('m', '2', '{}', files), sourceOf('m', '1', '{ }', files),
    sourceOf('m', '1', '{}', [{ path: 'model.onnx', data: Buffer.from('abd') }, files[1]!]),
    // the same bytes split differently between two files
    sourceOf('m', '1', '{}', [{ path: 'model.onnx', data: Buffer.from('ab') }, { path: 'extra/w.bin', data: Buffer.from('cd') }]),
  ]) assert.notEqual(other, s);
  assert.deepEqual(uploadPathOf('file:3/sub/model.onnx'), { version: '3', path: 'sub/model.onnx' });
  for (const bad of ['file:0/model.onnx', 'file:/model.onnx', 'file:1', 'file:1/', 'file:1/../x', 'file:1/a//b', 'file:1/.git', 'file:1/a\\b']) {
    assert.throws(() => uploadPathOf(bad), /SLUICE_INVALID_PARAMETER|invalid parameter/, bad);
  }
});

test('the store stages, reads back, bounds and removes uploads', async (t) => {
  const store = new UploadStore({ budgetBytes: 4096, parent: tempDir(t) });
  t.after(() => store.close());
  const model = mulModel();
  const staged = await store.stage('simple', CONFIG, new Map([['1', [{ path: 'model.onnx', data: model }]]]));
  const source = staged.sources.get('1')!;
  assert.ok(store.has(source));
  const entry = await store.entryOf(staged.id);
  assert.equal(entry.error, '');
  assert.equal(entry.config?.maxBatchSize, 8, 'the config that came with the files');
  assert.equal(entry.versions[0]?.source, source);
  assert.ok(existsSync(entry.versions[0].file));
  const bundle = await store.bundle(source);
  assert.deepEqual(Buffer.from(bundle.files[0]!.data), Buffer.from(model));
  await assert.rejects(store.resolve('other', '1', source), /SLUICE_UPLOAD_MISSING|no uploaded files/);
  await assert.rejects(store.stage('simple', CONFIG, new Map([['2', [{ path: 'model.onnx', data: new Uint8Array(4096) }]]])), (e: Error & { code?: string }) => e.code === 'SLUICE_UPLOADS_FULL');
  // Two writers of one id (two gateways sending one source) stage it once, both succeed.
  const again = new Map([['1', [{ path: 'model.onnx', data: model }]]]);
  await Promise.all([store.stage('simple', CONFIG, again, 'same'), store.stage('simple', CONFIG, again, 'same')]);
  await store.retain('simple', new Set([source]));
  assert.ok(store.has(source) && existsSync(entry.versions[0].file), 'a kept source stays');
  await store.retain('simple', new Set());
  assert.ok(!store.has(source));
  assert.ok(!existsSync(entry.versions[0].file), 'its files are removed');
  assert.equal(store.bytes, 0);
});

test('an /upload body is checked field by field and against its source', () => {
  const files = [{ path: 'model.onnx', data: mulModel() }];
  const bundle = { model: 'simple', version: '1', config: CONFIG, source: sourceOf('simple', '1', CONFIG, files), files };
  const body = Buffer.concat(encodeUpload(bundle));
  const back = decodeUpload(body);
  assert.equal(back.source, bundle.source);
  assert.deepEqual(Buffer.from(back.files[0]!.data), Buffer.from(files[0]!.data));
  const altered = Buffer.from(body);
  altered[altered.length - 3]! ^= 0xff;
  assert.throws(() => decodeUpload(altered), /not those source .* names/);
  assert.throws(() => decodeUpload(body.subarray(0, body.length - 1)), /runs past the body's end/);
  assert.throws(() => decodeUpload(Buffer.concat([body, Buffer.from('x')])), /1 bytes follow the last file/);
  const evil = Buffer.concat(encodeUpload({ ...bundle, files: [{ path: '../../x', data: files[0]!.data }] }));
  assert.throws(() => decodeUpload(evil), /inside the version folder/);
  assert.throws(() => decodeUpload(Buffer.concat(encodeUpload({ ...bundle, source: 'f'.repeat(63) }))), /64 lowercase hex/);
});

test('a worker host runs an uploaded version by its source only, and forgets it when unloaded', { timeout: 60_000 }, async (t) => {
  const host = await spawnWorker(t, ['--listen', '127.0.0.1:0', '--model-repository', SAMPLE_REPOSITORY, '--intra-op-threads', '1']);
  const files = [{ path: 'model.onnx', data: mulModel() }];
  const source = sourceOf('simple', '1', CONFIG, files);
  const { job, input0 } = simpleJob(2);
  const missing = await infer(host.pool, { ...job, source });
  assert.equal(missing.ok, false);
  assert.equal(!missing.ok && missing.code, 'SLUICE_UPLOAD_MISSING', 'never the repository file under the same name');

  const res = await host.pool.request({ path: WORKER_PATHS.upload, method: 'POST', body: Buffer.concat(encodeUpload({ model: 'simple', version: '1', config: CONFIG, source, files })), headers: { 'content-type': UPLOAD_CONTENT_TYPE } });
  assert.equal(res.statusCode, 200, await res.body.text());
  const ran = await infer(host.pool, { ...job, source });
  assert.ok(ran.ok, !ran.ok ? ran.message : '');
  assert.deepEqual(int32Values(ran.value.outputs[0]!.data), input0, 'INPUT0 * 1');
  const plain = await infer(host.pool, job);
  assert.ok(plain.ok);
  assert.deepEqual(int32Values(plain.value.outputs[0]!.data), input0.map((x) => x + 1), 'without a source, the repository file');

  assert.deepEqual((await control(host.pool, WORKER_PATHS.unload, { model: 'simple', version: '1', source })), { ok: true, value: { unloaded: true } });
  const gone = await infer(host.pool, { ...job, source });
  assert.equal(!gone.ok && gone.code, 'SLUICE_UPLOAD_MISSING', 'the host dropped the files with the model');
  const bad = await control(host.pool, WORKER_PATHS.load, { model: 'simple', version: '1', source: 'nothex' });
  assert.equal(!bad.ok && bad.status, 400);
});
