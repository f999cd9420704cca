import { elementSize } from '../core/datatypes.ts';
import { Internal } from '../core/errors.ts';
import { elementCount, isBytesData, type Tensor } from '../core/tensor.ts';

/** One member of a batch as the tensor code sees it: its inputs, rows, and the outputs it wants back. */
export interface BatchMember {
  readonly inputs: readonly Tensor[];
  readonly rows: number;
  readonly outputs: readonly string[];
}

const EMPTY = new Uint8Array(0);

/**
 * A copy of bytes [from, to). Not `.slice()`: on a Node Buffer (what a worker's answer decodes to) that
 * returns a view sharing the whole response's memory, not a copy.
 */
function copyBytes(data: Uint8Array, from: number, to: number): Uint8Array {
  const out = new Uint8Array(to - from);
  out.set(data.subarray(from, to));
  return out;
}

function byName(tensors: readonly Tensor[], name: string): Tensor | undefined {
  for (const t of tensors) if (t.name === name) return t;
  return undefined;
}

/**
 * Concatenates the members' inputs along dim 0, one tensor per input name (the order of the first
 * member's inputs), then pads with zero rows (empty strings for BYTES) up to `paddedRows`. Members were
 * grouped by shape class, so every member has the same inputs with the same non-batch dims.
 */
export function concatInputs(members: readonly BatchMember[], paddedRows: number): Tensor[] {
  const first = members[0];
  if (!first) throw Internal('a batch needs at least one request');
  if (passesThrough(members.length, first.rows, paddedRows)) return [...first.inputs];
  const rows = members.reduce((n, m) => n + m.rows, 0);
  return first.inputs.map((head) => {
    const parts = members.map((m) => {
      const t = byName(m.inputs, head.name);
      if (!t) throw Internal(`input '${head.name}' is missing from a batched request`);
      return t;
    });
    const shape = [paddedRows, ...head.shape.slice(1)];
    if (isBytesData(head.data)) {
      const perRow = rows === 0 ? 0 : parts.reduce((n, t) => n + (t.data as readonly Uint8Array[]).length, 0) / rows;
      const data: Uint8Array[] = [];
      for (const t of parts) for (const e of t.data as readonly Uint8Array[]) data.push(e);
      for (let i = data.length; i < paddedRows * perRow; i++) data.push(EMPTY);
      return { name: head.name, datatype: head.datatype, shape, data };
    }
    let bytes = 0;
    for (const t of parts) bytes += (t.data as Uint8Array).byteLength;
    // Zero-filled on allocation, so padded rows need no second pass.
    const data = new Uint8Array(rows === 0 ? 0 : (bytes / rows) * paddedRows);
    let off = 0;
    for (const t of parts) {
      data.set(t.data as Uint8Array, off);
      off += (t.data as Uint8Array).byteLength;
    }
    return { name: head.name, datatype: head.datatype, shape, data };
  });
}

/**
 * Splits a batch's outputs back to its members by row offset. Each member gets copies of exactly its
 * rows of exactly the outputs it asked for, so no request can see another's data. Throws Internal when
 * an output is missing, lacks the batch dimension, or its data does not match its shape: then no
 * member's share can be trusted.
 */
export function splitOutputs(model: string, outputs: readonly Tensor[], members: readonly BatchMember[], batchRows: number): Tensor[][] {
  const checked = new Map<string, { tensor: Tensor; perRow: number }>();
  const wanted = new Set<string>();
  for (const m of members) for (const name of m.outputs) wanted.add(name);
  for (const name of wanted) {
    const t = byName(outputs, name);
    if (!t) throw Internal(`model '${model}' did not produce output '${name}'`);
    if (t.shape[0] !== batchRows) {
      throw Internal(`output '${name}' of model '${model}' has shape [${t.shape.join(',')}], whose leading dimension is not the batch's ${batchRows} rows`);
    }
    const count = elementCount(t.shape);
    const bytes = isBytesData(t.data);
    const have = bytes ? t.data.length : t.data.byteLength;
    if (count === undefined || have !== count * (bytes ? 1 : elementSize(t.datatype))) {
      throw Internal(`output '${name}' of model '${model}' holds data that does not match its shape [${t.shape.join(',')}]`);
    }
    checked.set(name, { tensor: t, perRow: batchRows === 0 ? 0 : have / batchRows });
  }
  let offset = 0;
  return members.map((m) => {
    const start = offset;
    offset += m.rows;
    return m.outputs.map((name) => {
      const { tensor, perRow } = checked.get(name)!;
      const shape = [m.rows, ...tensor.shape.slice(1)];
      const from = start * perRow;
      const to = (start + m.rows) * perRow;
      return { name, datatype: tensor.datatype, shape, data: isBytesData(tensor.data) ? tensor.data.slice(from, to) : copyBytes(tensor.data, from, to) };
    });
  });
}

/** Picks the requested outputs, in order, from an unbatched run (a model without a batch dimension). */
export function pickOutputs(model: string, outputs: readonly Tensor[], names: readonly string[]): Tensor[] {
  return names.map((name) => {
    const t = byName(outputs, name);
    if (!t) throw Internal(`model '${model}' did not produce output '${name}'`);
    return t;
  });
}

/** The smallest allowed size that holds `rows`, or `rows` itself when padding is off or none does. */
export function paddedSize(rows: number, allowed: readonly number[]): number {
  let best = Infinity;
  for (const s of allowed) if (s >= rows && s < best) best = s;
  return best === Infinity ? rows : best;
}

/** Whether concatInputs hands back the one request's own tensors (one request, no padding) instead of writing new ones. */
export function passesThrough(requests: number, rows: number, padded: number): boolean {
  return requests === 1 && rows === padded;
}
