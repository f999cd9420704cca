import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Registry } from 'prom-client';
import { WindowQuantiles } from '../../src/telemetry/window-quantiles.ts';
import { samplesOf } from './exposition.ts';

function summary(now: () => number): { registry: Registry; q: WindowQuantiles } {
  const registry = new Registry();
  const q = new WindowQuantiles({ name: 'lat_seconds', help: 'latency', labelNames: ['model'], percentiles: [0.5, 0.95, 0.99], maxAgeSeconds: 60, ageBuckets: 3, registers: [registry], now });
  return { registry, q };
}

const quantile = (text: string, model: string, q: string): number | undefined =>
  samplesOf(text).find((s) => s.name === 'lat_seconds' && s.labels['model'] === model && s.labels['quantile'] === q)?.value;

void test('quantiles are within 1% of the exact ones, never below them, with _sum and _count per label set', async () => {
  const { registry, q } = summary(() => 0);
  // 1..1000 ms, shuffled: the exact nearest-rank P50 is 500 ms, P95 950 ms, P99 990 ms.
  const values = Array.from({ length: 1000 }, (_, i) => (i + 1) / 1000);
  for (let i = values.length - 1; i > 0; i--) {
    const j = (i * 7919) % (i + 1);
    [values[i], values[j]] = [values[j]!, values[i]!];
  }
  for (const v of values) q.observe({ model: 'mlp' }, v);
  q.observe({ model: 'cnn' }, 0.25);
  const text = await registry.metrics();
  for (const [label, exact] of [['0.5', 0.5], ['0.95', 0.95], ['0.99', 0.99]] as const) {
    const got = quantile(text, 'mlp', label)!;
    assert.ok(got >= exact && got <= exact * 1.01, `P${label}: ${got} vs ${exact}`);
  }
  const cnn = quantile(text, 'cnn', '0.99')!;
  assert.ok(cnn >= 0.25 && cnn <= 0.2525, `cnn ${cnn}`);
  const samples = samplesOf(text);
  assert.equal(samples.find((s) => s.name === 'lat_seconds_count' && s.labels['model'] === 'mlp')?.value, 1000);
  assert.ok(Math.abs(samples.find((s) => s.name === 'lat_seconds_sum' && s.labels['model'] === 'mlp')!.value - 500.5) < 1e-9);
  assert.match(text, /# TYPE lat_seconds summary/);
});

void test('observations leave the window after maxAgeSeconds; _count and _sum keep counting', async () => {
  let now = 0;
  const { registry, q } = summary(() => now);
  q.observe({ model: 'mlp' }, 2);
  now = 25_000;
  q.observe({ model: 'mlp' }, 0.001);
  let text = await registry.metrics();
  // Both are in the window: the P99 is the slow one.
  assert.ok(quantile(text, 'mlp', '0.99')! >= 2);
  now = 61_000;
  text = await registry.metrics();
  // The 2 s observation's age bucket (0-20 s) has rotated out; the 25 s one is still in.
  const p99 = quantile(text, 'mlp', '0.99')!;
  assert.ok(p99 >= 0.001 && p99 <= 0.00101, `p99 ${p99}`);
  now = 200_000;
  text = await registry.metrics();
  assert.ok(Number.isNaN(quantile(text, 'mlp', '0.5')), 'an empty window reports NaN, as prom-client does');
  assert.equal(samplesOf(text).find((s) => s.name === 'lat_seconds_count')?.value, 2);
});

void test('values below a microsecond and above the last bucket are clamped, not lost', async () => {
  const { registry, q } = summary(() => 0);
  q.observe({ model: 'm' }, 0);
  q.observe({ model: 'm' }, 1e9);
  const text = await registry.metrics();
  assert.ok(quantile(text, 'm', '0.5')! <= 1e-6);
  assert.ok(quantile(text, 'm', '0.99')! >= 1e4);
});
