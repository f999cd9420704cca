// A plain-JS forward pass of tiny_lm (no KV cache, no ONNX Runtime): the whole context recomputed for
// every token, in float64. Generation through sluice must give the same tokens at temperature 0.
import { TINY_LM, tinyLmWeights } from '../../models/tiny-lm.ts';

type Vec = Float64Array;

export class TinyLmReference {
  readonly #w = tinyLmWeights().tensors;

  #get(name: string): Float32Array {
    const t = this.#w.get(name);
    if (!t) throw new Error(`no weight ${name}`);
    return t.data;
  }

  #linear(x: Vec, w: string, b: string | undefined, inDim: number, outDim: number): Vec {
    const W = this.#get(w);
    const B = b === undefined ? undefined : this.#get(b);
    const y = new Float64Array(outDim);
    for (let o = 0; o < outDim; o++) {
      let s = B ? B[o]! : 0;
      for (let i = 0; i < inDim; i++) s += x[i]! * W[i * outDim + o]!;
      y[o] = s;
    }
    return y;
  }

  #layerNorm(x: Vec, g: string, b: string): Vec {
    const G = this.#get(g);
    const B = this.#get(b);
    let mean = 0;
    for (const v of x) mean += v;
    mean /= x.length;
    let variance = 0;
    for (const v of x) variance += (v - mean) ** 2;
    variance /= x.length;
    const inv = 1 / Math.sqrt(variance + 1e-5);
    return x.map((v, i) => (v - mean) * inv * G[i]! + B[i]!);
  }

  /** Logits after the last token of `tokens`. */
  logits(tokens: readonly number[]): Vec {
    const { dModel: d, heads, headDim, layers, ffn, vocab } = TINY_LM;
    const tok = this.#get('tok_emb');
    const pos = this.#get('pos_emb');
    let xs: Vec[] = tokens.map((t, p) => Float64Array.from({ length: d }, (_, i) => tok[t * d + i]! + pos[p * d + i]!));
    for (let l = 0; l < layers; l++) {
      const h = xs.map((x) => this.#layerNorm(x, `l${l}_ln1_g`, `l${l}_ln1_b`));
      const q = h.map((x) => this.#linear(x, `l${l}_wq`, `l${l}_bq`, d, d));
      const k = h.map((x) => this.#linear(x, `l${l}_wk`, `l${l}_bk`, d, d));
      const v = h.map((x) => this.#linear(x, `l${l}_wv`, `l${l}_bv`, d, d));
      xs = xs.map((x, t) => {
        const o = new Float64Array(d);
        for (let hd = 0; hd < heads; hd++) {
          const scores: number[] = [];
          for (let s = 0; s <= t; s++) {
            let dot = 0;
            for (let i = 0; i < headDim; i++) dot += q[t]![hd * headDim + i]! * k[s]![hd * headDim + i]!;
            scores.push(dot / Math.sqrt(headDim));
          }
          const max = Math.max(...scores);
          const e = scores.map((s) => Math.exp(s - max));
          const sum = e.reduce((a, b) => a + b, 0);
          for (let s = 0; s <= t; s++) for (let i = 0; i < headDim; i++) o[hd * headDim + i]! += (e[s]! / sum) * v[s]![hd * headDim + i]!;
        }
        const a = this.#linear(o, `l${l}_wo`, `l${l}_bo`, d, d);
        const x1 = x.map((val, i) => val + a[i]!);
        const h2 = this.#layerNorm(x1, `l${l}_ln2_g`, `l${l}_ln2_b`);
        const f = this.#linear(h2, `l${l}_w1`, `l${l}_b1`, d, ffn).map((val) => Math.max(0, val));
        const m = this.#linear(f, `l${l}_w2`, `l${l}_b2`, ffn, d);
        return x1.map((val, i) => val + m[i]!);
      });
    }
    const last = this.#layerNorm(xs[xs.length - 1]!, 'lnf_g', 'lnf_b');
    return this.#linear(last, 'w_out', undefined, d, vocab);
  }

  /** Greedy generation: `count` tokens after `prompt` (stopping early at `eos` when given). */
  greedy(prompt: readonly number[], count: number, eos?: number): number[] {
    const context = [...prompt];
    const out: number[] = [];
    for (let i = 0; i < count; i++) {
      const logits = this.logits(context);
      let best = 0;
      for (let j = 1; j < logits.length; j++) if (logits[j]! > logits[best]!) best = j;
      if (best === eos) break;
      out.push(best);
      context.push(best);
    }
    return out;
  }
}
