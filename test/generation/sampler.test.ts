// Drawing the next token (src/generation/sampler.ts): greedy at temperature 0; top_k and top_p keep
// only the likeliest tokens, and what is kept is drawn in proportion to its probability.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { sampleToken, seededRandom } from '../../src/generation/sampler.ts';

// Probabilities 0.5, 0.3, 0.15, 0.05 at temperature 1.
const LOGITS = Float32Array.from([0.5, 0.3, 0.15, 0.05].map(Math.log));

function counts(params: { temperature: number; topK: number; topP: number }, draws = 4000, seed = 7): number[] {
  const random = seededRandom(seed);
  const out = [0, 0, 0, 0];
  for (let i = 0; i < draws; i++) out[sampleToken(LOGITS, params, random)]!++;
  return out;
}

test('temperature 0 and top_k 1 are greedy', () => {
  assert.deepEqual(counts({ temperature: 0, topK: 0, topP: 1 }), [4000, 0, 0, 0]);
  assert.deepEqual(counts({ temperature: 50, topK: 1, topP: 1 }), [4000, 0, 0, 0]);
});

test('top_k keeps the k likeliest, drawn in proportion (0.5 : 0.3 of the kept 0.8)', () => {
  const c = counts({ temperature: 1, topK: 2, topP: 1 });
  assert.equal(c[2]! + c[3]!, 0);
  assert.ok(Math.abs(c[0]! / 4000 - 0.625) < 0.03, `token 0 drawn ${c[0]} of 4000 (expected about 2500)`);
  const all = counts({ temperature: 1, topK: 0, topP: 1 });
  assert.ok(all.every((n) => n > 0), `every token drawn without truncation: ${all.join(', ')}`);
  assert.ok(Math.abs(all[3]! / 4000 - 0.05) < 0.015, `token 3 about 5%: ${all[3]}`);
});

test('top_p keeps the smallest set that reaches it', () => {
  const c79 = counts({ temperature: 1, topK: 0, topP: 0.79 });
  assert.equal(c79[2]! + c79[3]!, 0, '0.5 + 0.3 reaches 0.79');
  assert.ok(c79[1]! > 0);
  const c81 = counts({ temperature: 1, topK: 0, topP: 0.81 });
  assert.equal(c81[3], 0, '0.5 + 0.3 + 0.15 reaches 0.81');
  assert.ok(c81[2]! > 0);
  assert.deepEqual(counts({ temperature: 1, topK: 0, topP: 0.1 }), [4000, 0, 0, 0], 'below the likeliest token: it alone');
  const both = counts({ temperature: 1, topK: 2, topP: 0.99 });
  assert.equal(both[2]! + both[3]!, 0, 'top_k bounds top_p');
});

test('one seed draws the same tokens again', () => {
  assert.deepEqual(counts({ temperature: 1.3, topK: 3, topP: 0.9 }, 500, 11), counts({ temperature: 1.3, topK: 3, topP: 0.9 }, 500, 11));
});
