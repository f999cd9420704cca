// Triton's generate extension on models that are not generative: request keys are input tensors (shaped
// as Triton shapes them), other keys request parameters, the answer's keys the outputs; generate_stream
// on a decoupled model answers one event per response.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { request } from 'undici';
import { generateShape } from '../../src/frontdoor/http/generate-mapping.ts';
import { startTestSluice } from '../helpers/sluice.ts';

async function post(port: number, path: string, body: unknown): Promise<{ status: number; type: string; text: string }> {
  const r = await request(`http://127.0.0.1:${port}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: r.statusCode, type: String(r.headers['content-type']), text: await r.body.text() };
}

test("Triton's shaping of a generate value: fixed dimensions divide the count, the innermost variable one takes the rest", () => {
  assert.deepEqual(generateShape('x', [-1, 16], 16), [1, 16]);
  assert.deepEqual(generateShape('x', [-1, 16], 32), [2, 16]);
  assert.deepEqual(generateShape('x', [-1, -1], 5), [1, 5]);
  assert.deepEqual(generateShape('x', [-1], 1), [1]);
  assert.deepEqual(generateShape('x', [2, -1, 3], 12), [2, 2, 3]);
  assert.throws(() => generateShape('x', [-1, 16], 15), /cannot be shaped as \[-1, 16\]/);
  assert.throws(() => generateShape('x', [4], 3), /cannot be shaped as \[4\]/);
});

test('generate on simple: inputs by name, outputs by name; errors name the input; generate_stream answers one event', async (t) => {
  const s = await startTestSluice(t, ['--model-control-mode', 'explicit', '--load-model', 'simple', '--load-model', 'simple_string', '--load-model', 'repeat_int32']);
  const port = s.ports.http;
  const a = Array.from({ length: 16 }, (_, i) => i);
  const b = a.map(() => 3);
  const r = await post(port, '/v2/models/simple/generate', { id: 'g1', INPUT0: a, parameters: { INPUT1: b, priority: 0, stream: false } });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(JSON.parse(r.text), { id: 'g1', model_name: 'simple', model_version: '1', OUTPUT0: a.map((x) => x + 3), OUTPUT1: a.map((x) => x - 3) });

  const strings = await post(port, '/v2/models/simple_string/generate', { INPUT0: a.map(String), INPUT1: b.map(String) });
  assert.equal(strings.status, 200, strings.text);
  assert.deepEqual((JSON.parse(strings.text) as { OUTPUT0: string[] }).OUTPUT0, a.map((x) => String(x + 3)), 'BYTES as strings');

  const short = await post(port, '/v2/models/simple/generate', { INPUT0: a.slice(1), INPUT1: b });
  assert.equal(short.status, 400);
  assert.match(short.text, /INPUT0.*15 element\(s\) cannot be shaped as \[-1, 16\]/);
  const twice = await post(port, '/v2/models/simple/generate', { INPUT0: a, INPUT1: b, parameters: { INPUT1: b } });
  assert.equal(twice.status, 400);
  assert.match(twice.text, /'INPUT1' is given twice/);
  const nested = await post(port, '/v2/models/simple/generate', { INPUT0: [a], INPUT1: b });
  assert.equal(nested.status, 400);
  assert.match(nested.text, /'INPUT0' must be a JSON scalar or a flat array/);
  const badValue = await post(port, '/v2/models/simple/generate', { INPUT0: a.map(() => 'x'), INPUT1: b });
  assert.equal(badValue.status, 400);
  assert.match(badValue.text, /INPUT0/);
  const badParam = await post(port, '/v2/models/simple/generate', { INPUT0: a, INPUT1: b, priority: -1 });
  assert.equal(badParam.status, 400);
  assert.match(badParam.text, /priority/);

  const one = await post(port, '/v2/models/simple/generate_stream', { INPUT0: a, INPUT1: b });
  assert.equal(one.status, 200);
  assert.match(one.type, /^text\/event-stream/);
  const events = one.text.split('\n\n').filter((e) => e.startsWith('data: ')).map((e) => JSON.parse(e.slice(6)) as Record<string, unknown>);
  assert.equal(events.length, 1);
  assert.deepEqual(events[0]!['OUTPUT0'], a.map((x) => x + 3));

  // A decoupled model: one event per response, each output a scalar; /generate refuses it.
  const rep = await post(port, '/v2/models/repeat_int32/generate_stream', { IN: [7, 8, 9], DELAY: [0, 0, 0], WAIT: 0 });
  assert.equal(rep.status, 200, rep.text);
  const reps = rep.text.split('\n\n').filter((e) => e.startsWith('data: ')).map((e) => JSON.parse(e.slice(6)) as Record<string, unknown>);
  assert.deepEqual(reps.map((e) => [e['OUT'], e['IDX']]), [[7, 0], [8, 1], [9, 2]]);
  const refused = await post(port, '/v2/models/repeat_int32/generate', { IN: [7], DELAY: [0], WAIT: 0 });
  assert.equal(refused.status, 501, refused.text);
  assert.match(refused.text, /decoupled/);
});
