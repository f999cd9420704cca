import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isErrorAnswer, Recorder } from '../../loadtest/recorder.ts';

test('error answers get a latency histogram of their own; successes, timeouts and resets stay out of it', () => {
  const r = new Recorder(0, 'completion');
  // 100 successes at 10..109 ms, 50 refusals at 1..50 ms, a timeout and a reset, one refusal in the warm-up.
  for (let i = 0; i < 100; i++) r.record(0, 10 + i, { ok: true });
  for (let i = 0; i < 50; i++) r.record(1000, 1001 + i, { ok: false, error: 'http 503' });
  r.record(0, 30_000, { ok: false, error: 'timeout' });
  r.record(0, 0.2, { ok: false, error: 'transport: ECONNRESET' });
  r.record(-10, -9.5, { ok: false, error: 'http 503' });
  const s = r.stats();
  r.destroy();
  assert.equal(s.ok, 100);
  assert.equal(s.errors['http 503'], 50);
  assert.ok(Math.abs(s.latencyMs.p50 - 59) <= 0.1, `success p50 ${s.latencyMs.p50}`);
  assert.ok(s.refusedLatencyMs, 'refusals measured');
  assert.ok(Math.abs(s.refusedLatencyMs.p50 - 25) <= 0.1, `refused p50 ${s.refusedLatencyMs.p50}`);
  assert.ok(Math.abs(s.refusedLatencyMs.max - 50) <= 0.1, `refused max ${s.refusedLatencyMs.max}: the timeout is not a refusal`);
  assert.ok(s.refusedLatencyMs.min >= 1, 'the reset is not a refusal');
  assert.equal(isErrorAnswer('grpc RESOURCE_EXHAUSTED'), true);
  assert.equal(isErrorAnswer('not sent'), false);
});

test('the refused histogram crosses the process boundary (export, absorb) and is absent when nothing was refused', () => {
  const remote = new Recorder(0, 'due');
  for (let i = 1; i <= 10; i++) remote.record(0, i, { ok: false, error: 'http 503' });
  remote.record(0, 100, { ok: true });
  const exported = remote.export();
  remote.destroy();
  const local = new Recorder(0, 'due');
  local.absorb(exported);
  const s = local.stats();
  local.destroy();
  assert.equal(s.ok, 1);
  assert.ok(s.refusedLatencyMs && Math.abs(s.refusedLatencyMs.p99 - 10) <= 0.1, `refused p99 ${s.refusedLatencyMs?.p99}`);
  const quiet = new Recorder(0, 'due');
  quiet.record(0, 3, { ok: true });
  assert.equal(quiet.export().refusedHistogram, undefined);
  assert.equal(quiet.stats().refusedLatencyMs, undefined);
  quiet.destroy();
});
