// Triton's logging extension: GET/POST /v2/logging and gRPC LogSettings read and change the running
// server's logging, and the change takes effect on the lines written.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { status } from '@grpc/grpc-js';
import { request } from 'undici';
import { startTestSluice } from '../helpers/sluice.ts';
import { connectGrpc, expectStatus } from '../grpc/client.ts';
import { simpleRequest } from '../http/client.ts';
import { tempDir } from '../access/fixture.ts';

async function call(port: number, method: 'GET' | 'POST', body?: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await request(`http://127.0.0.1:${port}/v2/logging`, { method, ...(body === undefined ? {} : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }) });
  return { status: res.statusCode, json: (await res.body.json()) as Record<string, unknown> };
}

const lines = (file: string): Record<string, unknown>[] => readFileSync(file, 'utf8').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Record<string, unknown>);

async function waitFor(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 100 && !cond(); i++) await new Promise((r) => setTimeout(r, 50));
  assert.ok(cond(), what);
}

test('logging settings round-trip over REST and gRPC, are checked, and change what is written', async (t) => {
  const sluice = await startTestSluice(t, ['--log-level', 'warn']);
  const port = sluice.ports.http;
  const grpc = connectGrpc(t, sluice.ports.grpc);
  const initial = await call(port, 'GET');
  assert.equal(initial.status, 200);
  assert.deepEqual(initial.json, { log_file: '', log_info: false, log_warning: true, log_error: true, log_verbose_level: 0, log_format: 'ISO8601' });
  const meta = await request(`http://127.0.0.1:${port}/v2`);
  assert.ok(((await meta.body.json()) as { extensions: string[] }).extensions.includes('logging'));

  const file = join(tempDir(t), 'sluice.log');
  const set = await call(port, 'POST', { log_file: file, log_info: true, log_verbose_level: 1 });
  assert.equal(set.status, 200);
  assert.deepEqual(set.json, { ...initial.json, log_file: file, log_info: true, log_verbose_level: 1 });
  const viaGrpc = await grpc.call('LogSettings', {});
  assert.deepEqual(viaGrpc['settings']['log_verbose_level'], { uint32_param: 1, parameter_choice: 'uint32_param' });
  assert.equal(viaGrpc['settings']['log_file']['string_param'], file);

  // Verbose 1: each request logs a debug line, to the file, with ISO timestamps.
  const infer = async (): Promise<void> => {
    const r = await request(`http://127.0.0.1:${port}/v2/models/simple/infer`, { method: 'POST', body: JSON.stringify(simpleRequest()), headers: { 'content-type': 'application/json' } });
    assert.equal(r.statusCode, 200);
    await r.body.dump();
  };
  await infer();
  await waitFor(() => lines(file).some((l) => l['msg'] === 'infer'), 'a debug line for the request reached the file');
  assert.ok(lines(file).every((l) => typeof l['time'] === 'string'), 'ISO 8601 timestamps');

  // Over gRPC: verbose off and the default format; the next request writes no line.
  const off = await grpc.call('LogSettings', { settings: { log_verbose_level: { uint32_param: 0 }, log_format: { string_param: 'default' } } });
  assert.equal(off['settings']['log_format']['string_param'], 'default');
  const before = lines(file).filter((l) => l['msg'] === 'infer').length;
  await infer();
  await call(port, 'POST', { log_format: 'default' });
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(lines(file).filter((l) => l['msg'] === 'infer').length, before, 'no debug line once verbose is 0');

  // Bad values are refused, naming the field, and change nothing.
  const now = (await call(port, 'GET')).json;
  for (const [body, why] of [[{ log_format: 'xml' }, /log_format.*must be one of default, ISO8601/], [{ log_info: 'yes' }, /log_info.*true or false/], [{ log_verbose_level: -1 }, /unsigned integer/], [{ log_file: 'relative.log' }, /absolute path/], [{ log_colour: true }, /'log_colour': is not a logging setting/], [{ log_file: '/nonexistent-dir/x.log' }, /cannot be opened for appending/]] as const) {
    const r = await call(port, 'POST', { log_info: false, ...body });
    assert.equal(r.status, 400, JSON.stringify(body));
    assert.match(String(r.json['error']), why);
  }
  assert.deepEqual((await call(port, 'GET')).json, now, 'a refused update changes nothing, not even its valid fields');
  await expectStatus(grpc.call('LogSettings', { settings: { log_info: { string_param: 'yes' } } }), status.INVALID_ARGUMENT, 'log_info');
  await call(port, 'POST', { log_file: '' });
});
