// The worker host's side of the sealed link: the shared token on every request (health included), the
// identity /health tells, and the flags that name the secrets.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { Pool } from 'undici';
import { startWorkerHost } from '../../src/worker/host.ts';
import type { WorkerHostOptions } from '../../src/worker/host-options.ts';
import { TokenCheck, UNAUTHENTICATED_CODE } from '../../src/worker/link-auth.ts';
import { parseWorkerArgs, readLinkSecrets } from '../../src/worker/main.ts';
import { FRAME_CONTENT_TYPE, WORKER_PATHS, decodeInferResponse, encodeInferRequest, type WorkerHealth } from '../../src/worker/protocol.ts';
import { SAMPLE_REPOSITORY, int32Values, simpleJob, tempDir, testLogger } from './helpers.ts';

const TOKEN = 'a7f3c9e1-link-token-0b5d';

async function startHost(t: TestContext, extra: Partial<WorkerHostOptions> = {}): Promise<{ pool: Pool; address: string }> {
  const host = await startWorkerHost({
    listen: '127.0.0.1:0', modelRepository: SAMPLE_REPOSITORY, id: 'w-sealed', device: 'cpu', deviceId: 0, cudaFallback: 'cpu',
    intraOpThreads: 1, memoryBudgetBytes: 1 << 30, logger: testLogger(), ...extra,
  });
  t.after(() => host.close());
  // The host may listen on 0.0.0.0: the test reaches it over loopback either way.
  const port = host.address.slice(host.address.lastIndexOf(':') + 1);
  const pool = new Pool(`http://127.0.0.1:${port}`);
  t.after(() => pool.close());
  return { pool, address: host.address };
}

interface Answer {
  readonly status: number;
  readonly text: string;
  readonly headers: Record<string, string | string[] | undefined>;
}

async function call(pool: Pool, method: 'GET' | 'POST', path: string, authorization?: string, body?: Buffer | string): Promise<Answer> {
  const headers: Record<string, string> = authorization === undefined ? {} : { authorization };
  if (body !== undefined) headers['content-type'] = typeof body === 'string' ? 'application/json' : FRAME_CONTENT_TYPE;
  const res = await pool.request({ method, path, headers, body: body ?? null });
  return { status: res.statusCode, text: await res.body.text(), headers: res.headers };
}

function assertRefused(a: Answer, reason: RegExp, presented?: string): void {
  assert.equal(a.status, 401, a.text);
  const json = JSON.parse(a.text) as { code: string; kind: string; message: string };
  assert.equal(json.code, UNAUTHENTICATED_CODE);
  assert.equal(json.kind, 'UNAUTHENTICATED');
  assert.match(json.message, reason);
  assert.equal(a.headers['www-authenticate'], 'Bearer realm="sluice-worker"');
  // Nothing about the host leaks, and neither the host's token nor the one presented is echoed.
  assert.ok(!a.text.includes(TOKEN), 'the host token is not in the answer');
  if (presented !== undefined) assert.ok(!a.text.includes(presented), 'the presented token is not echoed');
  assert.ok(!/w-sealed|pid|models/.test(a.text), `no detail of the host in ${a.text}`);
}

void test('a host with a token refuses every request without it (401), health included, and serves with it', async (t) => {
  const { pool } = await startHost(t, { token: TOKEN });
  const frame = Buffer.concat(encodeInferRequest(simpleJob(2).job));
  const ref = JSON.stringify({ model: 'simple', version: '1' });

  for (const [method, path, body] of [['GET', WORKER_PATHS.health, undefined], ['POST', WORKER_PATHS.infer, frame], ['POST', WORKER_PATHS.load, ref], ['POST', WORKER_PATHS.unload, ref], ['GET', '/nope', undefined]] as const) {
    assertRefused(await call(pool, method, path, undefined, body), /no Authorization header.*Bearer/);
  }
  assertRefused(await call(pool, 'GET', WORKER_PATHS.health, 'Bearer guessed-token'), /not this worker host's token/, 'guessed-token');
  assertRefused(await call(pool, 'POST', WORKER_PATHS.infer, 'Bearer guessed-token', frame), /not this worker host's token/, 'guessed-token');
  // A prefix, an extension and a different scheme of the right token are all wrong.
  assertRefused(await call(pool, 'GET', WORKER_PATHS.health, `Bearer ${TOKEN.slice(0, -1)}`), /not this worker host's token/);
  assertRefused(await call(pool, 'GET', WORKER_PATHS.health, `Bearer ${TOKEN}x`), /not this worker host's token/);
  assertRefused(await call(pool, 'GET', WORKER_PATHS.health, `Basic ${Buffer.from(`gw:${TOKEN}`).toString('base64')}`), /not a Bearer token/);
  assertRefused(await call(pool, 'GET', WORKER_PATHS.health, TOKEN), /not a Bearer token/);

  const auth = `Bearer ${TOKEN}`;
  const h = await call(pool, 'GET', WORKER_PATHS.health, auth);
  assert.equal(h.status, 200, h.text);
  const health = JSON.parse(h.text) as WorkerHealth;
  assert.deepEqual([health.id, health.pid], ['w-sealed', process.pid], 'an authenticated peer is told who the host is');
  const res = await pool.request({ method: 'POST', path: WORKER_PATHS.infer, headers: { authorization: auth, 'content-type': FRAME_CONTENT_TYPE }, body: frame });
  assert.equal(res.statusCode, 200);
  const result = decodeInferResponse(Buffer.from(await res.body.arrayBuffer()));
  assert.deepEqual(int32Values(result.outputs[0]!.data), simpleJob(2).input0.map((x) => x + 1));
  assert.equal((await call(pool, 'POST', WORKER_PATHS.load, auth, ref)).status, 200);
  // The scheme is case-insensitive (RFC 9110) and surrounding blanks do not matter.
  assert.equal((await call(pool, 'GET', WORKER_PATHS.health, `bearer   ${TOKEN} `)).status, 200);
});

void test('TokenCheck compares digests: any length, never the raw token', () => {
  const check = new TokenCheck('short');
  assert.equal(check.refusal('Bearer short'), undefined);
  for (const wrong of ['Bearer shor', 'Bearer shortt', `Bearer ${'x'.repeat(10_000)}`, 'Bearer SHORT']) assert.match(check.refusal(wrong) ?? '', /not this worker host's token/);
  assert.match(check.refusal(undefined) ?? '', /no Authorization header/);
  assert.match(check.refusal('') ?? '', /no Authorization header/);
  assert.match(check.refusal('Bearer') ?? '', /not a Bearer token/);
  assert.throws(() => new TokenCheck(''), /must not be empty/);
  // While a token rotates, a host holds two: either is accepted, nothing else.
  const both = new TokenCheck(['new-token', 'old-token']);
  assert.equal(both.refusal('Bearer new-token'), undefined);
  assert.equal(both.refusal('Bearer old-token'), undefined);
  assert.match(both.refusal('Bearer other') ?? '', /not this worker host's token/);
  assert.throws(() => new TokenCheck([]), /must not be empty/);
});

void test('/health names the host (id = hostname-pid by default, pid) only to authenticated or local peers', async (t) => {
  const open = await startHost(t, { listen: '0.0.0.0:0' });
  const anonymous = JSON.parse((await call(open.pool, 'GET', WORKER_PATHS.health)).text) as WorkerHealth;
  assert.equal(anonymous.id, undefined);
  assert.equal(anonymous.pid, undefined);
  assert.ok(!JSON.stringify(anonymous).includes('w-sealed'));
  assert.equal(anonymous.memoryBudgetBytes, 1 << 30, 'what the gateway needs is still answered');

  const loopback = await startHost(t);
  assert.equal((JSON.parse((await call(loopback.pool, 'GET', WORKER_PATHS.health)).text) as WorkerHealth).pid, process.pid);
  const sealed = await startHost(t, { listen: '0.0.0.0:0', token: TOKEN });
  assert.equal((JSON.parse((await call(sealed.pool, 'GET', WORKER_PATHS.health, `Bearer ${TOKEN}`)).text) as WorkerHealth).id, 'w-sealed');
});

void test('sluice worker: --token-file or SLUICE_WORKER_TOKEN_FILE, trimmed; a missing or empty file is a clear error', (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'token');
  writeFileSync(file, `  ${TOKEN}\n`);
  const other = join(dir, 'other');
  writeFileSync(other, 'from-the-flag\n');
  assert.equal(parseWorkerArgs([], { SLUICE_WORKER_TOKEN_FILE: file }).link.tokenFile, file);
  assert.equal(parseWorkerArgs(['--token-file', other], { SLUICE_WORKER_TOKEN_FILE: file }).link.tokenFile, other, 'the flag wins');
  assert.equal(parseWorkerArgs([], {}).link.tokenFile, undefined);
  assert.deepEqual(readLinkSecrets(parseWorkerArgs([], { SLUICE_WORKER_TOKEN_FILE: file }).link), { token: [TOKEN] });
  assert.deepEqual(readLinkSecrets(parseWorkerArgs([], {}).link), {});

  const empty = join(dir, 'empty');
  writeFileSync(empty, ' \n\n');
  assert.throws(() => readLinkSecrets(parseWorkerArgs(['--token-file', empty], {}).link), /--token-file: token file .*empty is empty/);
  assert.throws(() => readLinkSecrets(parseWorkerArgs(['--token-file', join(dir, 'missing')], {}).link), /--token-file: cannot read token file .*missing: ENOENT/);
  const twoLines = join(dir, 'two');
  writeFileSync(twoLines, 'one\n\n two \n');
  assert.deepEqual(readLinkSecrets(parseWorkerArgs(['--token-file', twoLines], {}).link), { token: ['one', 'two'] }, 'a host accepts every line while a token rotates');
  const control = join(dir, 'control');
  writeFileSync(control, 'one\u0007two\n');
  assert.throws(() => readLinkSecrets(parseWorkerArgs(['--token-file', control], {}).link), /control character/);

  assert.throws(() => parseWorkerArgs(['--tls-cert', 'c.pem'], {}), /--tls-cert and --tls-key must be given together/);
  assert.throws(() => parseWorkerArgs(['--tls-ca', 'ca.pem'], {}), /--tls-ca .* needs --tls-cert/);
  assert.throws(() => readLinkSecrets(parseWorkerArgs(['--tls-cert', join(dir, 'c.pem'), '--tls-key', join(dir, 'k.pem')], {}).link), /--tls-cert: cannot read .*c\.pem: ENOENT/);
});
