import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LogBudget } from '../../src/telemetry/log-budget.ts';

void test('each kind writes its budget per window; the next line written says how many were left out', () => {
  let now = 0;
  const budget = new LogBudget({ perWindow: 3, windowMs: 1000, now: () => now });
  const written = (kind: string, n: number): number => Array.from({ length: n }, () => budget.take(kind)).filter((r) => r.write).length;
  assert.equal(written('A', 10), 3, 'three of ten');
  assert.equal(written('B', 2), 2, 'another kind has its own budget');
  now = 999;
  assert.equal(budget.take('A').write, false, 'still the same window');
  now = 1000;
  const next = budget.take('A');
  assert.deepEqual(next, { write: true, suppressed: 8 }, 'the seven left out before and the one just now');
  assert.deepEqual(budget.take('A'), { write: true, suppressed: 0 });
});
