import assert from 'node:assert/strict';
import { test } from 'node:test';
import { retryAfterSeconds, TokenBucket } from '../../src/access/rate-limit.ts';

test('a token bucket passes its burst at once, then its rate, and says how long to wait', () => {
  const b = new TokenBucket({ perSecond: 10, burst: 5 }, 0);
  for (let i = 0; i < 5; i++) assert.equal(b.take(1, 0), 0, `burst token ${i}`);
  assert.equal(b.take(1, 0), 100, 'one token takes 100 ms at 10/s');
  assert.equal(b.take(1, 50), 50);
  assert.equal(b.take(1, 100), 0, 'refilled');
  assert.equal(b.level(10_000), 5, 'never more than the burst');
});

test('taking more than the burst needs a full bucket and leaves it in debt', () => {
  const b = new TokenBucket({ perSecond: 10, burst: 5 }, 0);
  assert.equal(b.take(8, 0), 0, 'a full bucket lets a large request through');
  assert.equal(b.level(0), -3);
  assert.equal(b.take(1, 0), 400, 'four tokens to earn back before the next');
  assert.equal(b.take(8, 300), 500, 'a large request waits for a full bucket (from level 0 at 300 ms)');
});

test('Retry-After is whole seconds, at least one', () => {
  assert.equal(retryAfterSeconds(1), 1);
  assert.equal(retryAfterSeconds(1000), 1);
  assert.equal(retryAfterSeconds(1001), 2);
});
