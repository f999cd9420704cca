import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Tensor } from '../../src/core/tensor.ts';
import { concatInputs, paddedSize, splitOutputs, type BatchMember } from '../../src/scheduler/tensors.ts';
import { int32Tensor, int32s } from './fixtures.ts';

const enc = new TextEncoder();
const dec = new TextDecoder();

function member(rows: number, seed: number): BatchMember {
  return { inputs: [int32Tensor('X', rows, 2, (r, c) => seed * 100 + r * 2 + c)], rows, outputs: ['X'] };
}

void test('concatenates fixed-size inputs along dim 0 and pads with zero rows', () => {
  const [x] = concatInputs([member(1, 1), member(2, 2)], 4);
  assert.deepEqual(x!.shape, [4, 2]);
  assert.deepEqual(int32s(x!), [100, 101, 200, 201, 202, 203, 0, 0]);
});

void test('concatenates BYTES inputs element-wise and pads with empty strings', () => {
  const t = (rows: string[]): Tensor => ({ name: 'S', datatype: 'BYTES', shape: [rows.length, 1], data: rows.map((s) => enc.encode(s)) });
  const [s] = concatInputs([{ inputs: [t(['a'])], rows: 1, outputs: [] }, { inputs: [t(['bc', 'd'])], rows: 2, outputs: [] }], 4);
  assert.deepEqual(s!.shape, [4, 1]);
  assert.deepEqual((s!.data as Uint8Array[]).map((e) => dec.decode(e)), ['a', 'bc', 'd', '']);
});

void test('splits outputs by row offset, drops padded rows, and returns only what each member asked for', () => {
  const batch = int32Tensor('Y', 4, 2, (r, c) => r * 10 + c);
  const other = int32Tensor('Z', 4, 1, (r) => -r);
  const members: BatchMember[] = [
    { inputs: [], rows: 1, outputs: ['Y'] },
    { inputs: [], rows: 2, outputs: ['Z', 'Y'] },
  ];
  const [a, b] = splitOutputs('m', [batch, other], members, 4);
  assert.deepEqual(a!.map((t) => t.name), ['Y']);
  assert.deepEqual(a![0]!.shape, [1, 2]);
  assert.deepEqual(int32s(a![0]!), [0, 1]);
  assert.deepEqual(b!.map((t) => t.name), ['Z', 'Y']);
  assert.deepEqual(int32s(b![0]!), [-1, -2]);
  assert.deepEqual(int32s(b![1]!), [10, 11, 20, 21]);
  // Copies: a member's bytes are not a window onto the whole batch.
  assert.equal((b![1]!.data as Uint8Array).buffer.byteLength, 16);
});

void test('an output whose leading dim is not the batch rows is an INTERNAL error for the batch', () => {
  const wrong = int32Tensor('Y', 1, 2, () => 0);
  assert.throws(() => splitOutputs('m', [wrong], [{ inputs: [], rows: 2, outputs: ['Y'] }], 2), (e: Error & { kind?: string }) => {
    assert.equal(e.kind, 'INTERNAL');
    assert.match(e.message, /leading dimension is not the batch's 2 rows/);
    return true;
  });
});

void test('a missing output or data not matching its shape is an INTERNAL error', () => {
  assert.throws(() => splitOutputs('m', [], [{ inputs: [], rows: 1, outputs: ['Y'] }], 1), /did not produce output 'Y'/);
  const short: Tensor = { name: 'Y', datatype: 'INT32', shape: [2, 2], data: new Uint8Array(12) };
  assert.throws(() => splitOutputs('m', [short], [{ inputs: [], rows: 2, outputs: ['Y'] }], 2), /does not match its shape/);
});

void test('paddedSize picks the smallest allowed size that holds the rows', () => {
  assert.equal(paddedSize(3, [8, 2, 4]), 4);
  assert.equal(paddedSize(4, [8, 2, 4]), 4);
  assert.equal(paddedSize(3, []), 3);
  assert.equal(paddedSize(9, [8]), 9);
});

void test('splitting a Buffer-backed output (as a worker answer decodes) copies only each member\'s rows', () => {
  const whole = Buffer.alloc(64 + 16);
  const view = whole.subarray(64);
  new Int32Array(whole.buffer, whole.byteOffset + 64, 4).set([1, 2, 3, 4]);
  const out: Tensor = { name: 'Y', datatype: 'INT32', shape: [2, 2], data: view };
  const [a, b] = splitOutputs('m', [out], [{ inputs: [], rows: 1, outputs: ['Y'] }, { inputs: [], rows: 1, outputs: ['Y'] }], 2);
  for (const [share, want] of [[a!, [1, 2]], [b!, [3, 4]]] as const) {
    const data = share[0]!.data as Uint8Array;
    assert.equal(data.buffer.byteLength, 8, 'its own memory, not a window onto the response');
    assert.deepEqual([...new Int32Array(data.buffer)], want);
  }
});
