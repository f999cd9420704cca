// The autoscalers' PromQL, evaluated by promtool against synthetic scrapes of four gateway pods: idle
// (histogram flat), fresh (no histogram series yet), busy (requests queueing and leaving) and stalled
// (requests queued, none leaving). Every pod must get a value: 0 when idle or fresh, the load when
// busy or stalled. Triton's queue-time ratio gives NaN or nothing for the first two (server#8980).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { stringify } from 'yaml';
import { adapterQuery, kedaQuery } from './autoscaling-queries.ts';

const missing = spawnSync('promtool', ['--version'], { encoding: 'utf8' });
const skip = missing.error || missing.status !== 0 ? "promtool is not installed (Debian's prometheus package; .ci/run installs it)" : false;

// 15 s scrapes for 10 minutes. busy: 10 requests/s leave the queue after 0.25 s each (queue-time
// sum +37.5 s per scrape) while the sampled depth reads 2; stalled: 7 queued, none leaving.
const series = (pod: string, depth: number, hist?: { sum: string; count: string }, requests?: string): { series: string; values: string }[] => [
  { series: `sluice_queue_depth{namespace="sluice",pod="${pod}",model="m"}`, values: `${depth}x40` },
  ...(hist ? [
    { series: `sluice_queue_duration_seconds_sum{namespace="sluice",pod="${pod}",model="m"}`, values: hist.sum },
    { series: `sluice_queue_duration_seconds_count{namespace="sluice",pod="${pod}",model="m"}`, values: hist.count },
  ] : []),
  ...(requests ? [{ series: `sluice_requests_total{namespace="sluice",pod="${pod}",model="m",protocol="http",status="success"}`, values: requests }] : []),
];
const fleet = [
  ...series('idle', 0, { sum: '5x40', count: '100x40' }, '100x40'),
  ...series('fresh', 0),
  ...series('busy', 2, { sum: '0+37.5x40', count: '0+150x40' }, '0+150x40'),
  ...series('stalled', 7, { sum: '20x40', count: '50x40' }, '50x40'),
];
const perPod = (values: Record<string, number>): { labels: string; value: number }[] =>
  Object.entries(values).map(([pod, value]) => ({ labels: `{namespace="sluice", pod="${pod}"}`, value }));

void test('the adapter rules give every pod a value, 0 when idle, and the KEDA queries sum the fleet', { skip }, () => {
  const tests = [
    {
      interval: '15s',
      input_series: fleet,
      promql_expr_test: [
        // Little's law for busy (2.5 > its sampled 2), the gauge for stalled, 0 for idle and fresh.
        { expr: adapterQuery('sluice_queued_requests'), eval_time: '5m', exp_samples: perPod({ idle: 0, fresh: 0, busy: 2.5, stalled: 7 }) },
        // 0.25 s per request when busy; a stall reads the whole window, never 0 or nothing.
        { expr: adapterQuery('sluice_queue_seconds_per_request'), eval_time: '5m', exp_samples: perPod({ idle: 0, fresh: 0, busy: 0.25, stalled: 120 }) },
        { expr: kedaQuery('queued'), eval_time: '5m', exp_samples: [{ labels: '{}', value: 2.5 }] },
        { expr: kedaQuery('arrivals'), eval_time: '5m', exp_samples: [{ labels: '{}', value: 10 }] },
      ],
    },
    {
      // No gateway scraped at all: KEDA reads 0 (scale to zero), not an error.
      interval: '15s',
      input_series: [{ series: 'up{job="other"}', values: '1x40' }],
      promql_expr_test: [
        { expr: kedaQuery('queued'), eval_time: '5m', exp_samples: [{ labels: '{}', value: 0 }] },
        { expr: kedaQuery('arrivals'), eval_time: '5m', exp_samples: [{ labels: '{}', value: 0 }] },
      ],
    },
  ];
  const dir = mkdtempSync(join(tmpdir(), 'sluice-autoscaling-'));
  try {
    writeFileSync(join(dir, 'tests.yml'), stringify({ rule_files: [], evaluation_interval: '15s', tests }));
    const r = spawnSync('promtool', ['test', 'rules', 'tests.yml'], { cwd: dir, encoding: 'utf8', timeout: 30_000 });
    assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
    assert.match(r.stdout + r.stderr, /SUCCESS/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
