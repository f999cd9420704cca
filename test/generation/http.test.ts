// The generate extension over REST against a whole sluice: JSON and server-sent events give the
// reference's tokens, bad requests get 4xx naming what was wrong, a client that goes away mid-stream
// frees its sequence, and the generation metrics are exported.
import assert from 'node:assert/strict';
import http from 'node:http';
import { test } from 'node:test';
import { decodeAscii, encodeAscii } from '../../src/generation/tokenizer.ts';
import { startTestSluice } from '../helpers/sluice.ts';
import { TinyLmReference } from './reference.ts';

const reference = new TinyLmReference();
const flags = ['--model-control-mode', 'explicit', '--load-model', 'tiny_lm', '--load-model', 'simple'];

async function post(port: number, path: string, body: unknown): Promise<{ status: number; text: string; type: string }> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`, { method: 'POST', body: typeof body === 'string' ? body : JSON.stringify(body), headers: { 'content-type': 'application/json' } });
  return { status: res.status, text: await res.text(), type: res.headers.get('content-type') ?? '' };
}

function events(text: string): Record<string, unknown>[] {
  return text.split('\n\n').filter((e) => e.startsWith('data: ')).map((e) => JSON.parse(e.slice(6)) as Record<string, unknown>);
}

async function metric(port: number, name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(name));
  return line === undefined ? Number.NaN : Number(line.split(' ').pop());
}

test('generate and generate_stream answer the reference\'s tokens; bad requests are 4xx naming the problem', async (t) => {
  const s = await startTestSluice(t, flags);
  const port = s.ports.http;
  const prompt = 'Serving at the floor:';
  const want = decodeAscii(reference.greedy(encodeAscii(prompt), 20, 96));
  const one = await post(port, '/v2/models/tiny_lm/generate', { id: 'q1', text_input: prompt, parameters: { max_tokens: 20, temperature: 0 } });
  assert.equal(one.status, 200, one.text);
  const body = JSON.parse(one.text) as Record<string, unknown>;
  assert.equal(body['text_output'], want);
  assert.equal(body['model_name'], 'tiny_lm');
  assert.equal(body['model_version'], '1');
  assert.equal(body['id'], 'q1');
  assert.equal(body['prompt_tokens'], prompt.length);
  assert.equal(body['completion_tokens'], want.length);

  // TensorRT-LLM's clients send max_tokens at the top level.
  const streamed = await post(port, '/v2/models/tiny_lm/versions/1/generate_stream', { text_input: prompt, max_tokens: 20 });
  assert.equal(streamed.status, 200);
  assert.match(streamed.type, /^text\/event-stream/);
  const evs = events(streamed.text);
  assert.ok(evs.length >= 2, `several events (${evs.length})`);
  assert.equal(evs.map((e) => e['text_output']).join(''), want);
  assert.ok(evs.every((e) => e['model_version'] === '1'));
  const last = evs[evs.length - 1]!;
  assert.ok(last['finish_reason'] === 'length' || last['finish_reason'] === 'eos');
  assert.equal(last['completion_tokens'], want.length);
  // The prompt was cached by the first request: the second prefilled only its last token.
  assert.equal(last['cached_tokens'], prompt.length - 1);

  const bad: [unknown, number, string][] = [
    [{ text_input: 'caf\u00e9' }, 400, 'SLUICE_INVALID_PARAMETER'],
    [{ text_input: 'x', parameters: { max_tokens: 1000 } }, 400, 'SLUICE_CONTEXT_TOO_LONG'],
    [{ text_input: 'x', parameters: { max_tokens: 0 } }, 400, 'SLUICE_INVALID_PARAMETER'],
    [{ text_input: 'x', parameters: { temperature: -1 } }, 400, 'SLUICE_INVALID_PARAMETER'],
    [{ text_input: 'x', parameters: { top_p: 0 } }, 400, 'SLUICE_INVALID_PARAMETER'],
    [{ text_input: 'x', parameters: { top_p: 1.5 } }, 400, 'SLUICE_INVALID_PARAMETER'],
    [{ text_input: 'x', parameters: { top_k: -1 } }, 400, 'SLUICE_INVALID_PARAMETER'],
    [{ text_input: 'x', parameters: { top_k: 2.5 } }, 400, 'SLUICE_INVALID_PARAMETER'],
    [{ text_input: 'x', parameters: { top_n: 3 } }, 400, 'SLUICE_INVALID_PARAMETER'],
    [{ text_input: '' }, 400, 'SLUICE_INVALID_PARAMETER'],
    [{ prompt: 'x' }, 400, 'SLUICE_INVALID_REQUEST'],
    ['{"text_input": ', 400, 'SLUICE_MALFORMED_BODY'],
  ];
  for (const [req, status, code] of bad) {
    for (const path of ['/v2/models/tiny_lm/generate', '/v2/models/tiny_lm/generate_stream']) {
      const r = await post(port, path, req);
      assert.equal(r.status, status, `${path} ${JSON.stringify(req)}: ${r.text}`);
      assert.equal((JSON.parse(r.text) as { code: string }).code, code, r.text);
    }
  }
  // A model that is not generative takes generate requests as tensors by name (test/http/generate-mapping.test.ts):
  // simple has no text_input, and its inputs are missing.
  const notGen = await post(port, '/v2/models/simple/generate', { text_input: 'x' });
  assert.equal(notGen.status, 400);
  assert.match(notGen.text, /INPUT0/);
  const missing = await post(port, '/v2/models/nope/generate', { text_input: 'x' });
  assert.equal(missing.status, 404);
  const infer = await post(port, '/v2/models/tiny_lm/infer', { inputs: [{ name: 'input_ids', shape: [1, 1], datatype: 'INT64', data: [1] }] });
  assert.equal(infer.status, 400);
  assert.match(infer.text, /generative model: use POST \/v2\/models\/tiny_lm\/generate/);

  const metrics = s.ports.metrics;
  assert.equal(await metric(metrics, 'sluice_generation_time_to_first_token_seconds_count{model="tiny_lm"}'), 2);
  assert.equal(await metric(metrics, 'sluice_generation_tokens_total{model="tiny_lm",kind="generated"}'), 2 * want.length);
  assert.equal(await metric(metrics, 'sluice_generation_prefix_hits_total{model="tiny_lm"}'), 1);
  assert.ok(await metric(metrics, 'sluice_generation_kv_cache_bytes{model="tiny_lm",state="cached"}') > 0);

  // Sampling hot (temperature 5) among the likeliest token alone is greedy again; among all of them it is not.
  const topOne = await post(port, '/v2/models/tiny_lm/generate', { text_input: prompt, parameters: { max_tokens: 20, temperature: 5, top_k: 1, seed: 3 } });
  assert.equal((JSON.parse(topOne.text) as Record<string, unknown>)['text_output'], want, topOne.text);
  const tinyP = await post(port, '/v2/models/tiny_lm/generate', { text_input: prompt, parameters: { max_tokens: 20, temperature: 5, top_p: 1e-9, seed: 3 } });
  assert.equal((JSON.parse(tinyP.text) as Record<string, unknown>)['text_output'], want, 'a top_p below any token\'s probability keeps only the likeliest');
  const hot = await post(port, '/v2/models/tiny_lm/generate', { text_input: prompt, parameters: { max_tokens: 20, temperature: 5, seed: 3 } });
  assert.notEqual((JSON.parse(hot.text) as Record<string, unknown>)['text_output'], want, 'temperature 5 over every token strays from greedy');
});

test('a client that leaves mid-stream ends its sequence and frees its cache', async (t) => {
  const s = await startTestSluice(t, flags);
  const port = s.ports.http;
  const got = await new Promise<number>((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: '/v2/models/tiny_lm/generate_stream', method: 'POST', headers: { 'content-type': 'application/json' } }, (res) => {
      let chunks = 0;
      res.on('data', () => {
        if (++chunks === 3) {
          req.destroy();
          resolve(chunks);
        }
      });
    });
    req.on('error', (e) => (e.message.includes('socket hang up') ? undefined : reject(e)));
    req.end(JSON.stringify({ text_input: 'go on forever', parameters: { max_tokens: 490, ignore_eos: true } }));
  });
  assert.equal(got, 3);
  const metrics = s.ports.metrics;
  const deadline = Date.now() + 5000;
  while (Date.now() < deadline && (await metric(metrics, 'sluice_generation_active_sequences{model="tiny_lm"}')) !== 0) await new Promise((r) => setTimeout(r, 20));
  assert.equal(await metric(metrics, 'sluice_generation_active_sequences{model="tiny_lm"}'), 0);
  assert.equal(await metric(metrics, 'sluice_generation_kv_cache_bytes{model="tiny_lm",state="active"}'), 0);
  const generated = await metric(metrics, 'sluice_generation_tokens_total{model="tiny_lm",kind="generated"}');
  assert.ok(generated < 490, `stopped early (${generated} tokens)`);
  assert.equal(await metric(metrics, 'sluice_requests_total{model="tiny_lm",protocol="http",status="cancelled"}'), 1);
});
