// Keys, scopes, rate limits and tenant metrics over REST and the metrics port, against a whole sluice
// started with an auth config file.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { request } from 'undici';
import { startTestSluice } from '../helpers/sluice.ts';
import { simpleRequest } from '../http/client.ts';
import { bearer, keys, replaceFile, tempDir, type TestKey } from './fixture.ts';

const K = keys('infer', 'mlpOnly', 'meta', 'control', 'metrics', 'limited', 'rows', 'bystander', 'narrow');

function authFile(dir: string, tenants: readonly object[]): string {
  const file = join(dir, 'auth.json');
  writeFileSync(file, JSON.stringify({ tenants }));
  return file;
}

const TENANTS = [
  { name: 'team-a', keys: [{ id: 'a-infer', sha256: K.infer.sha256, scopes: ['infer'] }, { id: 'a-mlp', sha256: K.mlpOnly.sha256, scopes: ['infer:ml?', 'infer:simple_*'] }] },
  { name: 'viewer', keys: [{ sha256: K.meta.sha256, scopes: ['metadata'] }] },
  { name: 'ops', keys: [{ sha256: K.control.sha256, scopes: ['control', 'metadata'] }, { sha256: K.metrics.sha256, scopes: ['metrics'] }] },
  { name: 'limited', limits: { requests_per_second: 0.5, requests_burst: 2 }, keys: [{ sha256: K.limited.sha256, scopes: ['infer'] }] },
  { name: 'rowcapped', limits: { rows_per_second: 0.5, rows_burst: 4 }, keys: [{ sha256: K.rows.sha256, scopes: ['infer'] }] },
  { name: 'bystander', keys: [{ sha256: K.bystander.sha256, scopes: ['infer'] }] },
];

interface Res {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
}

async function call(port: number, method: 'GET' | 'POST', path: string, key?: TestKey, body?: unknown, raw?: string): Promise<Res> {
  const headers: Record<string, string> = { 'content-type': 'application/json', ...(key ? bearer(key) : {}) };
  if (raw !== undefined) headers['authorization'] = raw;
  const res = await request(`http://127.0.0.1:${port}${path}`, { method, headers, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
  return { status: res.statusCode, headers: res.headers, text: await res.body.text() };
}

function infer(port: number, key: TestKey | undefined, model = 'simple', body: unknown = simpleRequest()): Promise<Res> {
  return call(port, 'POST', `/v2/models/${model}/infer`, key, body);
}

const MLP_BODY = { inputs: [{ name: 'INPUT0', datatype: 'FP32', shape: [1, 784], data: new Array<number>(784).fill(0.5) }] };

async function start(t: TestContext, tenants: readonly object[] = TENANTS, flags: string[] = []): Promise<{ port: number; metricsPort: number; file: string }> {
  const file = authFile(tempDir(t), tenants);
  const s = await startTestSluice(t, ['--auth-config', file, '--model-control-mode', 'explicit', '--load-model', 'simple', '--load-model', 'mlp', ...flags]);
  return { port: s.ports.http, metricsPort: s.ports.metrics, file };
}

test('REST: no key, a malformed or unknown key, a wrong scope and a right one; health stays open; no answer repeats the key', async (t) => {
  const { port } = await start(t);
  const none = await infer(port, undefined);
  assert.equal(none.status, 401);
  assert.match(none.text, /requires an API key: send the header 'Authorization: Bearer <key>'/);
  assert.equal(none.headers['www-authenticate'], 'Bearer realm="sluice"');
  const basic = await call(port, 'POST', '/v2/models/simple/infer', undefined, simpleRequest(), 'Basic dXNlcjpwYXNz');
  assert.equal(basic.status, 401);
  assert.match(basic.text, /use 'Bearer <key>'/);
  const forged = `${K.infer.key}x`;
  const unknown = await call(port, 'POST', '/v2/models/simple/infer', undefined, simpleRequest(), `Bearer ${forged}`);
  assert.equal(unknown.status, 401);
  assert.match(unknown.text, /not valid: it is unknown to this server or was revoked/);
  assert.ok(!unknown.text.includes(forged) && !unknown.text.includes(K.infer.key.slice(3, 20)), 'the key is never echoed');

  assert.equal((await infer(port, K.infer)).status, 200, 'infer scope, any model');
  assert.equal((await infer(port, K.infer, 'mlp', MLP_BODY)).status, 200);
  const denied = await infer(port, K.meta);
  assert.equal(denied.status, 403);
  assert.match(denied.text, /the key of tenant 'viewer' lacks the scope 'infer:simple' needed to infer on model 'simple'/);

  for (const path of ['/v2/health/live', '/v2/health/ready', '/v2/models/simple/ready', '/v2/models/simple/versions/1/ready']) {
    assert.equal((await call(port, 'GET', path)).status, 200, `${path} is open for probes`);
  }
  for (const path of ['/v2', '/v2/models/simple', '/v2/models/simple/config', '/v2/models/stats', '/v2/models/simple/stats', '/v2/trace/setting']) {
    assert.equal((await call(port, 'GET', path)).status, 401, `${path} needs a key`);
    assert.equal((await call(port, 'GET', path, K.infer)).status, 403, `${path} needs metadata, not infer`);
    assert.equal((await call(port, 'GET', path, K.meta)).status, 200, `${path} with metadata`);
  }
  assert.equal((await call(port, 'POST', '/v2/repository/index', K.meta, {})).status, 200);
  assert.equal((await call(port, 'GET', '/v2/no/such/route')).status, 401, 'an unknown path needs a key too');
  assert.equal((await call(port, 'GET', '/v2/no/such/route', K.meta)).status, 404);
});

test('REST: infer globs pick models; the control API refuses infer-only and metadata keys', async (t) => {
  const { port } = await start(t);
  assert.equal((await infer(port, K.mlpOnly, 'mlp', MLP_BODY)).status, 200, 'ml? matches mlp');
  const cnn = await infer(port, K.mlpOnly, 'simple');
  assert.equal(cnn.status, 403, 'simple_* does not match simple');
  assert.match(cnn.text, /lacks the scope 'infer:simple'/);
  for (const key of [K.infer, K.meta, K.mlpOnly]) {
    const r = await call(port, 'POST', '/v2/repository/models/simple/unload', key, {});
    assert.equal(r.status, 403);
    assert.match(r.text, /lacks the scope 'control' needed to load or unload models/);
    assert.equal((await call(port, 'POST', '/v2/trace/setting', key, { trace_rate: '5' })).status, 403);
  }
  assert.equal((await infer(port, K.infer)).status, 200, 'simple still loaded');
  assert.equal((await call(port, 'POST', '/v2/repository/models/simple/unload', K.control, {})).status, 200);
  assert.equal((await infer(port, K.infer)).status, 503, 'unloaded by the control key');
  assert.equal((await call(port, 'POST', '/v2/repository/models/simple/load', K.control, {})).status, 200);
  assert.equal((await infer(port, K.infer)).status, 200);
});

test('rate limits: a tenant past its bucket gets 429 with Retry-After; other tenants are unaffected; tenant metrics count it', async (t) => {
  const { port, metricsPort } = await start(t);
  assert.equal((await infer(port, K.limited)).status, 200);
  assert.equal((await infer(port, K.limited)).status, 200);
  const over = await infer(port, K.limited);
  assert.equal(over.status, 429);
  assert.match(over.text, /tenant 'limited' is over its rate limit of 0.5 requests\/s \(burst 2\); retry after \d+ s/);
  assert.ok(Number(over.headers['retry-after']) >= 1, `Retry-After ${String(over.headers['retry-after'])}`);
  const others = await Promise.all(Array.from({ length: 10 }, () => infer(port, K.bystander)));
  assert.deepEqual(others.map((r) => r.status), new Array(10).fill(200), 'the bystander tenant has no limit and no share of the other one');

  // Rows: a 3-row request passes on a full bucket of 4; the next 3 rows do not; the refusal comes after decode.
  const three = simpleRequest();
  const rows3 = { ...three, inputs: (three['inputs'] as { name: string; datatype: string; shape: number[]; data: number[] }[]).map((i) => ({ ...i, shape: [3, 16], data: [...i.data, ...i.data, ...i.data] })) };
  assert.equal((await infer(port, K.rows, 'simple', rows3)).status, 200);
  const rowsOver = await infer(port, K.rows, 'simple', rows3);
  assert.equal(rowsOver.status, 429);
  assert.match(rowsOver.text, /0.5 rows\/s \(burst 4\)/);
  const refusedEarly = await infer(port, K.rows, 'simple', rows3);
  assert.equal(refusedEarly.status, 429, 'with the rows spent, the next request is refused before its body is read');

  assert.equal((await infer(port, K.meta)).status, 403);
  assert.equal((await infer(port, undefined)).status, 401);
  const noKey = await request(`http://127.0.0.1:${metricsPort}/metrics`);
  assert.equal(noKey.statusCode, 401);
  await noKey.body.dump();
  const wrong = await request(`http://127.0.0.1:${metricsPort}/metrics`, { headers: bearer(K.infer) });
  assert.equal(wrong.statusCode, 403);
  await wrong.body.dump();
  const scrape = await request(`http://127.0.0.1:${metricsPort}/metrics`, { headers: bearer(K.metrics) });
  assert.equal(scrape.statusCode, 200);
  const text = await scrape.body.text();
  const value = (line: string): number => Number(new RegExp(`^${line.replace(/[{}"]/g, '\\$&')} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
  assert.equal(value('sluice_tenant_requests_total{tenant="limited",status="success"}'), 2);
  assert.equal(value('sluice_tenant_requests_total{tenant="limited",status="rate_limited"}'), 1);
  assert.equal(value('sluice_tenant_shed_total{tenant="limited",reason="rate_limited"}'), 1);
  assert.equal(value('sluice_tenant_shed_total{tenant="rowcapped",reason="rate_limited"}'), 2);
  assert.equal(value('sluice_tenant_rows_total{tenant="rowcapped"}'), 3);
  assert.equal(value('sluice_tenant_requests_total{tenant="bystander",status="success"}'), 10);
  assert.equal(value('sluice_tenant_rows_total{tenant="viewer"}'), 0, 'every configured tenant exists at 0');
  assert.equal(value('sluice_tenant_requests_total{tenant="viewer",status="denied"}'), 1, 'a valid key without the scope counts under its tenant');
  assert.equal(value('sluice_requests_total{model="simple",protocol="http",status="denied"}'), 2, 'refused inferences are counted like any other outcome');
  assert.equal(value('sluice_requests_total{model="simple",protocol="http",status="rate_limited"}'), 3);
  assert.ok(value('sluice_tenant_request_duration_seconds_count{tenant="bystander"}') === 10);
  const labels = new Set([...text.matchAll(/tenant="([^"]*)"/g)].map((m) => m[1]));
  assert.deepEqual([...labels].sort(), TENANTS.map((x) => x.name).sort(), 'only configured tenants become labels');
});

test('max_in_flight: a tenant with that many requests unanswered gets 429 at once; others are served; an answer frees a place', async (t) => {
  const tenants = [...TENANTS, { name: 'narrow', limits: { max_in_flight: 2 }, keys: [{ sha256: K.narrow.sha256, scopes: ['infer'] }] }];
  const file = authFile(tempDir(t), tenants);
  const s = await startTestSluice(t, ['--auth-config', file, '--model-control-mode', 'explicit', '--load-model', 'simple']);
  const port = s.ports.http;
  // Requests wait in the queue up to 1.5 s for a batch of 32: long enough to be in flight together.
  const slow = JSON.stringify({ name: 'simple', max_batch_size: 32, dynamic_batching: { preferred_batch_size: [32], max_queue_delay_microseconds: 1_500_000 } });
  assert.equal((await call(port, 'POST', '/v2/repository/models/simple/load', K.control, { parameters: { config: slow } })).status, 200);
  const depth = (): number => [...(s.metrics.sources.queueDepth?.() ?? [])].find(([m]) => m === 'simple')?.[1] ?? 0;
  const held = [infer(port, K.narrow), infer(port, K.narrow)];
  for (let i = 0; i < 400 && depth() < 2; i++) await new Promise((r) => setTimeout(r, 5));
  assert.equal(depth(), 2, 'both requests of the tenant are queued');
  const third = await infer(port, K.narrow);
  assert.equal(third.status, 429, third.text);
  assert.match(third.text, /tenant 'narrow' already has 2 requests in flight.*max_in_flight.*SLUICE_TENANT_IN_FLIGHT_LIMIT/);
  assert.equal(third.headers['retry-after'], '1');
  const other = infer(port, K.bystander);
  assert.deepEqual((await Promise.all([...held, other])).map((r) => r.status), [200, 200, 200], 'the held ones and another tenant are served');
  const again = infer(port, K.narrow);
  assert.equal((await again).status, 200, 'answered requests free their places');
});

test('key rotation by file change while requests flow: zero failures for the key that stays; the removed key stops, the new one starts', async (t) => {
  const { port, file } = await start(t);
  let stop = false;
  const statuses: number[] = [];
  const loops = Array.from({ length: 3 }, async () => {
    while (!stop) statuses.push((await infer(port, K.infer)).status);
  });
  const fresh = keys('fresh').fresh;
  assert.equal((await infer(port, K.bystander)).status, 200);
  assert.equal((await infer(port, fresh)).status, 401);
  const rotated = TENANTS.map((x) => (x.name === 'bystander' ? { ...x, keys: [{ sha256: fresh.sha256, scopes: ['infer'] }] } : x));
  replaceFile(file, JSON.stringify({ tenants: rotated }));
  const deadline = Date.now() + 10_000;
  while ((await infer(port, fresh)).status !== 200) {
    assert.ok(Date.now() < deadline, 'the new key was not picked up within 10 s');
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.equal((await infer(port, K.bystander)).status, 401, 'the replaced key is revoked');
  // A broken file is refused and the keys in force stay in force.
  replaceFile(file, '{ "tenants": [ { "name": "x" ');
  await new Promise((r) => setTimeout(r, 2_500));
  assert.equal((await infer(port, fresh)).status, 200, 'a broken config does not open or close the server');
  stop = true;
  await Promise.all(loops);
  assert.ok(statuses.length > 20, `requests flowed (${statuses.length})`);
  assert.deepEqual([...new Set(statuses)], [200], 'the key that stayed never failed');
});

test('a bad auth config stops the start with where and why', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'auth.yaml');
  writeFileSync(file, 'tenants:\n  - name: a\n    keys: [{ sha256: nothex, scopes: [infer] }]\n');
  await assert.rejects(startTestSluice(t, ['--auth-config', file]), /auth config tenants\[0\]\.keys\[0\]\.sha256: must be the key's SHA-256/);
  await assert.rejects(startTestSluice(t, ['--auth-config', join(dir, 'missing.yaml')]), /auth config .*missing\.yaml: cannot be read/);
});
