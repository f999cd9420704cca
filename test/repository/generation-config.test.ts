// The generation section of config.json: defaults, shape read from the model's tensors, and clear
// errors when the model does not follow the generation contract.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isSluiceError } from '../../src/core/errors.ts';
import { readJsonConfig } from '../../src/repository/json-config.ts';
import { normalizeConfig } from '../../src/repository/normalize.ts';
import type { TensorConfig } from '../../src/core/model.ts';

const t = (name: string, datatype: TensorConfig['datatype'], dims: number[]): TensorConfig => ({ name, datatype, dims });
const INPUTS = [t('input_ids', 'INT64', [-1, -1]), t('position_ids', 'INT64', [-1, -1]), t('attention_bias', 'FP32', [-1, 1, -1, -1]), t('past_key_0', 'FP32', [-1, -1, 2, 8]), t('past_value_0', 'FP32', [-1, -1, 2, 8])];
const OUTPUTS = [t('logits', 'FP32', [-1, -1, 97]), t('present_key_0', 'FP32', [-1, -1, 2, 8]), t('present_value_0', 'FP32', [-1, -1, 2, 8])];

function config(generation: object, sig: { maxBatchSize?: number; inputs?: TensorConfig[]; outputs?: TensorConfig[] } = {}) {
  const draft = readJsonConfig(JSON.stringify({ maxBatchSize: 0, generation }));
  return normalizeConfig('lm', draft, { maxBatchSize: sig.maxBatchSize ?? 0, inputs: sig.inputs ?? INPUTS, outputs: sig.outputs ?? OUTPUTS });
}

function rejects(fn: () => unknown, message: RegExp): void {
  assert.throws(fn, (e: unknown) => isSluiceError(e) && e.code === 'SLUICE_INVALID_MODEL_CONFIG' && message.test(e.message), String(message));
}

test('defaults, and layers, heads, head size and vocabulary read from the tensors', () => {
  const g = config({}).generation!;
  assert.deepEqual(
    { layers: g.layers, heads: g.heads, headDim: g.headDim, vocab: g.vocab, eos: g.eosToken, max: g.maxActiveSequences, ctx: g.maxContext, block: g.kvBlockTokens },
    { layers: 1, heads: 2, headDim: 8, vocab: 97, eos: 96, max: 32, ctx: 512, block: 16 },
  );
  assert.equal(config({ maxActiveSequences: 1, kvBlockTokens: 8 }).generation!.maxActiveSequences, 1);
});

test('a model or section that breaks the contract is refused, naming what is wrong', () => {
  rejects(() => config({}, { maxBatchSize: 8 }), /maxBatchSize 0/);
  rejects(() => config({}, { inputs: INPUTS.filter((x) => x.name !== 'position_ids') }), /no input 'position_ids'/);
  rejects(() => config({}, { inputs: INPUTS.map((x) => (x.name === 'input_ids' ? t('input_ids', 'INT32', [-1, -1]) : x)) }), /'input_ids' is INT32/);
  rejects(() => config({}, { outputs: OUTPUTS.filter((x) => x.name !== 'present_value_0') }), /no output 'present_value_0'/);
  rejects(() => config({}, { inputs: INPUTS.map((x) => (x.name === 'past_value_0' ? t('past_value_0', 'FP32', [-1, -1, 4, 8]) : x)) }), /every layer needs \[past, batch, 2, 8\]/);
  rejects(() => config({}, { outputs: OUTPUTS.map((x) => (x.name === 'logits' ? t('logits', 'FP32', [-1, -1, 300]) : x)) }), /vocabulary of 97/);
  rejects(() => config({ tokenizer: 'bpe' }), /'bpe' is not a tokenizer/);
  rejects(() => config({ eosToken: 97 }), /outside the vocabulary/);
  rejects(() => config({ kvCacheBytes: 1024 }), /cannot hold one sequence/);
  rejects(() => config({ maxActiveSequences: 0 }), /generation\.maxActiveSequences/);
  rejects(() => config({ kvBlockTokens: 'x' }), /expected an integer/);
  const d = readJsonConfig(JSON.stringify({ generation: { unknownKnob: 1 } }));
  assert.deepEqual(d.unknownFields, ['generation.unknownKnob']);
});
