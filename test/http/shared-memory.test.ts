import assert from 'node:assert/strict';
import { readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { test, type TestContext } from 'node:test';
import { decodeBytesElements, encodeBytesElements } from '../../src/core/tensor.ts';
import { startTestSluice } from '../helpers/sluice.ts';
import { bearer, keys, tempDir } from '../access/fixture.ts';
import { h1Client, type HttpClient, type HttpResult } from './client.ts';

/**
 * A POSIX shared-memory object as shm_open makes one on Linux: the file /dev/shm/<name>. Removed when
 * the test ends. `bytes` is its initial content.
 */
function shmObject(t: TestContext, name: string, bytes: Uint8Array): { key: string; path: string } {
  const key = `/sluice_test_${process.pid}_${name}`;
  const path = `/dev/shm${key}`;
  writeFileSync(path, bytes);
  t.after(() => rmSync(path, { force: true }));
  return { key, path };
}

function int32(values: readonly number[]): Buffer {
  return Buffer.from(new Int32Array(values).buffer);
}

function int32s(buf: Buffer): number[] {
  return Array.from({ length: buf.byteLength / 4 }, (_, i) => buf.readInt32LE(i * 4));
}

const A = Array.from({ length: 16 }, (_, i) => i * 3);
const B = Array.from({ length: 16 }, (_, i) => 100 - i);
const SUM = A.map((a, i) => a + B[i]!);
const DIFF = A.map((a, i) => a - B[i]!);

function post(client: HttpClient, path: string, body?: unknown): Promise<HttpResult> {
  return client.call('POST', path, body === undefined ? {} : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } });
}

function shmParams(region: string, byteSize: number, offset?: number): Record<string, unknown> {
  return { shared_memory_region: region, shared_memory_byte_size: byteSize, ...(offset === undefined ? {} : { shared_memory_offset: offset }) };
}

/** An infer request for simple with both inputs in region `inRegion` (INPUT0 at 0, INPUT1 at 64). */
function simpleFromShm(inRegion: string, outputs: unknown[] = []): Record<string, unknown> {
  return {
    inputs: [
      { name: 'INPUT0', datatype: 'INT32', shape: [1, 16], parameters: shmParams(inRegion, 64) },
      { name: 'INPUT1', datatype: 'INT32', shape: [1, 16], parameters: shmParams(inRegion, 64, 64) },
    ],
    outputs,
  };
}

function expectError(res: HttpResult, status: number, pattern: RegExp): void {
  assert.equal(res.status, status, res.text());
  assert.match((res.json() as { error: string }).error, pattern);
}

void test('system shared memory over REST: register, status, infer from and into regions, errors, unregister', { timeout: 60_000 }, async (t) => {
  const sluice = await startTestSluice(t);
  const client = h1Client(`http://127.0.0.1:${sluice.ports.http}`);
  t.after(() => client.close());
  // One object: inputs in its first 128 bytes, outputs in the next 128, registered as two regions.
  const io = shmObject(t, 'io', Buffer.concat([int32(A), int32(B), Buffer.alloc(128)]));

  await t.test('the server declares the extension', async () => {
    const meta = (await client.call('GET', '/v2')).json() as { extensions: string[] };
    assert.ok(meta.extensions.includes('system_shared_memory'), meta.extensions.join(', '));
  });

  await t.test('register and status with Triton\'s fields', async () => {
    assert.equal((await post(client, '/v2/systemsharedmemory/region/in/register', { key: io.key, offset: 0, byte_size: 128 })).status, 200);
    assert.equal((await post(client, '/v2/systemsharedmemory/region/out/register', { key: io.key, offset: 128, byte_size: 128 })).status, 200);
    const all = (await client.call('GET', '/v2/systemsharedmemory/status')).json() as unknown[];
    assert.deepEqual(all, [
      { name: 'in', key: io.key, offset: 0, byte_size: 128 },
      { name: 'out', key: io.key, offset: 128, byte_size: 128 },
    ]);
    const one = await client.call('GET', '/v2/systemsharedmemory/region/out/status');
    assert.deepEqual(one.json(), [{ name: 'out', key: io.key, offset: 128, byte_size: 128 }]);
    expectError(await client.call('GET', '/v2/systemsharedmemory/region/nope/status'), 404, /Unable to find system shared memory region: 'nope'/);
  });

  await t.test('inputs are read from a region and outputs written into one, answered without data', async () => {
    const res = await post(client, '/v2/models/simple/infer', simpleFromShm('in', [
      { name: 'OUTPUT0', parameters: shmParams('out', 64) },
      { name: 'OUTPUT1', parameters: shmParams('out', 64, 64) },
    ]));
    assert.equal(res.status, 200, res.text());
    const outputs = (res.json() as { outputs: Record<string, unknown>[] }).outputs;
    const byName = new Map(outputs.map((o) => [o['name'], o]));
    assert.deepEqual(byName.get('OUTPUT0'), { name: 'OUTPUT0', datatype: 'INT32', shape: [1, 16], parameters: { shared_memory_region: 'out', shared_memory_byte_size: 64 } });
    assert.deepEqual(byName.get('OUTPUT1'), { name: 'OUTPUT1', datatype: 'INT32', shape: [1, 16], parameters: { shared_memory_region: 'out', shared_memory_byte_size: 64, shared_memory_offset: 64 } });
    const bytes = readFileSync(io.path);
    assert.deepEqual(int32s(bytes.subarray(128, 192)), SUM);
    assert.deepEqual(int32s(bytes.subarray(192, 256)), DIFF);
    // The inputs were only read.
    assert.deepEqual(int32s(bytes.subarray(0, 64)), A);
  });

  await t.test('shared-memory and inline tensors mix in one request', async () => {
    writeFileSync(io.path, Buffer.concat([int32(A), int32(B), Buffer.alloc(128)]));
    const res = await post(client, '/v2/models/simple/infer', {
      inputs: [
        { name: 'INPUT0', datatype: 'INT32', shape: [1, 16], parameters: shmParams('in', 64) },
        { name: 'INPUT1', datatype: 'INT32', shape: [1, 16], data: B },
      ],
      outputs: [{ name: 'OUTPUT0' }, { name: 'OUTPUT1', parameters: shmParams('out', 64, 64) }],
    });
    assert.equal(res.status, 200, res.text());
    const outputs = (res.json() as { outputs: { name: string; data?: number[] }[] }).outputs;
    assert.deepEqual(outputs.find((o) => o.name === 'OUTPUT0')?.data, SUM);
    assert.equal(outputs.find((o) => o.name === 'OUTPUT1')?.data, undefined);
    const bytes = readFileSync(io.path);
    assert.deepEqual(int32s(bytes.subarray(192, 256)), DIFF);
    assert.ok(bytes.subarray(128, 192).every((b) => b === 0), 'OUTPUT0 went into the answer, not the region');
  });

  await t.test('BYTES tensors use Triton\'s length-prefixed layout in a region', async () => {
    const strings = (vs: number[]): Uint8Array[] => vs.map((v) => Buffer.from(String(v)));
    const inBytes = Buffer.concat([encodeBytesElements(strings(A)), encodeBytesElements(strings(B))]);
    const s = shmObject(t, 'strings', Buffer.concat([inBytes, Buffer.alloc(512)]));
    const size0 = encodeBytesElements(strings(A)).byteLength;
    assert.equal((await post(client, '/v2/systemsharedmemory/region/str/register', { key: s.key, offset: 0, byte_size: inBytes.byteLength + 512 })).status, 200);
    const res = await post(client, '/v2/models/simple_string/infer', {
      inputs: [
        { name: 'INPUT0', datatype: 'BYTES', shape: [1, 16], parameters: shmParams('str', size0) },
        { name: 'INPUT1', datatype: 'BYTES', shape: [1, 16], parameters: shmParams('str', inBytes.byteLength - size0, size0) },
      ],
      outputs: [{ name: 'OUTPUT0', parameters: shmParams('str', 256, inBytes.byteLength) }],
    });
    assert.equal(res.status, 200, res.text());
    const out = (res.json() as { outputs: { name: string; parameters: { shared_memory_byte_size: number } }[] }).outputs[0]!;
    const written = out.parameters.shared_memory_byte_size;
    const elements = decodeBytesElements(readFileSync(s.path).subarray(inBytes.byteLength, inBytes.byteLength + written), 16);
    assert.ok(Array.isArray(elements), String(elements));
    assert.deepEqual(elements.map((e) => Number(Buffer.from(e).toString())), SUM);
    assert.equal((await post(client, '/v2/systemsharedmemory/region/str/unregister')).status, 200);
  });

  await t.test('registration errors name what was wrong', async () => {
    expectError(await post(client, '/v2/systemsharedmemory/region/in/register', { key: io.key, offset: 0, byte_size: 8 }), 400, /shared memory region 'in' already in manager/);
    expectError(await post(client, '/v2/systemsharedmemory/region/far/register', { key: io.key, offset: 200, byte_size: 100 }), 400, /failed to register shared memory region 'far': offset 200 \+ byte_size 100 runs past the end of shared-memory object '.*' \(256 bytes\)/);
    expectError(await post(client, '/v2/systemsharedmemory/region/ghost/register', { key: `/sluice_test_${process.pid}_missing`, offset: 0, byte_size: 4 }), 404, /no shared-memory object '\/sluice_test_\d+_missing' \(\/dev\/shm\/sluice_test_\d+_missing\)/);
    expectError(await post(client, '/v2/systemsharedmemory/region/esc/register', { key: '/../etc/passwd', offset: 0, byte_size: 4 }), 400, /invalid shared-memory key/);
    expectError(await post(client, '/v2/systemsharedmemory/region/esc/register', { key: '..', offset: 0, byte_size: 4 }), 400, /'\.' and '\.\.' name no shared-memory object/);
    const link = `/dev/shm/sluice_test_${process.pid}_link`;
    symlinkSync(io.path, link);
    t.after(() => rmSync(link, { force: true }));
    expectError(await post(client, '/v2/systemsharedmemory/region/lnk/register', { key: `sluice_test_${process.pid}_link`, offset: 0, byte_size: 4 }), 400, /is a symbolic link/);
    expectError(await post(client, '/v2/systemsharedmemory/region/bad/register', { key: io.key, offset: -1, byte_size: 4 }), 400, /'offset' must be a non-negative integer/);
    expectError(await post(client, '/v2/systemsharedmemory/region/bad/register', { offset: 0, byte_size: 4 }), 400, /'key' must be/);
    const names = ((await client.call('GET', '/v2/systemsharedmemory/status')).json() as { name: string }[]).map((r) => r.name);
    assert.deepEqual(names, ['in', 'out'], 'no failed register left a region behind');
  });

  await t.test('infer errors: sizes, bounds, unknown regions, overlap, a too-small output region', async () => {
    const infer = (body: unknown): Promise<HttpResult> => post(client, '/v2/models/simple/infer', body);
    const withInput0 = (parameters: Record<string, unknown>): Record<string, unknown> => ({
      inputs: [
        { name: 'INPUT0', datatype: 'INT32', shape: [1, 16], parameters },
        { name: 'INPUT1', datatype: 'INT32', shape: [1, 16], data: B },
      ],
    });
    expectError(await infer(withInput0(shmParams('in', 60))), 400, /unexpected data size for tensor 'INPUT0': shape and datatype need 64 bytes.*shared_memory_byte_size 60/);
    expectError(await infer(withInput0(shmParams('in', 64, 100))), 400, /input 'INPUT0' in shared memory region 'in': offset 100 \+ byte_size 64 runs past the end of the region \(128 bytes\)/);
    expectError(await infer(withInput0(shmParams('nope', 64))), 404, /Unable to find system shared memory region: 'nope'/);
    expectError(await infer(withInput0({ shared_memory_offset: 0 })), 400, /'shared_memory_offset' can not be specified without 'shared_memory_region'/);
    expectError(await infer({ ...withInput0(shmParams('in', 64)), inputs: [{ name: 'INPUT0', datatype: 'INT32', shape: [1, 16], data: A, parameters: shmParams('in', 64) }] }), 400, /also has 'data'/);
    // OUTPUT0 over INPUT1's bytes (region 'in', 64..128).
    expectError(await infer(simpleFromShm('in', [{ name: 'OUTPUT0', parameters: shmParams('in', 64, 64) }])), 400, /output 'OUTPUT0' would be written over bytes of shared-memory object '.*' that input 'INPUT1' also uses/);
    // The same bytes reached through another region of the same object count too.
    assert.equal((await post(client, '/v2/systemsharedmemory/region/alias/register', { key: io.key, offset: 64, byte_size: 64 })).status, 200);
    expectError(await infer(simpleFromShm('in', [{ name: 'OUTPUT0', parameters: shmParams('alias', 64) }])), 400, /output 'OUTPUT0' would be written over .* that input 'INPUT1' also uses/);
    assert.equal((await post(client, '/v2/systemsharedmemory/region/alias/unregister')).status, 200);
    expectError(await infer({ ...simpleFromShm('in'), outputs: [{ name: 'OUTPUT0', parameters: shmParams('out', 64) }, { name: 'OUTPUT1', parameters: shmParams('out', 64, 32) }] }), 400, /output 'OUTPUT1' would be written over .* that output 'OUTPUT0' also uses/);
    const before = readFileSync(io.path).subarray(128);
    expectError(await infer(simpleFromShm('in', [{ name: 'OUTPUT0', parameters: shmParams('out', 32) }])), 400, /shared memory size specified with the request for output 'OUTPUT0' \(32 bytes\) should be at least 64 bytes/);
    assert.deepEqual(readFileSync(io.path).subarray(128), before, 'a refused output leaves the region as it was');
  });

  await t.test('CUDA shared memory answers 501 with a clear message', async () => {
    expectError(await client.call('GET', '/v2/cudasharedmemory/status'), 501, /CUDA shared-memory extension.*not supported by sluice/);
    expectError(await post(client, '/v2/cudasharedmemory/region/g/register', { raw_handle: { b64: '' }, device_id: 0, byte_size: 4 }), 501, /CUDA shared-memory/);
  });

  await t.test('unregister: an unused region goes, inference naming it then fails, unknown names are no error', async () => {
    assert.equal((await post(client, '/v2/systemsharedmemory/region/out/unregister')).status, 200);
    assert.deepEqual(((await client.call('GET', '/v2/systemsharedmemory/status')).json() as { name: string }[]).map((r) => r.name), ['in']);
    expectError(await post(client, '/v2/models/simple/infer', simpleFromShm('in', [{ name: 'OUTPUT0', parameters: shmParams('out', 64) }])), 404, /Unable to find system shared memory region: 'out'/);
    assert.equal((await post(client, '/v2/systemsharedmemory/region/never/unregister')).status, 200);
    // The name is free again.
    assert.equal((await post(client, '/v2/systemsharedmemory/region/out/register', { key: io.key, offset: 128, byte_size: 128 })).status, 200);
    assert.equal((await post(client, '/v2/systemsharedmemory/unregister')).status, 200);
    assert.deepEqual((await client.call('GET', '/v2/systemsharedmemory/status')).json(), []);
  });
});

void test('--shared-memory none: no routes, no extension, a tensor naming a region is UNIMPLEMENTED', { timeout: 60_000 }, async (t) => {
  const sluice = await startTestSluice(t, ['--shared-memory', 'none']);
  const client = h1Client(`http://127.0.0.1:${sluice.ports.http}`);
  t.after(() => client.close());
  const meta = (await client.call('GET', '/v2')).json() as { extensions: string[] };
  assert.ok(!meta.extensions.includes('system_shared_memory'));
  assert.equal((await client.call('GET', '/v2/systemsharedmemory/status')).status, 404);
  expectError(await post(client, '/v2/models/simple/infer', simpleFromShm('in')), 501, /shared-memory extension.*--shared-memory none/);
});

void test('with an auth config: status needs metadata, register and unregister control, infer from a region infer', { timeout: 60_000 }, async (t) => {
  const K = keys('meta', 'control', 'infer');
  const file = `${tempDir(t)}/auth.json`;
  writeFileSync(file, JSON.stringify({ tenants: [{ name: 'ops', keys: [{ sha256: K.meta.sha256, scopes: ['metadata'] }, { sha256: K.control.sha256, scopes: ['control'] }, { sha256: K.infer.sha256, scopes: ['infer'] }] }] }));
  const sluice = await startTestSluice(t, ['--auth-config', file]);
  const client = h1Client(`http://127.0.0.1:${sluice.ports.http}`);
  t.after(() => client.close());
  const io = shmObject(t, 'auth', Buffer.concat([int32(A), int32(B), Buffer.alloc(128)]));
  const as = (k: { key: string; sha256: string }, method: string, path: string, body?: unknown): Promise<HttpResult> =>
    client.call(method, path, { headers: { 'content-type': 'application/json', ...bearer(k) }, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
  const register = { key: io.key, offset: 0, byte_size: 256 };
  assert.equal((await client.call('GET', '/v2/systemsharedmemory/status')).status, 401);
  assert.equal((await as(K.meta, 'POST', '/v2/systemsharedmemory/region/r/register', register)).status, 403);
  assert.equal((await as(K.control, 'POST', '/v2/systemsharedmemory/region/r/register', register)).status, 200);
  assert.equal((await as(K.meta, 'GET', '/v2/systemsharedmemory/region/r/status')).status, 200);
  const res = await as(K.infer, 'POST', '/v2/models/simple/infer', simpleFromShm('r', [{ name: 'OUTPUT0', parameters: shmParams('r', 64, 128) }]));
  assert.equal(res.status, 200, res.text());
  assert.deepEqual(int32s(readFileSync(io.path).subarray(128, 192)), SUM);
  assert.equal((await as(K.meta, 'POST', '/v2/systemsharedmemory/unregister')).status, 403);
  assert.equal((await as(K.control, 'POST', '/v2/systemsharedmemory/unregister')).status, 200);
});
