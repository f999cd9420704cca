import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import type { SluiceError } from '../../src/core/errors.ts';
import type { ModelConfig } from '../../src/core/model.ts';
import { validateRequest } from '../../src/scheduler/validate.ts';
import { int32Tensor, sampleConfig, simpleRequest } from './fixtures.ts';

let simple: ModelConfig;
before(async () => {
  simple = await sampleConfig('simple');
});

function rejects(fn: () => unknown, code: string, message: RegExp): void {
  assert.throws(fn, (e: SluiceError) => {
    assert.equal(e.code, code);
    assert.equal(e.kind, 'INVALID_ARG');
    assert.match(e.message, message);
    return true;
  });
}

void test('a valid request yields its rows, shape class, default level and every output', () => {
  const plan = validateRequest(simple, simpleRequest(1, 3));
  assert.equal(plan.rows, 3);
  assert.equal(plan.level, 1);
  assert.deepEqual(plan.outputs, ['OUTPUT0', 'OUTPUT1']);
  assert.equal(plan.allOutputs, true);
  assert.equal(plan.shapeKey, validateRequest(simple, simpleRequest(2, 7)).shapeKey, 'the batch dim is not part of the shape class');
});

void test('requested outputs are kept in the order asked, and only those', () => {
  const plan = validateRequest(simple, simpleRequest(1, 1, { outputs: ['OUTPUT1'] }));
  assert.deepEqual(plan.outputs, ['OUTPUT1']);
  assert.equal(plan.allOutputs, false);
});

void test('unknown, missing and duplicated inputs are named', () => {
  const r = simpleRequest(1);
  rejects(() => validateRequest(simple, { ...r, inputs: [...r.inputs, int32Tensor('INPUT9', 1, 16, () => 0)] }), 'SLUICE_UNKNOWN_INPUT', /unexpected inference input 'INPUT9' for model 'simple'/);
  rejects(() => validateRequest(simple, { ...r, inputs: [r.inputs[0]!] }), 'SLUICE_MISSING_INPUT', /expected 2 inputs but got 1 inputs for model 'simple'; missing input 'INPUT1'/);
  rejects(() => validateRequest(simple, { ...r, inputs: [r.inputs[0]!, r.inputs[0]!] }), 'SLUICE_DUPLICATE_INPUT', /'INPUT0' appears more than once/);
});

void test('datatype, rank and fixed dims are checked against the config', () => {
  const r = simpleRequest(1);
  const fp32 = { ...r.inputs[0]!, datatype: 'FP32' as const };
  rejects(() => validateRequest(simple, { ...r, inputs: [fp32, r.inputs[1]!] }), 'SLUICE_DATATYPE_MISMATCH', /'INPUT0' data-type is 'FP32', but model 'simple' expects 'INT32'/);
  rejects(() => validateRequest(simple, { ...r, inputs: [int32Tensor('INPUT0', 1, 15, () => 0), r.inputs[1]!] }), 'SLUICE_SHAPE_MISMATCH', /Expected \[-1,16\], got \[1,15\]/);
  const flat = { ...r.inputs[0]!, shape: [16] };
  rejects(() => validateRequest(simple, { ...r, inputs: [flat, r.inputs[1]!] }), 'SLUICE_SHAPE_MISMATCH', /Expected \[-1,16\], got \[16\]/);
});

void test('the batch dim must be 1..max batch size and equal across inputs', () => {
  rejects(() => validateRequest(simple, simpleRequest(1, 33)), 'SLUICE_BATCH_TOO_LARGE', /batch-size must be <= 32 for 'simple', got 33/);
  const r = simpleRequest(1, 2);
  rejects(() => validateRequest(simple, { ...r, inputs: [r.inputs[0]!, int32Tensor('INPUT1', 3, 16, () => 0)] }), 'SLUICE_INVALID_SHAPE', /batch size 3 differs from the batch size 2 of input 'INPUT0'/);
  rejects(() => validateRequest(simple, { ...r, inputs: [int32Tensor('INPUT0', 0, 16, () => 0), int32Tensor('INPUT1', 0, 16, () => 0)] }), 'SLUICE_INVALID_SHAPE', /at least 1, got 0/);
});

void test('padding to allowed sizes caps the batch size a request may carry', async () => {
  const padded = await sampleConfig('simple', { allowedBatchSizes: [4, 8] });
  rejects(() => validateRequest(padded, simpleRequest(1, 9)), 'SLUICE_BATCH_TOO_LARGE', /must be <= 8/);
  assert.equal(validateRequest(padded, simpleRequest(1, 8)).rows, 8);
});

void test('data that does not fill the claimed shape is refused (the batcher cuts rows by it)', () => {
  const r = simpleRequest(1, 2);
  const short = { ...r.inputs[0]!, data: new Uint8Array(100) };
  rejects(() => validateRequest(simple, { ...r, inputs: [short, r.inputs[1]!] }), 'SLUICE_DATA_SIZE_MISMATCH', /'INPUT0'.*need 128 bytes, got 100 bytes/);
});

void test('unknown and duplicated requested outputs are refused', () => {
  rejects(() => validateRequest(simple, simpleRequest(1, 1, { outputs: ['OUTPUT7'] })), 'SLUICE_UNKNOWN_OUTPUT', /unexpected inference output 'OUTPUT7' for model 'simple'/);
  rejects(() => validateRequest(simple, simpleRequest(1, 1, { outputs: ['OUTPUT0', 'OUTPUT0'] })), 'SLUICE_INVALID_REQUEST', /'OUTPUT0' is requested more than once/);
});

void test('priority must be 0 (default) or one of the levels', async () => {
  rejects(() => validateRequest(simple, simpleRequest(1, 1, { priority: 2 })), 'SLUICE_INVALID_PRIORITY', /invalid priority 2 for model 'simple': priority levels are 1..1/);
  const leveled = await sampleConfig('simple', { priorityLevels: 3, defaultPriorityLevel: 2 });
  assert.equal(validateRequest(leveled, simpleRequest(1, 1, { priority: 0 })).level, 2);
  assert.equal(validateRequest(leveled, simpleRequest(1, 1, { priority: 3 })).level, 3);
  rejects(() => validateRequest(leveled, simpleRequest(1, 1, { priority: -1 })), 'SLUICE_INVALID_PRIORITY', /-1/);
  rejects(() => validateRequest(leveled, simpleRequest(1, 1, { priority: 1.5 })), 'SLUICE_INVALID_PRIORITY', /1.5/);
});

void test('a model without a batch dim takes shapes as the config states them', async () => {
  const unbatched = await sampleConfig('simple', {}, { maxBatchSize: 0, inputs: [{ name: 'INPUT0', datatype: 'INT32', dims: [1, 16] }, { name: 'INPUT1', datatype: 'INT32', dims: [1, 16] }] });
  const plan = validateRequest(unbatched, simpleRequest(1, 1));
  assert.equal(plan.rows, 1);
  rejects(() => validateRequest(unbatched, simpleRequest(1, 2)), 'SLUICE_SHAPE_MISMATCH', /Expected \[1,16\], got \[2,16\]/);
});
