import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseOptions } from '../../loadtest/options.ts';
import { runLoadtest } from '../../loadtest/run.ts';
import type { Sluice } from '../../src/main.ts';
import { startTestSluice } from '../helpers/sluice.ts';

/** Every request of `model` the server has finished, whatever its status. */
async function serverCount(sluice: Sluice, model: string): Promise<number> {
  const metric = await sluice.metrics.requests.get();
  return metric.values.filter((v) => v.labels['model'] === model).reduce((n, v) => n + v.value, 0);
}

/** The server's count once it has caught up with `expected` (requests cut off at a step's end finish late). */
async function settledCount(sluice: Sluice, model: string, expected: number): Promise<number> {
  let n = await serverCount(sluice, model);
  for (let i = 0; i < 50 && n < expected; i++) {
    await sleep(100);
    n = await serverCount(sluice, model);
  }
  return n;
}

test('sluice loadtest against a real sluice', async (t) => {
  const sluice = await startTestSluice(t);
  const url = `http://127.0.0.1:${sluice.ports.http}`;
  const grpcUrl = `127.0.0.1:${sluice.ports.grpc}`;
  const metricsUrl = `http://127.0.0.1:${sluice.ports.metrics}/metrics`;
  const opts = (extra: string[]): ReturnType<typeof parseOptions> => parseOptions(['--url', url, '--grpc-url', grpcUrl, '--metrics-url', metricsUrl, '--timeout', '30s', ...extra]);

  await t.test('closed loop (autocannon, JSON) and open loop (binary): the server counted every request sent', async () => {
    const before = await serverCount(sluice, 'simple');
    const run = await runLoadtest(opts(['--model', 'simple', '--concurrency', '4', '--rate', '80', '--duration', '1s', '--warmup', '300ms']));
    const [closed, open] = run.report.steps;
    assert.ok(closed && open);
    const sent = closed.sent + open.sent;
    assert.equal(open.sent, Math.floor(80 * 1.3));
    assert.equal(await settledCount(sluice, 'simple', before + sent) - before, sent);
    for (const s of [closed, open]) {
      assert.equal(s.errorCount, 0, JSON.stringify(s.errors));
      assert.ok(s.ok > 0);
      assert.ok(s.checked > 0);
      assert.equal(s.wrong, 0);
      // The server's own view of the step came from its metrics port.
      assert.ok(s.server, 'server view');
      assert.ok((s.server.requests['success'] ?? 0) > 0);
      assert.ok((s.server.meanBatchSize ?? 0) >= 1);
      assert.ok(s.server.meanComputeMs !== undefined && s.server.meanComputeMs > 0);
    }
    // Every open-loop request was answered: none dropped, none left behind.
    assert.equal(open.responses, 80);
  });

  await t.test('h2c closed loop and gRPC open loop: counts match, answers right', async () => {
    const before = await serverCount(sluice, 'simple');
    const h2 = await runLoadtest(opts(['--model', 'simple', '--protocol', 'h2c', '--concurrency', '3', '--duration', '700ms', '--warmup', '200ms', '--check-every', '2']));
    const grpc = await runLoadtest(opts(['--model', 'simple', '--protocol', 'grpc', '--rate', '60', '--duration', '700ms', '--warmup', '200ms', '--check-every', '2']));
    const steps = [...h2.report.steps, ...grpc.report.steps];
    const sent = steps.reduce((n, s) => n + s.sent, 0);
    assert.equal(await settledCount(sluice, 'simple', before + sent) - before, sent);
    for (const s of steps) {
      assert.equal(s.errorCount, 0, JSON.stringify(s.errors));
      assert.ok(s.checked >= s.ok / 2, `${s.protocol}: ${s.checked} checked of ${s.ok}`);
      assert.equal(s.wrong, 0);
    }
    const metric = await sluice.metrics.requests.get();
    assert.ok(metric.values.some((v) => v.labels['protocol'] === 'grpc' && v.labels['model'] === 'simple' && v.value > 0));
  });

  await t.test('mlp is checked against reference responses and every sampled answer agrees', async () => {
    const run = await runLoadtest(opts(['--model', 'mlp', '--protocol', 'binary', '--concurrency', '4', '--duration', '700ms', '--warmup', '200ms', '--check-every', '1']));
    const step = run.report.steps[0]!;
    assert.equal(run.checkKind, 'reference');
    assert.equal(step.errorCount, 0, JSON.stringify(step.errors));
    assert.ok(step.checked > 4);
    assert.equal(step.wrong, 0, run.firstWrong);
  });

  await t.test('the SLO search converges on the simple model', async () => {
    const run = await runLoadtest(opts(['--model', 'simple', '--protocol', 'binary', '--slo-p99', '250', '--duration', '600ms', '--warmup', '200ms', '--search-steps', '8', '--search-tolerance', '0.25', '--check-every', '8']));
    const search = run.report.search;
    assert.ok(search);
    assert.ok(search.steps.length <= 8);
    assert.ok(search.bestRate !== undefined && search.bestRate > 0, JSON.stringify(search.steps));
    assert.ok(search.converged, JSON.stringify(search.steps));
    assert.ok(search.failRate !== undefined && search.failRate / search.bestRate <= 1.25 + 1e-9);
    assert.ok(run.report.steps.every((s) => s.wrong === 0));
  });
});
