import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BatchCostModel, COST_STALE_MS } from '../../src/balancer/cost-model.ts';

void test('separates the fixed cost per batch from the cost per row when batch sizes vary', () => {
  const m = new BatchCostModel();
  // seconds = 0.002 + 0.0005 * rows
  for (let i = 0; i < 40; i++) {
    const rows = [1, 8, 16, 32][i % 4]!;
    m.observe(rows, 0.002 + 0.0005 * rows, i);
  }
  const c = m.cost(40)!;
  assert.ok(Math.abs(c.perBatch - 0.002) < 1e-6, `perBatch ${c.perBatch}`);
  assert.ok(Math.abs(c.perRow - 0.0005) < 1e-7, `perRow ${c.perRow}`);
});

void test('with one batch size it charges the whole time per batch', () => {
  const m = new BatchCostModel();
  for (let i = 0; i < 5; i++) m.observe(8, 0.008, i);
  assert.deepEqual(m.cost(5), { perRow: 0, perBatch: 0.008 });
});

void test('follows a worker that slows down within a few batches', () => {
  const m = new BatchCostModel();
  for (let i = 0; i < 20; i++) m.observe(8, 0.008, i);
  for (let i = 20; i < 35; i++) m.observe(8, 0.08, i);
  assert.ok(m.cost(35)!.perBatch > 0.072, `perBatch ${m.cost(35)!.perBatch} should approach 0.08`);
});

void test('is unknown before the first batch and once stale; ignores nonsense observations', () => {
  const m = new BatchCostModel();
  assert.equal(m.cost(0), undefined);
  m.observe(0, 1, 0);
  m.observe(4, Number.NaN, 0);
  m.observe(4, -1, 0);
  assert.equal(m.cost(0), undefined);
  m.observe(4, 0.004, 100);
  assert.ok(m.cost(100 + COST_STALE_MS) !== undefined);
  assert.equal(m.cost(101 + COST_STALE_MS), undefined);
});
