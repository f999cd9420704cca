/**
 * The tensors the sequence batcher adds to a batch: one row per member for each control input
 * (START, END, READY, CORRID) and each implicit state, and the state rows it takes back out.
 */
import { elementSize } from '../core/datatypes.ts';
import type { SequenceControl, SequenceState } from '../core/model.ts';
import type { Tensor } from '../core/tensor.ts';

/** What the scheduler knows of one row's sequence when it batches it. */
export interface SequenceRow {
  readonly id: string;
  readonly numeric: boolean;
  readonly start: boolean;
  readonly end: boolean;
  /** The state carried from the sequence's previous request, per state input (absent: zeros). */
  readonly state: ReadonlyMap<string, Uint8Array> | undefined;
}

function writeNumber(view: DataView, at: number, datatype: string, v: number | bigint): void {
  switch (datatype) {
    case 'INT32': return view.setInt32(at, Number(v), true);
    case 'UINT32': return view.setUint32(at, Number(BigInt.asUintN(32, BigInt(v))), true);
    case 'FP32': return view.setFloat32(at, Number(v), true);
    case 'BOOL': return view.setUint8(at, Number(v) !== 0 ? 1 : 0);
    case 'INT64': return view.setBigInt64(at, BigInt.asIntN(64, BigInt(v)), true);
    default: return view.setBigUint64(at, BigInt.asUintN(64, BigInt(v)), true);
  }
}

function controlTensor(c: SequenceControl, rows: readonly SequenceRow[]): Tensor {
  const shape = [rows.length, 1];
  if (c.datatype === 'BYTES') return { name: c.tensor, datatype: 'BYTES', shape, data: rows.map((r) => new TextEncoder().encode(r.id)) };
  const size = elementSize(c.datatype);
  const data = new Uint8Array(rows.length * size);
  const view = new DataView(data.buffer);
  rows.forEach((r, i) => {
    // A string ID never reaches a numeric CORRID: the sequence batcher refuses it.
    const value = c.kind === 'CORRID' ? (r.numeric ? BigInt(r.id) : 0n) : c.falseTrue[c.kind === 'START' ? Number(r.start) : c.kind === 'END' ? Number(r.end) : 1]!;
    writeNumber(view, i * size, c.datatype, value);
  });
  return { name: c.tensor, datatype: c.datatype, shape, data };
}

/** Bytes of one row of a state. */
export function stateRowBytes(s: SequenceState): number {
  return s.dims.reduce((a, b) => a * b, 1) * elementSize(s.datatype);
}

function stateTensor(s: SequenceState, rows: readonly SequenceRow[]): Tensor {
  const row = stateRowBytes(s);
  const data = new Uint8Array(rows.length * row);
  rows.forEach((r, i) => {
    const carried = r.start ? undefined : r.state?.get(s.inputName);
    if (carried) data.set(carried, i * row);
  });
  return { name: s.inputName, datatype: s.datatype, shape: [rows.length, ...s.dims], data };
}

/** The control and state inputs of a batch whose rows are these sequences, in row order. */
export function sequenceInputs(controls: readonly SequenceControl[], states: readonly SequenceState[], rows: readonly SequenceRow[]): Tensor[] {
  return [...controls.map((c) => controlTensor(c, rows)), ...states.map((s) => stateTensor(s, rows))];
}

/** Each row's new state (a copy, per state input) from the batch's state outputs. */
export function takeStates(states: readonly SequenceState[], outputs: readonly Tensor[], rows: number): Map<string, Uint8Array>[] {
  const out = Array.from({ length: rows }, () => new Map<string, Uint8Array>());
  for (const s of states) {
    const t = outputs.find((o) => o.name === s.outputName);
    if (!t || !(t.data instanceof Uint8Array)) continue;
    const size = stateRowBytes(s);
    // A copy: the batch's answer may be one buffer shared by every row (a worker's decoded reply).
    for (let i = 0; i < rows; i++) out[i]!.set(s.inputName, new Uint8Array(t.data.subarray(i * size, (i + 1) * size)));
  }
  return out;
}
