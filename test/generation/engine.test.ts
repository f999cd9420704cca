// The generation engine on the real tiny_lm in ONNX Runtime: tokens equal a plain-JS forward pass at
// temperature 0 whatever joins or leaves the running batch, a later prompt reuses a cached prefix,
// cancellation frees its cache, and the waiting list is bounded.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { GenerationQueueFull, RequestCancelled } from '../../src/core/errors.ts';
import type { GenerationConfig } from '../../src/core/model.ts';
import { Generator, type GenerateParams, type StepRunner } from '../../src/generation/engine.ts';
import { decodeAscii, encodeAscii } from '../../src/generation/tokenizer.ts';
import { readModelEntry } from '../../src/repository/repository.ts';
import { SessionFactory } from '../../src/worker/session.ts';
import { SAMPLE_REPOSITORY } from '../helpers/sluice.ts';
import { TinyLmReference } from './reference.ts';

const EOS = 96;
const reference = new TinyLmReference();
const quiet = { warn: () => undefined, error: () => undefined };

async function tinyLm(): Promise<{ config: GenerationConfig; runner: StepRunner & { steps: { rows: number; tokens: number }[] }; close(): Promise<void> }> {
  const entry = await readModelEntry(SAMPLE_REPOSITORY, 'tiny_lm');
  assert.equal(entry.error, '');
  const config = entry.config!.generation!;
  const file = entry.versions[0]!.file;
  const session = await new SessionFactory({ device: 'cpu', deviceId: 0, cudaFallback: 'cpu', intraOpThreads: 1, logger: quiet }).open('tiny_lm', file);
  const steps: { rows: number; tokens: number }[] = [];
  return {
    config,
    runner: {
      steps,
      async run(inputs, outputs) {
        const ids = inputs.find((t) => t.name === 'input_ids')!;
        steps.push({ rows: ids.shape[0]!, tokens: ids.shape[1]! });
        return (await session.run(inputs, outputs)).outputs;
      },
    },
    close: () => session.release(),
  };
}

function params(text: string, maxTokens: number, extra: Partial<GenerateParams> = {}): GenerateParams {
  return { prompt: encodeAscii(text), maxTokens, temperature: 0, topK: 0, topP: 1, seed: 0, stop: [], ignoreEos: false, arrivalMs: performance.now(), ...extra };
}

test('greedy generation equals the reference token by token, with more prompts than batch places', async (t) => {
  const lm = await tinyLm();
  t.after(() => lm.close());
  const g = new Generator({ model: 'tiny_lm', config: { ...lm.config, maxActiveSequences: 3 }, runner: lm.runner });
  const prompts = ['Hello', 'The quick brown fox jumps over the lazy dog', 'a', 'sluice serves ONNX\nmodels', '0123456789'];
  const lengths = [24, 6, 17, 1, 30];
  const results = await Promise.all(prompts.map((p, i) => g.generate(params(p, lengths[i]!))));
  results.forEach((r, i) => {
    const want = reference.greedy(encodeAscii(prompts[i]!), lengths[i]!, EOS);
    assert.deepEqual(r.tokens, want, `prompt ${i}`);
    assert.equal(r.text, decodeAscii(want));
    assert.equal(r.finishReason, want.length < lengths[i]! ? 'eos' : 'length');
  });
  assert.ok(lm.runner.steps.every((s) => s.rows <= 3), 'never more rows than maxActiveSequences');
  // A sequence left after 1 token, the others kept running: later steps hold the waiting prompts too.
  assert.ok(lm.runner.steps.some((s) => s.rows === 3 && s.tokens === 1), 'decode steps of three sequences');
  await g.close();
});

test('continuous batching: a short request that arrives behind a long one finishes first', async (t) => {
  const lm = await tinyLm();
  t.after(() => lm.close());
  const g = new Generator({ model: 'tiny_lm', config: lm.config, runner: lm.runner });
  const order: string[] = [];
  const long = g.generate(params('long', 120, { ignoreEos: true })).then(() => order.push('long'));
  await new Promise((r) => setTimeout(r, 5));
  const short = g.generate(params('short', 3, { ignoreEos: true })).then(() => order.push('short'));
  await Promise.all([long, short]);
  assert.deepEqual(order, ['short', 'long']);
  await g.close();
});

test('a prompt longer than the prefill budget is prefilled in chunks, one per step, while the others keep decoding', async (t) => {
  const lm = await tinyLm();
  t.after(() => lm.close());
  const g = new Generator({ model: 'tiny_lm', config: { ...lm.config, prefillTokenBudget: 16 }, runner: lm.runner });
  const running = g.generate(params('run', 40, { ignoreEos: true }));
  await new Promise((r) => setTimeout(r, 5));
  const longPrompt = 'A long prompt arrives while another sequence decodes: seventy and more characters.';
  const chunks = Math.ceil(encodeAscii(longPrompt).length / 16);
  lm.runner.steps.length = 0;
  const long = g.generate(params(longPrompt, 8));
  const [a, b] = await Promise.all([running, long]);
  assert.deepEqual(b.tokens, reference.greedy(encodeAscii(longPrompt), 8, EOS), 'chunked, the same tokens as one prefill');
  assert.deepEqual(a.tokens, reference.greedy(encodeAscii('run'), 40), 'the decoding sequence is undisturbed');
  const prefills = lm.runner.steps.filter((s) => s.tokens > 1);
  assert.ok(prefills.length >= chunks - 1 && prefills.every((s) => s.tokens <= 16), `prefill steps of at most 16 tokens: ${JSON.stringify(prefills)}`);
  // Between two chunks the running sequence decoded: a one-token step follows every chunk but the last.
  const firstChunk = lm.runner.steps.findIndex((s) => s.tokens > 1);
  assert.equal(lm.runner.steps[firstChunk + 1]?.tokens, 1, 'a decode step right after the first chunk');
  await g.close();
});

test('a second turn reuses the first turn\'s cached keys and values: fewer tokens prefilled, the same tokens out', async (t) => {
  const lm = await tinyLm();
  t.after(() => lm.close());
  const g = new Generator({ model: 'tiny_lm', config: lm.config, runner: lm.runner });
  const system = 'You are a terse assistant. Answer in one line.\nUser: what is a KV cache?\nAssistant:';
  const first = await g.generate(params(system, 20, { ignoreEos: true }));
  assert.equal(first.cachedTokens, 0);
  const turn = `${system}${first.text}\nUser: and why reuse it?\nAssistant:`;
  lm.runner.steps.length = 0;
  const second = await g.generate(params(turn, 12, { ignoreEos: true }));
  // Everything the first turn ran through the model: its prompt and all its tokens but the last.
  assert.equal(second.cachedTokens, encodeAscii(system).length + first.tokens.length - 1);
  const prefill = lm.runner.steps[0]!;
  assert.equal(prefill.tokens, encodeAscii(turn).length - second.cachedTokens, 'only the new part is prefilled');
  assert.deepEqual(second.tokens, reference.greedy(encodeAscii(turn), 12));
  // Another conversation with the same system prompt shares its prefix too.
  const other = await g.generate(params(`${system} hello`, 4, { ignoreEos: true }));
  assert.ok(other.cachedTokens >= encodeAscii(system).length - 16, `shared system prompt reused (${other.cachedTokens} tokens)`);
  assert.deepEqual(other.tokens, reference.greedy(encodeAscii(`${system} hello`), 4));
  const snap = g.snapshot();
  assert.equal(snap.prefixHits, 2);
  assert.equal(snap.prefixLookups, 3);
  await g.close();
});

test('stop strings end generation and are not answered; streamed pieces add up to the answer', async (t) => {
  const lm = await tinyLm();
  t.after(() => lm.close());
  const g = new Generator({ model: 'tiny_lm', config: lm.config, runner: lm.runner });
  const full = decodeAscii(reference.greedy(encodeAscii('Hello world'), 12));
  const stop = full.slice(5, 7);
  const pieces: string[] = [];
  const r = await g.generate(params('Hello world', 12, { stop: [stop], onText: (s) => pieces.push(s) }));
  assert.equal(r.finishReason, 'stop');
  assert.equal(r.text, full.slice(0, full.indexOf(stop)));
  assert.equal(pieces.join(''), r.text);
  await g.close();
});

test('cancelling a running sequence ends it at the next step and frees its cache; the waiting list is bounded', async (t) => {
  const lm = await tinyLm();
  t.after(() => lm.close());
  const g = new Generator({ model: 'tiny_lm', config: { ...lm.config, maxActiveSequences: 1, maxQueuedPrompts: 2 }, runner: lm.runner });
  const abort = new AbortController();
  let streamed = 0;
  const running = g.generate(params('cancel me', 400, { ignoreEos: true, signal: abort.signal, onText: () => void streamed++ }));
  const queued = [g.generate(params('one', 2)), g.generate(params('two', 2))];
  await assert.rejects(g.generate(params('three', 2)), (e: Error & { code?: string }) => e.code === GenerationQueueFull.code);
  while (streamed < 3) await new Promise((r) => setTimeout(r, 1));
  assert.equal(g.snapshot().activeSequences, 1);
  assert.ok(g.snapshot().kvActiveBytes > 0);
  abort.abort();
  await assert.rejects(running, (e: Error & { code?: string }) => e.code === RequestCancelled.code);
  await Promise.all(queued);
  const snap = g.snapshot();
  assert.equal(snap.activeSequences, 0);
  assert.equal(snap.kvActiveBytes, 0, 'the cancelled sequence holds no cache');
  assert.ok(streamed < 400);
  await g.close();
});

test('a full cache evicts finished sequences, least recently used first, and the answers stay right', async (t) => {
  const lm = await tinyLm();
  t.after(() => lm.close());
  const { layers, heads, headDim, kvBlockTokens } = lm.config;
  const blockBytes = 2 * layers * heads * headDim * 4 * kvBlockTokens;
  // Room for the 512-token context of one sequence and two more blocks.
  const g = new Generator({ model: 'tiny_lm', config: { ...lm.config, kvCacheBytes: blockBytes * (512 / kvBlockTokens + 2) }, runner: lm.runner });
  for (const p of ['first prompt', 'second prompt', 'third prompt']) await g.generate(params(p, 8));
  const r = await g.generate(params('x'.repeat(40), 470, { ignoreEos: true }));
  assert.equal(r.tokens.length, 470);
  const snap = g.snapshot();
  assert.ok(snap.kvEvictedBytes > 0, 'finished sequences were evicted to make room');
  assert.ok(snap.kvCachedBytes + snap.kvActiveBytes <= snap.kvBudgetBytes);
  assert.deepEqual(r.tokens.slice(0, 5), reference.greedy(encodeAscii('x'.repeat(40)), 5));
  await g.close();
});
