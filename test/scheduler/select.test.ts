import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SCAN_LIMIT, selectBatch, type BatchLimits, type Candidate } from '../../src/scheduler/select.ts';

function c(rows: number, arrivalMs = 0, shapeKey = 'A'): Candidate {
  return { rows, arrivalMs, shapeKey };
}

const WORK_CONSERVING: BatchLimits = { batching: true, maxRows: 32, preferred: [8, 16, 32], maxQueueDelayMs: 0 };

void test('counts rows, not requests, and stops before the batch would pass maxRows', () => {
  const queue = [c(10), c(10), c(10), c(5)];
  const s = selectBatch(queue, WORK_CONSERVING, 0);
  assert.equal(s.kind, 'send');
  assert.ok(s.kind === 'send');
  // 10 + 10 + 10 = 30; the 5-row request would make 35 > 32, so it waits for the next batch (order kept).
  assert.equal(s.rows, 30);
  assert.deepEqual(s.items, queue.slice(0, 3));
});

void test('work-conserving: a lone request is sent at once, whatever its size', () => {
  const s = selectBatch([c(3)], WORK_CONSERVING, 0);
  assert.ok(s.kind === 'send');
  assert.equal(s.rows, 3);
});

void test('the head fixes the shape class; other classes are skipped, not dropped', () => {
  const a1 = c(1, 0, 'A');
  const b1 = c(1, 1, 'B');
  const a2 = c(1, 2, 'A');
  const s = selectBatch([a1, b1, a2], WORK_CONSERVING, 10);
  assert.ok(s.kind === 'send');
  assert.deepEqual(s.items, [a1, a2]);
  const next = selectBatch([b1], WORK_CONSERVING, 10);
  assert.ok(next.kind === 'send');
  assert.deepEqual(next.items, [b1]);
});

void test('a model without batching runs each request alone', () => {
  const s = selectBatch([c(1), c(1)], { batching: false, maxRows: 1, preferred: [], maxQueueDelayMs: 0 }, 0);
  assert.ok(s.kind === 'send');
  assert.equal(s.items.length, 1);
});

void test('with a queue delay, short of a preferred size the batch waits until the oldest has waited the delay', () => {
  const limits: BatchLimits = { batching: true, maxRows: 32, preferred: [4, 8], maxQueueDelayMs: 5 };
  const early = selectBatch([c(1, 100), c(2, 101)], limits, 102);
  assert.deepEqual(early, { kind: 'wait', untilMs: 105 });
  const late = selectBatch([c(1, 100), c(2, 101)], limits, 105);
  assert.ok(late.kind === 'send');
  assert.equal(late.rows, 3);
});

void test('with a queue delay, the largest preferred size reached is sent at once and the rest stays', () => {
  const limits: BatchLimits = { batching: true, maxRows: 32, preferred: [4, 8], maxQueueDelayMs: 1_000 };
  const queue = [c(2, 0), c(2, 0), c(2, 0), c(2, 0), c(2, 0)];
  const s = selectBatch(queue, limits, 1);
  assert.ok(s.kind === 'send');
  assert.equal(s.rows, 8);
  assert.deepEqual(s.items, queue.slice(0, 4));
});

void test('with a queue delay, a full batch goes at once', () => {
  const limits: BatchLimits = { batching: true, maxRows: 4, preferred: [], maxQueueDelayMs: 1_000 };
  const s = selectBatch([c(2), c(2), c(1)], limits, 0);
  assert.ok(s.kind === 'send');
  assert.equal(s.rows, 4);
});

void test('an empty queue selects nothing', () => {
  assert.deepEqual(selectBatch([], WORK_CONSERVING, 0), { kind: 'empty' });
});

void test('the scan past incompatible requests is bounded', () => {
  const queue = [c(1, 0, 'A'), ...Array.from({ length: SCAN_LIMIT + 10 }, () => c(1, 0, 'B')), c(1, 0, 'A')];
  const s = selectBatch(queue, WORK_CONSERVING, 0);
  assert.ok(s.kind === 'send');
  assert.equal(s.items.length, 1);
});
