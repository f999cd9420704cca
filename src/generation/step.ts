/**
 * One step of the running batch as tensors, and its answer back into each sequence's cache entry.
 * Every sequence feeds some new tokens (a prompt's uncached part, or the one token sampled last) after
 * the tokens its entry already holds. Rows are padded to the longest past and the longest feed; the
 * attention bias masks the padding and keeps attention causal, so a row sees exactly its own context
 * and the step is the same computation for each sequence as running it alone.
 */
import type { Tensor } from '../core/tensor.ts';
import type { KvEntry, KvShape } from './kv-cache.ts';

import { MASKED, floats } from './decode-batch.ts';

export interface StepRow {
  readonly entry: KvEntry;
  /** Tokens to run after entry.tokens (at least one). */
  readonly feed: readonly number[];
}

export interface StepInputs {
  readonly tensors: Tensor[];
  readonly past: number;
  readonly tokens: number;
}

function tensor(name: string, datatype: 'INT64' | 'FP32', shape: number[], data: BigInt64Array | Float32Array): Tensor {
  return { name, datatype, shape, data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) };
}

export function buildStep(rows: readonly StepRow[], shape: KvShape): StepInputs {
  const { layers, heads, headDim } = shape;
  const b = rows.length;
  let past = 0;
  let tokens = 0;
  for (const r of rows) {
    past = Math.max(past, r.entry.tokens.length);
    tokens = Math.max(tokens, r.feed.length);
  }
  const context = past + tokens;
  const ids = new BigInt64Array(b * tokens);
  const positions = new BigInt64Array(b * tokens);
  const bias = new Float32Array(b * tokens * context).fill(MASKED);
  rows.forEach((r, i) => {
    const held = r.entry.tokens.length;
    for (let j = 0; j < tokens; j++) {
      const at = i * tokens + j;
      const row = at * context;
      if (j < r.feed.length) {
        ids[at] = BigInt(r.feed[j]!);
        positions[at] = BigInt(held + j);
        bias.fill(0, row, row + held);
        bias.fill(0, row + past, row + past + j + 1);
      } else {
        // A padding query attends to itself only; its output is never read.
        bias[row + past + j] = 0;
      }
    }
  });
  const tensors: Tensor[] = [
    tensor('input_ids', 'INT64', [b, tokens], ids),
    tensor('position_ids', 'INT64', [b, tokens], positions),
    tensor('attention_bias', 'FP32', [b, 1, tokens, context], bias),
  ];
  // Time-major past: [past, rows, heads, head_dim]; a row's token t is its entry's heads * head_dim floats at t.
  const token = heads * headDim;
  for (let l = 0; l < layers; l++) {
    const keys = new Float32Array(past * b * token);
    const values = new Float32Array(past * b * token);
    rows.forEach((r, i) => {
      const { entry } = r;
      for (let t = 0; t < entry.tokens.length; t++) {
        keys.set(entry.keys[l]!.subarray(t * token, (t + 1) * token), (t * b + i) * token);
        values.set(entry.values[l]!.subarray(t * token, (t + 1) * token), (t * b + i) * token);
      }
    });
    tensors.push(tensor(`past_key_${l}`, 'FP32', [past, b, heads, headDim], keys), tensor(`past_value_${l}`, 'FP32', [past, b, heads, headDim], values));
  }
  return { tensors, past, tokens };
}

/** The step's output names, in the order absorbStep reads them. */
export function stepOutputs(layers: number): string[] {
  const names = ['logits'];
  for (let l = 0; l < layers; l++) names.push(`present_key_${l}`, `present_value_${l}`);
  return names;
}

/**
 * Appends each row's new keys and values to its entry (and its fed tokens to entry.tokens), and
 * returns each row's logits for the position after its last fed token.
 */
export function absorbStep(rows: readonly StepRow[], step: StepInputs, outputs: readonly Tensor[], shape: KvShape, vocab: number): Float32Array[] {
  const { layers, heads, headDim } = shape;
  const { tokens } = step;
  const b = rows.length;
  const token = heads * headDim;
  const logits = floats(outputs[0]!);
  for (let l = 0; l < layers; l++) {
    // The new tokens' keys and values only: [tokens, rows, heads, head_dim].
    const keys = floats(outputs[1 + 2 * l]!);
    const values = floats(outputs[2 + 2 * l]!);
    rows.forEach((r, i) => {
      const held = r.entry.tokens.length;
      for (let t = 0; t < r.feed.length; t++) {
        const from = (t * b + i) * token;
        r.entry.keys[l]!.set(keys.subarray(from, from + token), (held + t) * token);
        r.entry.values[l]!.set(values.subarray(from, from + token), (held + t) * token);
      }
    });
  }
  return rows.map((r, i) => {
    for (const t of r.feed) r.entry.tokens.push(t);
    const at = (i * tokens + r.feed.length - 1) * vocab;
    return logits.slice(at, at + vocab);
  });
}
