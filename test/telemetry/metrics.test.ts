import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ModelExceedsMemoryBudget, QueueFull } from '../../src/core/errors.ts';
import { Metrics, SHED_REASONS, statusOfKind } from '../../src/telemetry/metrics.ts';
import { familiesOf, samplesOf, sumOf } from './exposition.ts';
import { prometheusMissing, promtool } from './prometheus.ts';

function withSources(): Metrics {
  const metrics = new Metrics();
  metrics.sources.queueDepth = () => [['simple', 3], ['mlp', 0]];
  metrics.sources.queueLimits = () => [['simple', 1024], ['mlp', 64]];
  metrics.sources.workers = () => [{ worker: 'w0', up: true, inflightBatches: 2, memoryUsedBytes: 10, memoryBudgetBytes: 100 }, { worker: 'w1', up: false, inflightBatches: 0, memoryUsedBytes: 0, memoryBudgetBytes: 100 }];
  return metrics;
}

void test('rare-event counters exist at 0 for every served model and worker before anything happens', async () => {
  const metrics = withSources();
  const samples = samplesOf(await metrics.registry.metrics());
  const has = (name: string, labels: Record<string, string>): boolean => samples.some((s) => s.name === name && s.value === 0 && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  for (const model of ['simple', 'mlp']) {
    for (const reason of SHED_REASONS) assert.ok(has('sluice_requests_shed_total', { model, reason }), `shed ${model} ${reason}`);
    assert.ok(has('sluice_model_loads_total', { model, result: 'failure' }));
    assert.ok(has('sluice_model_cache_lookups_total', { model, result: 'miss' }));
    assert.ok(has('sluice_model_evictions_total', { model }));
    assert.ok(has('sluice_batch_retries_total', { model }));
  }
  assert.ok(has('sluice_worker_restarts_total', { worker: 'w1' }));
  // Counting on top of the zero works, and a model the scheduler no longer reports is not invented.
  metrics.requestsShed.inc({ model: 'simple', reason: 'queue_full' });
  metrics.sources.queueDepth = () => [['simple', 0]];
  metrics.sources.queueLimits = () => [['simple', 1024]];
  const after = samplesOf(await metrics.registry.metrics());
  assert.equal(sumOf(after, 'sluice_requests_shed_total', { model: 'simple', reason: 'queue_full' }), 1);
  assert.equal(sumOf(after, 'sluice_queue_max_size', { model: 'simple' }), 1024);
  assert.equal(after.filter((s) => s.name === 'sluice_queue_max_size').length, 1, 'gauges of live state drop what is gone');
});

void test('queue and worker gauges read their sources at scrape time', async () => {
  const samples = samplesOf(await withSources().registry.metrics());
  assert.equal(sumOf(samples, 'sluice_queue_depth', { model: 'simple' }), 3);
  assert.equal(sumOf(samples, 'sluice_queue_max_size', { model: 'mlp' }), 64);
  assert.equal(sumOf(samples, 'sluice_worker_up', { worker: 'w1' }), 0);
  assert.equal(sumOf(samples, 'sluice_worker_up', { worker: 'w0' }), 1);
  assert.equal(sumOf(samples, 'sluice_worker_inflight_batches', { worker: 'w0' }), 2);
});

void test('a full queue counts as queue_full, a model too large for the memory budget does not', () => {
  assert.equal(statusOfKind(QueueFull.kind, QueueFull.code), 'queue_full');
  assert.equal(statusOfKind(ModelExceedsMemoryBudget.kind, ModelExceedsMemoryBudget.code), 'unavailable');
  assert.equal(statusOfKind('UNAVAILABLE', 'SLUICE_WORKER_FAILED'), 'worker_failure');
});

void test('observeRequest counts every outcome in the counter and histogram, successes only in the summary', async () => {
  const metrics = new Metrics({ defaultMetrics: false });
  metrics.observeRequest('simple', 'http', 'success', 0.002);
  metrics.observeRequest('simple', 'http', 'success', 0.004);
  metrics.observeRequest('simple', 'http', 'invalid', 0.0001);
  const samples = samplesOf(await metrics.registry.metrics());
  assert.equal(sumOf(samples, 'sluice_requests_total', { status: 'success' }), 2);
  assert.equal(sumOf(samples, 'sluice_requests_total', { status: 'invalid' }), 1);
  assert.equal(sumOf(samples, 'sluice_request_duration_seconds_count', { model: 'simple' }), 3);
  assert.equal(sumOf(samples, 'sluice_request_duration_seconds_bucket', { status: 'success', le: '0.003' }), 1);
  assert.equal(sumOf(samples, 'sluice_request_duration_quantiles_seconds_count', { model: 'simple' }), 2);
});

void test('the exposition passes promtool check metrics and has none of the gauges named like counters', { skip: prometheusMissing() ?? false }, async () => {
  const metrics = withSources();
  metrics.observeRequest('simple', 'grpc', 'success', 0.01);
  metrics.sources.gpus = () => [{ gpu: '0', memoryUsedBytes: 1, memoryTotalBytes: 2, utilization: 0.5 }];
  const text = await metrics.registry.metrics();
  for (const name of familiesOf(text).keys()) assert.doesNotMatch(name, /^sluice_nodejs_active_.*_total$/);
  const r = promtool(['check', 'metrics'], text);
  assert.equal(r.status, 0, r.output);
});
