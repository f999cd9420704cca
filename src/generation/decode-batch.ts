/**
 * The running batch of decode steps, kept between steps in the model's time-major layout
 * ([columns, slots, heads, head_dim] per layer, keys and values): a step's past is a view of these
 * buffers as they are, and its new keys and values (one column) are appended in place, so a step copies
 * one column per sequence, never the batch's whole cache. Rows are slots: a sequence that ends leaves
 * its slot masked, a joining sequence takes a free slot and has its cached tokens written into it, and
 * the batch is laid out afresh (compacted) only when it runs out of slots or columns, or when columns
 * that no live row uses pass a fifth of the longest context. Row and column order do not matter to the
 * model: positions are passed per row, and the attention bias says which columns hold a row's tokens.
 */
import type { Tensor } from '../core/tensor.ts';
import type { KvEntry, KvShape } from './kv-cache.ts';

/** exp(-1e9) is 0 in float32, and unlike -Infinity a fully masked row is no NaN. */
export const MASKED = -1e9;

function floatTensor(name: string, shape: number[], data: Float32Array): Tensor {
  return { name, datatype: 'FP32', shape, data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) };
}

export function floats(t: Tensor): Float32Array {
  const d = t.data as Uint8Array;
  const bytes = d.byteOffset % 4 === 0 ? d : new Uint8Array(d);
  return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
}

export class DecodeBatch<T extends object> {
  readonly #shape: KvShape;
  /** Floats of one token's keys (or values) in one layer. */
  readonly #token: number;
  /** The most columns a layout may have: half again the model's context. */
  readonly #maxColumns: number;
  #slots: (T | undefined)[] = [];
  /** Per slot and column: 0 where the column holds the slot's token, MASKED elsewhere. */
  #bias: Float32Array[] = [];
  /** Per layer the keys then the values, [columns, slots, heads, head_dim]. */
  #past: Float32Array[] = [];
  #width = 0;
  #columns = 0;

  readonly #maxSlots: number;

  /** `context`: the most tokens one sequence holds (the model's maxContext); `maxSlots`: the most sequences at once. */
  constructor(shape: KvShape, context: number, maxSlots: number) {
    this.#shape = shape;
    this.#maxSlots = maxSlots;
    this.#token = shape.heads * shape.headDim;
    this.#maxColumns = Math.ceil(context * 1.5) + 1;
  }

  get width(): number {
    return this.#width;
  }

  /** The member of each slot (undefined for a free one), in row order. */
  members(): readonly (T | undefined)[] {
    return this.#slots;
  }

  /** A member left the batch: its slot is free, masked, until a sequence joins into it. */
  drop(member: T): void {
    const at = this.#slots.indexOf(member);
    if (at >= 0) this.#slots[at] = undefined;
  }

  /** Makes the batch hold exactly `members`, each with its entry's tokens as its past. */
  arrange(members: readonly T[], entryOf: (m: T) => KvEntry): void {
    const wanted = new Set(members);
    this.#slots = this.#slots.map((m) => (m !== undefined && wanted.has(m) ? m : undefined));
    const live = new Set(this.#slots);
    const joining = members.filter((m) => !live.has(m));
    const free = this.#slots.filter((m) => m === undefined).length;
    const longest = members.reduce((n, m) => Math.max(n, entryOf(m).tokens.length), 0);
    const joinWidth = joining.reduce((n, m) => Math.max(n, entryOf(m).tokens.length), this.#width);
    const sparse = this.#width > 1.2 * longest + 8;
    if (this.#slots.length === 0 || free < joining.length || joinWidth + 1 > this.#columns || sparse) return this.#layout(members, entryOf);
    for (const m of joining) this.#place(this.#slots.indexOf(undefined), m, entryOf(m));
    this.#width = joinWidth;
  }

  /** Writes a joining sequence's cached tokens into columns [0, held) of a free slot. */
  #place(slot: number, m: T, e: KvEntry): void {
    const b = this.#slots.length;
    const token = this.#token;
    const held = e.tokens.length;
    for (let l = 0; l < this.#shape.layers; l++) {
      const keys = this.#past[2 * l]!;
      const values = this.#past[2 * l + 1]!;
      for (let t = 0; t < held; t++) {
        keys.set(e.keys[l]!.subarray(t * token, (t + 1) * token), (t * b + slot) * token);
        values.set(e.values[l]!.subarray(t * token, (t + 1) * token), (t * b + slot) * token);
      }
    }
    const bias = this.#bias[slot]!;
    bias.fill(MASKED);
    bias.fill(0, 0, held);
    this.#slots[slot] = m;
  }

  /** A fresh, compact layout: a quarter more slots than members (room to join, up to the most sequences), columns for the longest sequence and more. */
  #layout(members: readonly T[], entryOf: (m: T) => KvEntry): void {
    const slots = Math.min(this.#maxSlots, members.length + Math.max(1, Math.ceil(members.length / 4)));
    const longest = members.reduce((n, m) => Math.max(n, entryOf(m).capacity), 0);
    this.#columns = Math.min(this.#maxColumns, Math.ceil(longest * 1.25) + 16);
    this.#slots = new Array<T | undefined>(slots).fill(undefined);
    this.#bias = Array.from({ length: slots }, () => new Float32Array(this.#columns + 1).fill(MASKED));
    this.#past = Array.from({ length: 2 * this.#shape.layers }, () => new Float32Array(this.#columns * slots * this.#token));
    members.forEach((m, i) => this.#place(i, m, entryOf(m)));
    this.#width = members.reduce((n, m) => Math.max(n, entryOf(m).tokens.length), 0);
  }

  /** The step's inputs: one token per slot (free slots feed token 0 and see only themselves). */
  inputs(token: (m: T) => number, position: (m: T) => number): Tensor[] {
    const { layers, heads, headDim } = this.#shape;
    const b = this.#slots.length;
    const w = this.#width;
    const ids = new BigInt64Array(b);
    const positions = new BigInt64Array(b);
    const bias = new Float32Array(b * (w + 1));
    this.#slots.forEach((m, i) => {
      if (m !== undefined) {
        ids[i] = BigInt(token(m));
        positions[i] = BigInt(position(m));
        bias.set(this.#bias[i]!.subarray(0, w), i * (w + 1));
      } else bias.fill(MASKED, i * (w + 1), i * (w + 1) + w);
      bias[i * (w + 1) + w] = 0;
    });
    const tensors: Tensor[] = [
      { name: 'input_ids', datatype: 'INT64', shape: [b, 1], data: new Uint8Array(ids.buffer) },
      { name: 'position_ids', datatype: 'INT64', shape: [b, 1], data: new Uint8Array(positions.buffer) },
      floatTensor('attention_bias', [b, 1, 1, w + 1], bias),
    ];
    const n = w * b * this.#token;
    for (let l = 0; l < layers; l++) {
      tensors.push(floatTensor(`past_key_${l}`, [w, b, heads, headDim], this.#past[2 * l]!.subarray(0, n)), floatTensor(`past_value_${l}`, [w, b, heads, headDim], this.#past[2 * l + 1]!.subarray(0, n)));
    }
    return tensors;
  }

  /**
   * Takes the step's outputs (logits, then each layer's new key and value, [1, slots, heads, head_dim]):
   * the new column is appended to the batch's buffers and to each live member's entry, with its token.
   * Returns each slot's logits (undefined for free slots).
   */
  advance(outputs: readonly Tensor[], entryOf: (m: T) => KvEntry, token: (m: T) => number, vocab: number): (Float32Array | undefined)[] {
    const b = this.#slots.length;
    const w = this.#width;
    const size = this.#token;
    const logits = floats(outputs[0]!);
    for (let t = 0; t < 2 * this.#shape.layers; t++) {
      const column = floats(outputs[1 + t]!);
      this.#past[t]!.set(column.subarray(0, b * size), w * b * size);
      this.#slots.forEach((m, i) => {
        if (m === undefined) return;
        const e = entryOf(m);
        (t % 2 === 0 ? e.keys : e.values)[t >> 1]!.set(column.subarray(i * size, (i + 1) * size), e.tokens.length * size);
      });
    }
    const result = this.#slots.map((m, i) => {
      this.#bias[i]![w] = m === undefined ? MASKED : 0;
      if (m === undefined) return undefined;
      entryOf(m).tokens.push(token(m));
      return logits.slice(i * vocab, (i + 1) * vocab);
    });
    this.#width = w + 1;
    return result;
  }

  /** Forgets everything (the generator closes). */
  clear(): void {
    this.#slots = [];
    this.#bias = [];
    this.#past = [];
    this.#width = 0;
    this.#columns = 0;
  }
}
