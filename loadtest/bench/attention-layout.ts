/**
 * A decode step of tiny_lm under two layouts of the past keys and values, side by side in one process:
 * the served contract (time-major past [past, batch, heads, head_dim], concatenated with the new column
 * and transposed inside the graph) against a pre-transposed past (keys [batch, heads, head_dim, past],
 * values [batch, heads, past, head_dim], read by the two attention products as they are; the new
 * column's scores are computed apart and joined to the past's, which is small). Both graphs share
 * tiny_lm's weights, and the script checks that they answer the same logits.
 *
 *   node --import tsx loadtest/bench/attention-layout.ts [--repeats 5] [--steps 200]
 *
 * It prints, per batch size, past length and ONNX Runtime thread count, the median over repeats of the
 * mean step time of each graph and their ratio. It measures the graph only: serving the second layout
 * was tried and reverted (docs/generation.md, item 4, has why).
 */
import * as ort from 'onnxruntime-node';
import { parseArgs } from 'node:util';
import { ELEM, attrInt, attrInts, encodeModel, int64Initializer, node, type GraphSpec, type NodeSpec } from '../../models/onnx-builder.ts';
import { TINY_LM, tinyLm } from '../../models/tiny-lm.ts';
import { median } from './measure.ts';

/** tiny_lm with the attention rewired to read a pre-transposed past. */
function preTransposedTinyLm(): GraphSpec {
  const base = tinyLm();
  const { heads, headDim, layers } = TINY_LM;
  const nodes: NodeSpec[] = [];
  for (const n of base.nodes) {
    const out = n.output[0] ?? '';
    const l = /^l(\d+)_/.exec(out)?.[1];
    const p = `l${l}`;
    if ((n.opType === 'Concat' && /_(k|v)all$/.test(out)) || (n.opType === 'Transpose' && /_(kt|vh)$/.test(out))) continue;
    if (n.opType === 'MatMul' && out === `${p}_s`) {
      nodes.push(
        node('Transpose', [`${p}_k4`], [`${p}_knt`], [attrInts('perm', [0, 2, 3, 1])]),
        node('Transpose', [`${p}_v4`], [`${p}_vn`], [attrInts('perm', [0, 2, 1, 3])]),
        node('MatMul', [`${p}_qh`, `past_key_${l}`], [`${p}_sp`]),
        node('MatMul', [`${p}_qh`, `${p}_knt`], [`${p}_sn`]),
        node('Concat', [`${p}_sp`, `${p}_sn`], [out], [attrInt('axis', -1)]),
      );
    } else if (n.opType === 'MatMul' && out === `${p}_o4`) {
      nodes.push(
        node('Shape', [`past_key_${l}`], [`${p}_pshape`]),
        node('Slice', [`${p}_pshape`, 'at3', 'at4'], [`${p}_plen`]),
        node('Shape', [`${p}_k4`], [`${p}_nshape`]),
        node('Slice', [`${p}_nshape`, 'at1', 'at2'], [`${p}_nlen`]),
        node('Concat', [`${p}_plen`, `${p}_nlen`], [`${p}_sizes`], [attrInt('axis', 0)]),
        node('Split', [`${p}_p`, `${p}_sizes`], [`${p}_pp`, `${p}_pn`], [attrInt('axis', -1)]),
        node('MatMul', [`${p}_pp`, `past_value_${l}`], [`${p}_op`]),
        node('MatMul', [`${p}_pn`, `${p}_vn`], [`${p}_on`]),
        node('Add', [`${p}_op`, `${p}_on`], [out]),
      );
    } else nodes.push(n);
  }
  const inputs = base.inputs.filter((i) => !i.name.startsWith('past_'));
  for (let l = 0; l < layers; l++) {
    inputs.push({ name: `past_key_${l}`, elemType: ELEM.FLOAT, dims: ['batch', heads, headDim, 'past'] });
    inputs.push({ name: `past_value_${l}`, elemType: ELEM.FLOAT, dims: ['batch', heads, 'past', headDim] });
  }
  const at = [1, 2, 3, 4].map((i) => int64Initializer(`at${i}`, [1], [i]));
  return { ...base, inputs, nodes, initializers: [...(base.initializers ?? []), ...at] };
}

type Layout = (b: number, past: number) => readonly [number[], number[]];

async function stepMs(session: ort.InferenceSession, layout: Layout, b: number, past: number, steps: number): Promise<{ ms: number; logits: Float32Array }> {
  const { heads, headDim, layers } = TINY_LM;
  const feeds: Record<string, ort.Tensor> = {
    input_ids: new ort.Tensor('int64', BigInt64Array.from({ length: b }, (_, i) => BigInt(i % 90)), [b, 1]),
    position_ids: new ort.Tensor('int64', new BigInt64Array(b).fill(BigInt(past)), [b, 1]),
    attention_bias: new ort.Tensor('float32', new Float32Array(b * (past + 1)), [b, 1, 1, past + 1]),
  };
  const [keys, values] = layout(b, past);
  for (let l = 0; l < layers; l++) {
    // The same value everywhere, so both layouts hold the same cache.
    feeds[`past_key_${l}`] = new ort.Tensor('float32', new Float32Array(b * heads * headDim * past).fill(0.01 * (l + 1)), keys);
    feeds[`past_value_${l}`] = new ort.Tensor('float32', new Float32Array(b * heads * headDim * past).fill(-0.02 * (l + 1)), values);
  }
  for (let i = 0; i < 20; i++) await session.run(feeds);
  let out: ort.InferenceSession.ReturnType | undefined;
  const start = performance.now();
  for (let i = 0; i < steps; i++) out = await session.run(feeds);
  return { ms: (performance.now() - start) / steps, logits: out!['logits']!.data as Float32Array };
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { repeats: { type: 'string', default: '5' }, steps: { type: 'string', default: '200' } } });
  const repeats = Number(values.repeats);
  const steps = Number(values.steps);
  const { heads, headDim } = TINY_LM;
  const served: Layout = (b, past) => [[past, b, heads, headDim], [past, b, heads, headDim]];
  const transposed: Layout = (b, past) => [[b, heads, headDim, past], [b, heads, past, headDim]];
  console.log('| batch | past | ORT threads | time-major past ms | pre-transposed past ms | ratio | max logit difference |');
  console.log('| ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const threads of [1, 2]) {
    const options = { intraOpNumThreads: threads, graphOptimizationLevel: 'all', logSeverityLevel: 3 } as const;
    const a = await ort.InferenceSession.create(encodeModel(tinyLm()), options);
    const t = await ort.InferenceSession.create(encodeModel(preTransposedTinyLm()), options);
    for (const [b, past] of [[32, 300], [32, 150], [8, 300], [1, 300]] as const) {
      const as: number[] = [];
      const ts: number[] = [];
      let diff = 0;
      for (let r = 0; r < repeats; r++) {
        const x = await stepMs(a, served, b, past, steps);
        const y = await stepMs(t, transposed, b, past, steps);
        as.push(x.ms);
        ts.push(y.ms);
        for (let i = 0; i < x.logits.length; i++) diff = Math.max(diff, Math.abs(x.logits[i]! - y.logits[i]!));
      }
      console.log(`| ${b} | ${past} | ${threads} | ${median(as).toFixed(3)} | ${median(ts).toFixed(3)} | ${(median(as) / median(ts)).toFixed(2)}x | ${diff.toExponential(1)} |`);
    }
    await a.release();
    await t.release();
  }
}

await main();
