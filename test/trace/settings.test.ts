import assert from 'node:assert/strict';
import { test } from 'node:test';
import { status } from '@grpc/grpc-js';
import { connectGrpc, expectStatus, type Reply } from '../grpc/client.ts';
import { startTestSluice } from '../helpers/sluice.ts';
import { h1Client } from '../http/client.ts';

/** Triton's defaults for a server started without trace flags. */
const DEFAULTS = { trace_level: ['OFF'], trace_rate: '1000', trace_count: '-1', log_frequency: '0', trace_file: '', trace_mode: 'triton' };

/** A gRPC TraceSetting reply's map as plain values: lists of strings per setting. */
function grpcSettings(reply: Reply): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const [k, v] of Object.entries(reply['settings'] as Record<string, { value: string[] }>)) out[k] = v.value;
  return out;
}

test('trace settings over REST and gRPC, with Triton field names, defaults, overrides and errors', { timeout: 60_000 }, async (t) => {
  const sluice = await startTestSluice(t);
  const http = h1Client(`http://127.0.0.1:${sluice.ports.http}`);
  t.after(() => http.close());
  const grpc = connectGrpc(t, sluice.ports.grpc);
  const post = (path: string, body: unknown) => http.call('POST', path, { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } });

  await t.test('GET answers the global defaults, and a model without overrides the same', async () => {
    const g = await http.call('GET', '/v2/trace/setting');
    assert.equal(g.status, 200);
    assert.deepEqual(g.json(), DEFAULTS);
    const m = await http.call('GET', '/v2/models/simple/trace/setting');
    assert.deepEqual(m.json(), DEFAULTS);
    assert.deepEqual(grpcSettings(await grpc.call('TraceSetting', {})), Object.fromEntries(Object.entries(DEFAULTS).map(([k, v]) => [k, Array.isArray(v) ? v : [v]])));
  });

  await t.test('a per-model override applies to that model only, and null clears it back to the global value', async () => {
    const set = await post('/v2/models/simple/trace/setting', { trace_level: ['TIMESTAMPS'], trace_rate: '7' });
    assert.equal(set.status, 200, set.text());
    assert.deepEqual(set.json(), { ...DEFAULTS, trace_level: ['TIMESTAMPS'], trace_rate: '7' });
    assert.deepEqual((await http.call('GET', '/v2/trace/setting')).json(), DEFAULTS, 'the global settings are untouched');
    assert.deepEqual((await http.call('GET', '/v2/models/identity/trace/setting')).json(), DEFAULTS, 'other models follow the global settings');
    // A global change reaches the fields simple does not override, not the ones it does.
    const global = await post('/v2/trace/setting', { trace_rate: '50', log_frequency: '3' });
    assert.deepEqual(global.json(), { ...DEFAULTS, trace_rate: '50', log_frequency: '3' });
    assert.deepEqual((await http.call('GET', '/v2/models/simple/trace/setting')).json(), { ...DEFAULTS, trace_level: ['TIMESTAMPS'], trace_rate: '7', log_frequency: '3' });
    const cleared = await post('/v2/models/simple/trace/setting', { trace_rate: null });
    assert.deepEqual(cleared.json(), { ...DEFAULTS, trace_level: ['TIMESTAMPS'], trace_rate: '50', log_frequency: '3' });
    // gRPC sees the same state; an empty value list clears like null.
    const viaGrpc = grpcSettings(await grpc.call('TraceSetting', { model_name: 'simple', settings: { trace_level: { value: [] } } }));
    assert.deepEqual(viaGrpc['trace_level'], ['OFF']);
    assert.deepEqual(viaGrpc['trace_rate'], ['50']);
    // Globally, null restores the value the server started with.
    assert.deepEqual((await post('/v2/trace/setting', { trace_rate: null, log_frequency: null })).json(), DEFAULTS);
  });

  await t.test('gRPC updates the global settings and a model override', async () => {
    const g = grpcSettings(await grpc.call('TraceSetting', { settings: { trace_count: { value: ['5'] }, trace_level: { value: ['TIMESTAMPS', 'TENSORS'] } } }));
    assert.deepEqual(g['trace_count'], ['5']);
    assert.deepEqual(g['trace_level'], ['TIMESTAMPS', 'TENSORS']);
    assert.deepEqual((await http.call('GET', '/v2/trace/setting')).json()['trace_count'], '5');
    const m = grpcSettings(await grpc.call('TraceSetting', { model_name: 'identity', settings: { trace_rate: { value: ['3'] } } }));
    assert.deepEqual(m['trace_rate'], ['3']);
    assert.deepEqual(m['trace_count'], ['5']);
    assert.equal((await http.call('GET', '/v2/models/identity/trace/setting')).json()['trace_rate'], '3');
    await grpc.call('TraceSetting', { settings: { trace_count: { value: [] }, trace_level: { value: [] } } });
    await grpc.call('TraceSetting', { model_name: 'identity', settings: { trace_rate: { value: [] } } });
    assert.deepEqual((await http.call('GET', '/v2/models/identity/trace/setting')).json(), DEFAULTS);
  });

  await t.test('invalid values answer 400 / INVALID_ARGUMENT naming the field, and change nothing', async () => {
    const bad: [Record<string, unknown>, string, RegExp][] = [
      [{ trace_rate: 'often' }, 'trace_rate', /'often' is not an integer/],
      [{ trace_rate: '0' }, 'trace_rate', /outside 1\.\./],
      [{ trace_count: '-2' }, 'trace_count', /outside -1\.\./],
      [{ log_frequency: '-1' }, 'log_frequency', /outside 0\.\./],
      [{ trace_level: ['LOUD'] }, 'trace_level', /'LOUD' is not one of OFF, TIMESTAMPS, TENSORS/],
      [{ trace_level: ['OFF', 'TIMESTAMPS'] }, 'trace_level', /only 'OFF'/],
      [{ trace_level: { on: true } }, 'trace_level', /expected a string or a list/],
      [{ trace_rates: '5' }, 'trace_rates', /unknown setting/],
    ];
    for (const [body, field, message] of bad) {
      const res = await post('/v2/trace/setting', { trace_count: '9', ...body });
      assert.equal(res.status, 400, `${JSON.stringify(body)}: ${res.text()}`);
      assert.match(res.json().error, new RegExp(`invalid trace setting '${field}'`));
      assert.match(res.json().error, message);
    }
    assert.deepEqual((await http.call('GET', '/v2/trace/setting')).json(), DEFAULTS, 'a refused update changes no field');
    await expectStatus(grpc.call('TraceSetting', { settings: { trace_rate: { value: ['x'] } } }), status.INVALID_ARGUMENT, "'trace_rate'", 'not an integer');
    await expectStatus(grpc.call('TraceSetting', { settings: { trace_rate: { value: ['1', '2'] } } }), status.INVALID_ARGUMENT, "'trace_rate'", 'one value');
  });

  await t.test('trace_file and trace_mode cannot change over the network; unknown models are not found', async () => {
    const file = await post('/v2/trace/setting', { trace_file: '/etc/passwd' });
    assert.equal(file.status, 501);
    assert.match(file.json().error, /trace_file/);
    await expectStatus(grpc.call('TraceSetting', { settings: { trace_mode: { value: ['opentelemetry'] } } }), status.UNIMPLEMENTED, 'trace_mode');
    assert.equal((await http.call('GET', '/v2/models/nope/trace/setting')).status, 404);
    assert.equal((await post('/v2/models/nope/trace/setting', { trace_rate: '1' })).status, 404);
    await expectStatus(grpc.call('TraceSetting', { model_name: 'nope' }), status.NOT_FOUND, "'nope'");
    await expectStatus(grpc.call('TraceSetting', { model_name: '../simple' }), status.INVALID_ARGUMENT, '../simple');
  });
});
