// tiny_lm: a small decoder-only transformer (pre-norm, learned positions, ReLU MLP) over a character
// vocabulary, with seeded weights. It follows sluice's generation contract (docs/generation.md): the
// caller passes each layer's past keys and values, time-major, and an additive attention bias, and gets
// the new tokens' keys and values back, so the KV cache lives with the server, not in the graph.
import { ELEM, attrFloat, attrInt, attrInts, floatInitializer, int64Initializer, node } from './onnx-builder.ts';
import type { GraphSpec, InitializerSpec, NodeSpec } from './onnx-builder.ts';
import { Xorshift32 } from './xorshift.ts';

/** The shape of tiny_lm; its config.json repeats layers, heads, head_dim and max_context. */
export const TINY_LM = { vocab: 97, dModel: 64, heads: 4, headDim: 16, layers: 2, ffn: 128, maxContext: 512 } as const;

/** Every weight of tiny_lm by initializer name, with its dims: the graph and the JS reference share it. */
export interface TinyLmWeights {
  readonly tensors: ReadonlyMap<string, { readonly dims: readonly number[]; readonly data: Float32Array }>;
}

export function tinyLmWeights(): TinyLmWeights {
  const { vocab, dModel: d, layers, ffn, maxContext } = TINY_LM;
  const rng = new Xorshift32(0x5eed0003);
  const tensors = new Map<string, { dims: readonly number[]; data: Float32Array }>();
  const add = (name: string, dims: readonly number[], scale: number, offset = 0): void => {
    const data = rng.fill(dims.reduce((a, b) => a * b, 1), scale);
    if (offset !== 0) for (let i = 0; i < data.length; i++) data[i] = (data[i] ?? 0) + offset;
    tensors.set(name, { dims, data });
  };
  add('tok_emb', [vocab, d], 1);
  add('pos_emb', [maxContext, d], 0.3);
  for (let l = 0; l < layers; l++) {
    add(`l${l}_ln1_g`, [d], 0.1, 1);
    add(`l${l}_ln1_b`, [d], 0.05);
    for (const w of ['q', 'k', 'v', 'o']) {
      add(`l${l}_w${w}`, [d, d], 1 / Math.sqrt(d));
      add(`l${l}_b${w}`, [d], 0.02);
    }
    add(`l${l}_ln2_g`, [d], 0.1, 1);
    add(`l${l}_ln2_b`, [d], 0.05);
    add(`l${l}_w1`, [d, ffn], 1 / Math.sqrt(d));
    add(`l${l}_b1`, [ffn], 0.02);
    add(`l${l}_w2`, [ffn, d], 1 / Math.sqrt(ffn));
    add(`l${l}_b2`, [d], 0.02);
  }
  add('lnf_g', [d], 0.1, 1);
  add('lnf_b', [d], 0.05);
  // Large enough that the greedy choice is rarely a near tie, so a reference in other arithmetic agrees.
  add('w_out', [d, vocab], 3 / Math.sqrt(d));
  return { tensors };
}

export function tinyLm(): GraphSpec {
  const { vocab, dModel: d, heads, headDim, layers } = TINY_LM;
  const weights = tinyLmWeights();
  const initializers: InitializerSpec[] = [...weights.tensors].map(([name, t]) => floatInitializer(name, t.dims, t.data));
  initializers.push(int64Initializer('split_heads', [4], [0, 0, heads, headDim]));
  initializers.push(int64Initializer('merge_heads', [3], [0, 0, d]));
  initializers.push(floatInitializer('attn_scale', [], new Float32Array([1 / Math.sqrt(headDim)])));
  const nodes: NodeSpec[] = [];
  const linear = (x: string, w: string, b: string, out: string): void => {
    nodes.push(node('MatMul', [x, w], [`${out}_mm`]), node('Add', [`${out}_mm`, b], [out]));
  };
  const layerNorm = (x: string, g: string, b: string, out: string): void => {
    nodes.push(node('LayerNormalization', [x, g, b], [out], [attrInt('axis', -1), attrFloat('epsilon', 1e-5)]));
  };
  nodes.push(node('Gather', ['tok_emb', 'input_ids'], ['tok']), node('Gather', ['pos_emb', 'position_ids'], ['pos']), node('Add', ['tok', 'pos'], ['x0']));
  let x = 'x0';
  const inputs: GraphSpec['inputs'][number][] = [
    { name: 'input_ids', elemType: ELEM.INT64, dims: ['batch', 'tokens'] },
    { name: 'position_ids', elemType: ELEM.INT64, dims: ['batch', 'tokens'] },
    { name: 'attention_bias', elemType: ELEM.FLOAT, dims: ['batch', 1, 'tokens', 'context'] },
  ];
  const outputs: GraphSpec['outputs'][number][] = [{ name: 'logits', elemType: ELEM.FLOAT, dims: ['batch', 'tokens', vocab] }];
  for (let l = 0; l < layers; l++) {
    const p = `l${l}`;
    // Time-major past ([past, batch, heads, head_dim]): a step's new keys and values are appended to the
    // server's buffer in place, and the graph answers only those ([tokens, batch, heads, head_dim]).
    inputs.push({ name: `past_key_${l}`, elemType: ELEM.FLOAT, dims: ['past', 'batch', heads, headDim] });
    inputs.push({ name: `past_value_${l}`, elemType: ELEM.FLOAT, dims: ['past', 'batch', heads, headDim] });
    outputs.push({ name: `present_key_${l}`, elemType: ELEM.FLOAT, dims: ['tokens', 'batch', heads, headDim] });
    outputs.push({ name: `present_value_${l}`, elemType: ELEM.FLOAT, dims: ['tokens', 'batch', heads, headDim] });
    layerNorm(x, `${p}_ln1_g`, `${p}_ln1_b`, `${p}_h`);
    for (const w of ['q', 'k', 'v']) {
      linear(`${p}_h`, `${p}_w${w}`, `${p}_b${w}`, `${p}_${w}`);
      nodes.push(node('Reshape', [`${p}_${w}`, 'split_heads'], [`${p}_${w}4`]));
    }
    nodes.push(node('Transpose', [`${p}_q4`], [`${p}_qh`], [attrInts('perm', [0, 2, 1, 3])]));
    nodes.push(node('Transpose', [`${p}_k4`], [`present_key_${l}`], [attrInts('perm', [1, 0, 2, 3])]));
    nodes.push(node('Transpose', [`${p}_v4`], [`present_value_${l}`], [attrInts('perm', [1, 0, 2, 3])]));
    nodes.push(node('Concat', [`past_key_${l}`, `present_key_${l}`], [`${p}_kall`], [attrInt('axis', 0)]));
    nodes.push(node('Concat', [`past_value_${l}`, `present_value_${l}`], [`${p}_vall`], [attrInt('axis', 0)]));
    // [context, batch, heads, head_dim] to [batch, heads, head_dim, context] and [batch, heads, context, head_dim].
    nodes.push(node('Transpose', [`${p}_kall`], [`${p}_kt`], [attrInts('perm', [1, 2, 3, 0])]));
    nodes.push(node('Transpose', [`${p}_vall`], [`${p}_vh`], [attrInts('perm', [1, 2, 0, 3])]));
    nodes.push(node('MatMul', [`${p}_qh`, `${p}_kt`], [`${p}_s`]));
    nodes.push(node('Mul', [`${p}_s`, 'attn_scale'], [`${p}_ss`]));
    nodes.push(node('Add', [`${p}_ss`, 'attention_bias'], [`${p}_sb`]));
    nodes.push(node('Softmax', [`${p}_sb`], [`${p}_p`], [attrInt('axis', -1)]));
    nodes.push(node('MatMul', [`${p}_p`, `${p}_vh`], [`${p}_o4`]));
    nodes.push(node('Transpose', [`${p}_o4`], [`${p}_ot`], [attrInts('perm', [0, 2, 1, 3])]));
    nodes.push(node('Reshape', [`${p}_ot`, 'merge_heads'], [`${p}_o`]));
    linear(`${p}_o`, `${p}_wo`, `${p}_bo`, `${p}_a`);
    nodes.push(node('Add', [x, `${p}_a`], [`${p}_x1`]));
    layerNorm(`${p}_x1`, `${p}_ln2_g`, `${p}_ln2_b`, `${p}_h2`);
    linear(`${p}_h2`, `${p}_w1`, `${p}_b1`, `${p}_f`);
    nodes.push(node('Relu', [`${p}_f`], [`${p}_fr`]));
    linear(`${p}_fr`, `${p}_w2`, `${p}_b2`, `${p}_m`);
    nodes.push(node('Add', [`${p}_x1`, `${p}_m`], [`${p}_x2`]));
    x = `${p}_x2`;
  }
  layerNorm(x, 'lnf_g', 'lnf_b', 'xf');
  nodes.push(node('MatMul', ['xf', 'w_out'], ['logits']));
  return {
    name: 'tiny_lm',
    doc: `A ${layers}-layer decoder-only transformer (d=${d}, ${heads} heads) over ${vocab} tokens with time-major past and new-token key-value tensors.`,
    inputs,
    outputs,
    nodes,
    initializers,
  };
}
