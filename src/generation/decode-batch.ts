/**
 * The running batch of decode steps, kept between steps so that a step's present keys and values are
 * the next step's past as they are: no copy of the batch's cache per step, only the one new column
 * written into each sequence's own entry. Rows are slots: a sequence that ends leaves a dead row,
 * masked and ignored, until the batch is laid out again, which happens only when new sequences join
 * (or dead rows pass a quarter of the batch). Row order and column order do not matter to the model:
 * positions are passed per row, and the attention bias says which columns hold which row's tokens.
 */
import type { Tensor } from '../core/tensor.ts';
import type { KvEntry, KvShape } from './kv-cache.ts';

/** exp(-1e9) is 0 in float32, and unlike -Infinity a fully masked row is no NaN. */
export const MASKED = -1e9;

interface Row<T extends object> {
  member: T | undefined;
  /** Per column of the batch's past: 0 where the column holds this row's token, MASKED elsewhere. */
  bias: Float32Array;
}

function floatTensor(name: string, shape: number[], data: Float32Array): Tensor {
  return { name, datatype: 'FP32', shape, data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) };
}

function floats(t: Tensor): Float32Array {
  const d = t.data as Uint8Array;
  const bytes = d.byteOffset % 4 === 0 ? d : new Uint8Array(d);
  return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
}

export class DecodeBatch<T extends object> {
  readonly #shape: KvShape;
  readonly #capacity: number;
  #rows: Row<T>[] = [];
  /** Per layer the past keys then values, [rows, heads, width, headDim]: the last step's presents. */
  #past: Float32Array[] = [];
  #width = 0;

  /** `capacity`: the most columns a row can need (the model's context). */
  constructor(shape: KvShape, capacity: number) {
    this.#shape = shape;
    this.#capacity = capacity + 1;
  }

  get width(): number {
    return this.#width;
  }

  /** The member of each row (undefined for a dead one), in row order. */
  members(): readonly (T | undefined)[] {
    return this.#rows.map((r) => r.member);
  }

  /** A member left the batch: its row stays, masked, until the next layout. */
  drop(member: T): void {
    const row = this.#rows.find((r) => r.member === member);
    if (row) row.member = undefined;
  }

  /**
   * Makes the batch hold exactly `members` (each with its entry's tokens as its past). Members already
   * in it keep their rows and columns; it is laid out again only when some are new or too many rows
   * are dead.
   */
  arrange(members: readonly T[], entryOf: (m: T) => KvEntry): void {
    const live = new Set(this.#rows.flatMap((r) => (r.member === undefined ? [] : [r.member])));
    const joining = members.filter((m) => !live.has(m));
    const wanted = new Set(members);
    for (const r of this.#rows) if (r.member !== undefined && !wanted.has(r.member)) r.member = undefined;
    const dead = this.#rows.filter((r) => r.member === undefined).length;
    // Columns only accumulate while rows come and go; past a fifth more than the longest row's context (or
    // the model's), every row is laid out afresh from its entry.
    const longest = members.reduce((n, m) => Math.max(n, entryOf(m).tokens.length), 0);
    if (this.#width + 1 >= this.#capacity || this.#width > 1.2 * longest + 8) {
      this.#rows = [];
      this.#layout(members, entryOf);
      return;
    }
    if (joining.length === 0 && dead * 4 <= this.#rows.length) return;
    this.#layout(joining, entryOf);
  }

  #layout(joining: readonly T[], entryOf: (m: T) => KvEntry): void {
    const { layers, heads, headDim } = this.#shape;
    const kept = this.#rows.map((r, i) => ({ r, i })).filter((x) => x.r.member !== undefined);
    let width = kept.length > 0 ? this.#width : 0;
    for (const m of joining) width = Math.max(width, entryOf(m).tokens.length);
    const rows = kept.length + joining.length;
    const stride = heads * width * headDim;
    const past = Array.from({ length: 2 * layers }, () => new Float32Array(rows * stride));
    const oldWidth = this.#width;
    kept.forEach(({ i }, to) => {
      for (let t = 0; t < 2 * layers; t++) {
        const src = this.#past[t]!;
        if (oldWidth === width) past[t]!.set(src.subarray(i * stride, (i + 1) * stride), to * stride);
        else for (let h = 0; h < heads; h++) past[t]!.set(src.subarray(((i * heads + h) * oldWidth) * headDim, ((i * heads + h) * oldWidth + oldWidth) * headDim), (to * heads + h) * width * headDim);
      }
    });
    joining.forEach((m, j) => {
      const e = entryOf(m);
      const to = kept.length + j;
      const held = e.tokens.length;
      for (let l = 0; l < layers; l++) {
        for (const [t, src] of [[2 * l, e.keys[l]!], [2 * l + 1, e.values[l]!]] as const) {
          for (let h = 0; h < heads; h++) past[t]!.set(src.subarray(h * e.capacity * headDim, (h * e.capacity + held) * headDim), (to * heads + h) * width * headDim);
        }
      }
    });
    const next: Row<T>[] = kept.map(({ r }) => r);
    for (const m of joining) {
      const bias = new Float32Array(this.#capacity).fill(MASKED);
      bias.fill(0, 0, entryOf(m).tokens.length);
      next.push({ member: m, bias });
    }
    this.#rows = next;
    this.#past = past;
    this.#width = width;
  }

  /** The step's inputs: one token per row (dead rows feed token 0 and see only themselves). */
  inputs(token: (m: T) => number, position: (m: T) => number): Tensor[] {
    const { layers, heads, headDim } = this.#shape;
    const b = this.#rows.length;
    const w = this.#width;
    const ids = new BigInt64Array(b);
    const positions = new BigInt64Array(b);
    const bias = new Float32Array(b * (w + 1));
    this.#rows.forEach((r, i) => {
      if (r.member !== undefined) {
        ids[i] = BigInt(token(r.member));
        positions[i] = BigInt(position(r.member));
        bias.set(r.bias.subarray(0, w), i * (w + 1));
      } else bias.fill(MASKED, i * (w + 1), i * (w + 1) + w);
      bias[i * (w + 1) + w] = 0;
    });
    const tensors: Tensor[] = [
      { name: 'input_ids', datatype: 'INT64', shape: [b, 1], data: new Uint8Array(ids.buffer) },
      { name: 'position_ids', datatype: 'INT64', shape: [b, 1], data: new Uint8Array(positions.buffer) },
      floatTensor('attention_bias', [b, 1, 1, w + 1], bias),
    ];
    for (let l = 0; l < layers; l++) {
      tensors.push(floatTensor(`past_key_${l}`, [b, heads, w, headDim], this.#past[2 * l]!), floatTensor(`past_value_${l}`, [b, heads, w, headDim], this.#past[2 * l + 1]!));
    }
    return tensors;
  }

  /**
   * Takes the step's outputs (logits, then each layer's present key and value): the presents become
   * the past, and each live row's new column is appended to its entry (`entryOf`), with its token.
   * Returns each row's logits (undefined for dead rows).
   */
  advance(outputs: readonly Tensor[], entryOf: (m: T) => KvEntry, token: (m: T) => number, vocab: number): (Float32Array | undefined)[] {
    const { layers, heads, headDim } = this.#shape;
    const w = this.#width;
    const logits = floats(outputs[0]!);
    this.#past = outputs.slice(1, 1 + 2 * layers).map(floats);
    const result = this.#rows.map((r, i) => {
      r.bias[w] = r.member === undefined ? MASKED : 0;
      if (r.member === undefined) return undefined;
      const e = entryOf(r.member);
      const held = e.tokens.length;
      for (let l = 0; l < layers; l++) {
        for (const [t, dst] of [[2 * l, e.keys[l]!], [2 * l + 1, e.values[l]!]] as const) {
          const src = this.#past[t]!;
          for (let h = 0; h < heads; h++) {
            const from = ((i * heads + h) * (w + 1) + w) * headDim;
            dst.set(src.subarray(from, from + headDim), (h * e.capacity + held) * headDim);
          }
        }
      }
      e.tokens.push(token(r.member));
      return logits.slice(i * vocab, (i + 1) * vocab);
    });
    this.#width = w + 1;
    return result;
  }

  /** Forgets everything (the generator closes). */
  clear(): void {
    this.#rows = [];
    this.#past = [];
    this.#width = 0;
  }
}
