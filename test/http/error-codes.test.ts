// Every REST error answer carries the catalog's stable code, in the body beside `error` and in the
// sluice-error-code header, and its status is the one the code's kind maps to (one table); the
// worker protocol answers the same status for every kind.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { request } from 'undici';
import { errorCatalog, SluiceError } from '../../src/core/errors.ts';
import { httpStatusOf } from '../../src/core/http-status.ts';
import { httpStatusOfError } from '../../src/frontdoor/http/status.ts';
import { workerStatusOf } from '../../src/worker/protocol.ts';
import { startTestSluice } from '../helpers/sluice.ts';
import { simpleRequest } from './client.ts';

test('REST error answers carry their code in the body and a header, with the status of its kind', async (t) => {
  const sluice = await startTestSluice(t);
  const base = `http://127.0.0.1:${sluice.ports.http}`;
  const cases: [string, string, unknown, string][] = [
    ['POST', '/v2/models/nope/infer', simpleRequest(), 'SLUICE_MODEL_NOT_FOUND'],
    ['POST', '/v2/models/simple/infer', '{"inputs": [', 'SLUICE_MALFORMED_BODY'],
    ['POST', '/v2/models/simple/infer', { inputs: [{ name: 'INPUT0', datatype: 'INT32', shape: [1, 16], data: new Array(16).fill(1) }] }, 'SLUICE_MISSING_INPUT'],
    ['GET', '/v2/models/simple/versions/x', undefined, 'SLUICE_INVALID_VERSION'],
    ['GET', '/v2/no/such/route', undefined, 'SLUICE_NO_ROUTE'],
    ['POST', '/v2/repository/models/simple/unload', {}, 'SLUICE_MODEL_CONTROL_DISABLED'],
  ];
  const catalog = errorCatalog();
  for (const [method, path, body, code] of cases) {
    const res = await request(`${base}${path}`, { method, headers: { 'content-type': 'application/json' }, ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }) });
    const json = (await res.body.json()) as { error?: unknown; code?: unknown };
    assert.equal(json.code, code, `${method} ${path}: ${JSON.stringify(json)}`);
    assert.equal(res.headers['sluice-error-code'], code);
    assert.equal(typeof json.error, 'string');
    const kind = catalog.get(code);
    assert.ok(kind, `${code} is in the catalog`);
    assert.equal(res.statusCode, httpStatusOfError(new SluiceError(code, kind, '')), `${code}: status of its kind`);
  }
});

test('the worker protocol and the REST front door answer one status per kind', () => {
  for (const kind of new Set(errorCatalog().values())) assert.equal(workerStatusOf(kind), httpStatusOf(kind), kind);
  assert.equal(workerStatusOf('RESOURCE_EXHAUSTED'), 503, 'a full queue is 503 on every HTTP door');
});
