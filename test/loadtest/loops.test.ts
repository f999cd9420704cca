import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseOptions } from '../../loadtest/options.ts';
import { runClosedLoop } from '../../loadtest/loops.ts';
import { Recorder } from '../../loadtest/recorder.ts';
import { runLoadtest } from '../../loadtest/run.ts';
import type { RequestFn } from '../../loadtest/transport.ts';
import { startFakeServer } from './fake-server.ts';

const base = (url: string, model: string, extra: string[]): ReturnType<typeof parseOptions> =>
  parseOptions(['--url', url, '--model', model, '--no-metrics', '--timeout', '20s', ...extra]);

test('open loop corrects coordinated omission: a stalling server shows in its P99, not in a closed loop P99', async (t) => {
  // Stalls 250 ms of every second: a closed-loop client waits politely through each stall (one slow
  // request), while an open-loop schedule keeps arriving and is charged for every request due meanwhile.
  const server = await startFakeServer(t, { stall: { everyMs: 1000, forMs: 250 } });
  const closed = (await runLoadtest(base(server.url, 'simple', ['--concurrency', '1', '--duration', '2s', '--warmup', '0']))).report.steps[0]!;
  const open = (await runLoadtest(base(server.url, 'simple', ['--rate', '200', '--duration', '2s', '--warmup', '0']))).report.steps[0]!;
  assert.equal(closed.errorCount, 0);
  assert.equal(open.errorCount, 0);
  // The closed loop saw the stall (its max), but it hides below its P99.
  assert.ok(closed.latencyMs.max >= 150, `closed-loop max ${closed.latencyMs.max} ms should include a stall`);
  assert.ok(open.latencyMs.p99 >= 150, `open-loop p99 ${open.latencyMs.p99} ms should show the stalls`);
  assert.ok(open.latencyMs.p99 > 3 * closed.latencyMs.p99, `open p99 ${open.latencyMs.p99} ms vs closed p99 ${closed.latencyMs.p99} ms`);
  // About a quarter of the open-loop requests were due during a stall.
  assert.ok(open.latencyMs.p90 >= 40, `open-loop p90 ${open.latencyMs.p90} ms`);
});

test('open loop sends exactly rate x time requests, measures only those due after the warm-up, and the server sees each once', async (t) => {
  const server = await startFakeServer(t);
  const run = await runLoadtest(base(server.url, 'simple', ['--rate', '100', '--duration', '1s', '--warmup', '500ms', '--check-every', '4']));
  const step = run.report.steps[0]!;
  assert.equal(step.sent, 150);
  assert.equal(server.received(), 150);
  assert.equal(step.responses, 100);
  assert.equal(step.ok, 100);
  assert.equal(step.wrong, 0);
  // First response, then one in four, warm-up included: 150 / 4 rounded up.
  assert.equal(step.checked, 38);
  assert.equal(run.checkKind, 'simple');
  // QPS counts over the measured second, stretched to the last answer if that came later (a busy machine).
  assert.ok(step.seconds >= 1 && step.seconds < 3, `window ${step.seconds} s`);
  assert.ok(Math.abs(step.qps * step.seconds - 100) < 1e-6, `qps ${step.qps}`);
});

test('open loop bounds requests in flight; requests that cannot go out in time wait and count as late, none dropped', async (t) => {
  // 20 ms per request, one at a time: 50/s capacity under a 100/s schedule.
  const server = await startFakeServer(t, { serviceMs: 20 });
  const run = await runLoadtest(base(server.url, 'simple', ['--rate', '100', '--duration', '500ms', '--warmup', '0', '--max-outstanding', '4']));
  const step = run.report.steps[0]!;
  assert.ok(server.maxInflight() <= 4, `server saw ${server.maxInflight()} in flight`);
  assert.equal(step.sent, 50);
  assert.equal(step.ok, 50);
  assert.equal(server.received(), 50);
  assert.ok(step.late > 20, `late ${step.late}`);
  // The last requests waited about half a second past their due time: the latency says so.
  assert.ok(step.latencyMs.max > 300, `max ${step.latencyMs.max} ms`);
});

test('the SLO search brackets then bisects to the highest rate whose P99 holds, within its step budget', async (t) => {
  const server = await startFakeServer(t, { serviceMs: 4 });
  const run = await runLoadtest(base(server.url, 'simple', ['--slo-p99', '40', '--duration', '600ms', '--warmup', '200ms', '--search-steps', '9', '--search-tolerance', '0.1']));
  const search = run.report.search;
  assert.ok(search, 'a search result');
  assert.ok(search.steps.length <= 9);
  assert.ok(search.bestRate !== undefined, `no passing rate: ${JSON.stringify(search.steps)}`);
  assert.ok(search.failRate !== undefined, 'a failing rate bounds the answer');
  assert.ok(search.converged, `not converged: ${JSON.stringify(search.steps)}`);
  assert.ok(search.failRate / search.bestRate <= 1.1 + 1e-9);
  // One request per 4 ms is the ceiling; a P99 of 40 ms holds only below it.
  assert.ok(search.bestRate > 40 && search.bestRate <= 260, `best rate ${search.bestRate}`);
  for (const s of search.steps) {
    const step = run.report.steps.find((x) => x.label === s.label && x.spec.mode === 'open');
    assert.ok(step);
    assert.equal(s.pass, step.latencyMs.p99 <= 40 && step.errorCount === 0 && step.qps >= 0.9 * (step.spec.mode === 'open' ? step.spec.rate : 0), `${s.label}: ${s.reason}`);
  }
});

test('wrong sums are counted as errors, exactly as many as the server sent', async (t) => {
  const server = await startFakeServer(t, { wrongEvery: 5 });
  const run = await runLoadtest(base(server.url, 'simple', ['--rate', '100', '--duration', '1s', '--warmup', '0', '--check-every', '1', '--protocol', 'binary']));
  const step = run.report.steps[0]!;
  assert.equal(server.received(), 100);
  assert.equal(server.wrongSent(), 20);
  assert.equal(step.wrong, 20);
  assert.equal(step.errors['wrong answer'], 20);
  assert.equal(step.ok, 80);
  assert.match(run.firstWrong ?? '', /OUTPUT0.*expected/);
});

test('wrong answers are caught against reference responses for a model the tool cannot compute, in a closed loop', async (t) => {
  const server = await startFakeServer(t, { wrongEvery: 3, rightFirst: 8 });
  const run = await runLoadtest(base(server.url, 'double', ['--concurrency', '2', '--duration', '1s', '--warmup', '0', '--check-every', '1', '--variants', '8']));
  const step = run.report.steps[0]!;
  assert.equal(run.checkKind, 'reference');
  // Responses in flight when autocannon stops are never read: at most one per connection goes unseen.
  assert.ok(step.wrong > 0);
  assert.ok(step.wrong <= server.wrongSent() && step.wrong >= server.wrongSent() - 2, `tool ${step.wrong}, server ${server.wrongSent()}`);
  assert.equal(step.errors['wrong answer'], step.wrong);
});

test('Ctrl-C ends the running step at once: no further steps, the step measured up to the stop, every request sent answered', async (t) => {
  const server = await startFakeServer(t, { serviceMs: 2 });
  for (const flags of [['--concurrency', '4,8'], ['--rate', '100,200']]) {
    const stop = new AbortController();
    const started = performance.now();
    // Late enough that the open loop's driver process (started before its step's clock, a few hundred
    // ms under tsx) has run the step for a while.
    setTimeout(() => stop.abort(), 1200);
    // A generous late threshold: a busy machine may delay a real send by a few ms, but charging the
    // dropped rest of the schedule would count dozens late whatever the threshold.
    const run = await runLoadtest(base(server.url, 'simple', [...flags, '--duration', '20s', '--warmup', '0', '--late-threshold', '100']), { signal: stop.signal });
    const wallS = (performance.now() - started) / 1000;
    assert.equal(run.report.steps.length, 1, `${flags.join(' ')}: the second step never ran`);
    const step = run.report.steps[0]!;
    assert.equal(step.interrupted, true);
    assert.ok(wallS < 8, `${flags.join(' ')}: stopped after ${wallS.toFixed(1)} s, not 20`);
    assert.ok(step.seconds >= 0.5 && step.seconds < 5, `${flags.join(' ')}: measured ${step.seconds} s`);
    assert.ok(step.ok > 20, `${flags.join(' ')}: ${step.ok} answers`);
    assert.ok(Math.abs(step.qps * step.seconds - step.ok) < 1e-6, 'the rate is counted over the time measured');
    assert.equal(step.errorCount, 0, JSON.stringify(step.errors));
    assert.equal(step.late, 0, 'the dropped rest of a schedule is not charged as late');
  }
});

test('the closed loop stops sending when told to and lets requests in flight finish', async () => {
  const stop = new AbortController();
  let inflight = 0;
  let sent = 0;
  const fn: RequestFn = async () => {
    sent += 1;
    inflight += 1;
    await new Promise((r) => setTimeout(r, 20));
    inflight -= 1;
    return { ok: true };
  };
  const startMs = performance.now();
  const recorder = new Recorder(startMs, 'completion');
  setTimeout(() => stop.abort(), 200);
  const stats = await runClosedLoop(fn, recorder, { startMs, warmupMs: 0, durationMs: 30_000, drainTimeoutMs: 5_000, maxRequests: 1_000_000, stop: stop.signal }, 3);
  recorder.destroy();
  assert.ok(performance.now() - startMs < 2_000, 'ended soon after the stop');
  assert.equal(inflight, 0, 'nothing left in flight');
  assert.equal(stats.sent, sent);
  assert.equal(stats.aborted, 0, 'requests in flight were answered, not aborted');
  assert.ok(sent >= 3 * 5 && sent <= 3 * 12, `sent ${sent}`);
});
