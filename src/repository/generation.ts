/**
 * The generation section of a model config: defaults, and the check that the model's inputs and outputs
 * follow sluice's generation contract (docs/generation.md). Layers, heads, head size and vocabulary are
 * read from the tensors themselves, so a config cannot disagree with its model.
 */
import type { GenerationConfig, TensorConfig } from '../core/model.ts';
import { configError, type GenerationDraft } from './draft.ts';

export const GENERATION_DEFAULTS = {
  maxContext: 512,
  maxActiveSequences: 32,
  maxQueuedPrompts: 256,
  kvCacheBytes: 64 * 1024 * 1024,
  kvBlockTokens: 16,
  prefillTokenBudget: 512,
} as const;

/** The 'ascii' tokenizer's vocabulary before its end token: 95 printable characters and '\n'. */
export const ASCII_TOKENS = 96;

interface Signature {
  readonly maxBatchSize: number;
  readonly inputs: readonly TensorConfig[];
  readonly outputs: readonly TensorConfig[];
}

export function generationConfig(file: string, draft: GenerationDraft, sig: Signature): GenerationConfig {
  const fail = (field: string, reason: string): never => {
    throw configError(file, field === '' ? 'generation' : `generation.${field}`, reason);
  };
  if (sig.maxBatchSize !== 0) fail('', 'a generative model has maxBatchSize 0: its batch dimension belongs to the generation engine, which batches steps itself');
  const tensor = (list: readonly TensorConfig[], name: string, datatype: string, rank: number): TensorConfig => {
    const t = list.find((x) => x.name === name);
    if (!t) return fail('', `the model has no ${list === sig.inputs ? 'input' : 'output'} '${name}' (see docs/generation.md for the tensors a generative model takes and answers)`);
    if (t.datatype !== datatype) fail('', `'${name}' is ${t.datatype}, the generation contract needs ${datatype}`);
    if (t.dims.length !== rank) fail('', `'${name}' has rank ${t.dims.length}, the generation contract needs ${rank}`);
    return t;
  };
  tensor(sig.inputs, 'input_ids', 'INT64', 2);
  tensor(sig.inputs, 'position_ids', 'INT64', 2);
  tensor(sig.inputs, 'attention_bias', 'FP32', 4);
  const logits = tensor(sig.outputs, 'logits', 'FP32', 3);
  const layers = sig.inputs.filter((t) => /^past_key_\d+$/.test(t.name)).length;
  if (layers === 0) fail('', "the model has no 'past_key_0' input");
  const first = tensor(sig.inputs, 'past_key_0', 'FP32', 4);
  const heads = first.dims[2] ?? -1;
  const headDim = first.dims[3] ?? -1;
  if (heads <= 0 || headDim <= 0) fail('', `'past_key_0' must fix its heads and head size (dims [past, batch, heads, head_dim], time-major), got [${first.dims.join(', ')}]`);
  for (let l = 0; l < layers; l++) {
    for (const [list, name, what] of [[sig.inputs, `past_key_${l}`, 'past'], [sig.inputs, `past_value_${l}`, 'past'], [sig.outputs, `present_key_${l}`, 'tokens'], [sig.outputs, `present_value_${l}`, 'tokens']] as const) {
      const t = tensor(list, name, 'FP32', 4);
      if (t.dims[2] !== heads || t.dims[3] !== headDim) fail('', `'${name}' has dims [${t.dims.join(', ')}], every layer needs [${what}, batch, ${heads}, ${headDim}]`);
    }
  }
  const vocab = logits.dims[2] ?? -1;
  const tokenizer = draft.tokenizer ?? 'ascii';
  if (tokenizer !== 'ascii') fail('tokenizer', `'${tokenizer}' is not a tokenizer sluice has (it has 'ascii')`);
  if (vocab !== ASCII_TOKENS + 1) fail('', `the 'ascii' tokenizer needs a vocabulary of ${ASCII_TOKENS + 1} (its characters and an end token), the model's logits have ${vocab}`);
  const eosToken = draft.eosToken ?? vocab - 1;
  if (eosToken >= vocab) fail('eosToken', `${eosToken} is outside the vocabulary of ${vocab}`);
  const g = { ...GENERATION_DEFAULTS, ...draft };
  if (g.kvBlockTokens > g.maxContext) fail('kvBlockTokens', `${g.kvBlockTokens} exceeds maxContext ${g.maxContext}`);
  // Whole blocks: the cache counts memory in them.
  const sequenceBytes = 2 * layers * heads * headDim * 4 * Math.ceil(g.maxContext / g.kvBlockTokens) * g.kvBlockTokens;
  if (g.kvCacheBytes < sequenceBytes) fail('kvCacheBytes', `${g.kvCacheBytes} bytes cannot hold one sequence of maxContext ${g.maxContext} tokens (${sequenceBytes} bytes)`);
  return {
    tokenizer: 'ascii', eosToken, maxContext: g.maxContext, maxActiveSequences: g.maxActiveSequences, maxQueuedPrompts: g.maxQueuedPrompts,
    kvCacheBytes: g.kvCacheBytes, kvBlockTokens: g.kvBlockTokens, prefillTokenBudget: g.prefillTokenBudget, layers, heads, headDim, vocab,
  };
}
