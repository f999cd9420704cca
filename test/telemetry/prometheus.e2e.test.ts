import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { test } from 'node:test';
import { findExecutable } from '../../src/telemetry/gpu.ts';
import { startTestSluice } from '../helpers/sluice.ts';
import { driveLoadApart, enclosingBucket, quantile, simpleBody } from './load.ts';
import { ALERT_RULES, RECORDING_RULES, dashboardQueries, prometheusMissing, promtool, recordingRules, startPrometheus, substituteVariables, type TestPrometheus } from './prometheus.ts';

const missing = prometheusMissing();

/*
 * P99 tolerance. sluice times a request from arrival to response; the load generator (a process of its
 * own) times the whole round trip, so for every request sluice's latency <= the client's, and so is
 * every quantile: Prometheus's P99 <= the upper bound of the bucket holding the client's P99. Below, the
 * client's tail is no bound: on a small machine a client's P99 is mostly the time before the server's
 * thread is scheduled to read the request, which no server can see. The lower bounds are therefore
 * sluice's own exact P99 (its windowed quantiles, fed by the same observations: Prometheus's estimate
 * lies in the bucket that holds it) and, against a unit or bucket error, half the client's median.
 */
/** The relative accuracy of sluice's windowed quantiles (1%). */
const SUMMARY_ACCURACY = 1.01;

function assertP99Agrees(what: string, prometheusP99: number, clientP99: number, clientP50: number, sluiceP99: number): void {
  const upper = enclosingBucket(clientP99).upper;
  const lower = Math.min(enclosingBucket(sluiceP99 / SUMMARY_ACCURACY).lower, enclosingBucket(clientP50 / 2).lower);
  assert.ok(prometheusP99 <= upper && prometheusP99 >= lower,
    `${what}: Prometheus P99 ${(prometheusP99 * 1000).toFixed(3)} ms is outside [${lower * 1000}, ${upper * 1000}] ms (client P99 ${(clientP99 * 1000).toFixed(3)} ms, client P50 ${(clientP50 * 1000).toFixed(3)} ms, sluice's own P99 ${(sluiceP99 * 1000).toFixed(3)} ms)`);
  // sluice's own quantile is within 1% of an observed value (window-quantiles.ts): near a bucket bound
  // the true P99 may sit in the bucket either side of it.
  const ownLow = enclosingBucket(sluiceP99 / SUMMARY_ACCURACY).lower;
  const ownHigh = enclosingBucket(sluiceP99 * SUMMARY_ACCURACY).upper;
  assert.ok(ownLow <= prometheusP99 && prometheusP99 <= ownHigh,
    `${what}: Prometheus P99 ${(prometheusP99 * 1000).toFixed(3)} ms is outside [${ownLow * 1000}, ${ownHigh * 1000}] ms, the bucket(s) of sluice's own P99 ${(sluiceP99 * 1000).toFixed(3)} ms`);
}

async function waitFor(what: string, timeoutMs: number, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(250);
  }
}

async function scalarOf(prom: TestPrometheus, expr: string): Promise<number | undefined> {
  const r = await prom.query(expr);
  return r.result.length === 0 ? undefined : Number(r.result[0]!.value[1]);
}

void test('a real Prometheus scraping sluice under load answers every dashboard query and recording rule, and its P99 agrees with the client', { skip: missing ?? false, timeout: 120_000 }, async (t) => {
  // Error level: the load's deliberate 4xx would otherwise log a warning each.
  const sluice = await startTestSluice(t, ['--log-level', 'error']);
  const metricsUrl = `http://127.0.0.1:${sluice.ports.metrics}/metrics`;
  // One request before Prometheus starts, so that the success series exist from its first scrape on and
  // rate() sees the whole load (a series that appears mid-window loses its first increase).
  const warm = performance.now();
  const first = await fetch(`http://127.0.0.1:${sluice.ports.http}/v2/models/simple/infer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: simpleBody() });
  const warmSeconds = (performance.now() - warm) / 1000;
  assert.equal(first.status, 200, await first.text());

  const prom = await startPrometheus(t, sluice.ports.metrics, [RECORDING_RULES, ALERT_RULES]);
  await waitFor('the first scrape', 15_000, async () => (await scalarOf(prom, 'sum(sluice_requests_total{model="simple",status="success"})')) === 1);

  // Conversations on the generative sample beside it, so that the generation panels have data too.
  const generating = (async () => {
    let history = 'Hello';
    const until = performance.now() + 9_000;
    while (performance.now() < until) {
      const res = await fetch(`http://127.0.0.1:${sluice.ports.http}/v2/models/tiny_lm/generate`, { method: 'POST', body: JSON.stringify({ text_input: history, parameters: { max_tokens: 8 } }) });
      assert.equal(res.status, 200);
      const text = ((await res.json()) as { text_output: string }).text_output;
      history = history.length > 400 ? 'Hello' : `${history}${text} more`;
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  const load = await driveLoadApart({ port: sluice.ports.http, durationMs: 10_000, concurrency: 2, invalidEvery: 40, unknownEvery: 97 });
  await generating;
  assert.deepEqual(load.unexpected, []);
  const successes = load.successLatencies.length + 1;
  assert.ok(successes > 200, `the load generator got ${successes} successes in 10 s`);
  assert.ok(load.invalid > 0 && load.unknownModel > 0);

  // Prometheus has the final counts once a scrape after the load saw them; then let the rules evaluate.
  await waitFor('a scrape after the load', 15_000, async () => (await scalarOf(prom, 'sum(sluice_requests_total{model="simple",status="success"})')) === successes);
  assert.equal(await scalarOf(prom, 'sum(sluice_requests_total{model="simple",status="invalid"})'), load.invalid);
  assert.equal(await scalarOf(prom, 'sum(sluice_requests_total{model="_unknown",status="not_found"})'), load.unknownModel);
  assert.equal(await scalarOf(prom, 'sum(sluice_request_duration_seconds_count{model="simple",status="success"})'), successes);
  await sleep(2500);

  const rules = (await (await fetch(`${prom.url}/api/v1/rules`)).json()) as { data: { groups: { name: string; rules: { name: string; health: string; lastError?: string }[] }[] } };
  const loaded = rules.data.groups.flatMap((g) => g.rules);
  assert.equal(loaded.length, recordingRules().length + 7, 'every recording and alert rule is loaded');
  for (const r of loaded) assert.equal(r.health, 'ok', `rule ${r.name}: ${r.lastError ?? ''}`);

  const gpu = findExecutable('nvidia-smi') !== undefined;
  const queueLimitsWired = sluice.metrics.sources.queueLimits !== undefined;
  const queries = [
    ...dashboardQueries().map((q) => ({ what: `panel "${q.panel}"`, expr: substituteVariables(q.expr) })),
    ...recordingRules().flatMap((r) => [{ what: `rule ${r.record}`, expr: r.expr }, { what: `recorded series ${r.record}`, expr: r.record }]),
  ];
  const empty: string[] = [];
  const pendingWiring: string[] = [];
  for (const q of queries) {
    const result = await prom.query(q.expr);
    if (result.result.length > 0) continue;
    if (!gpu && q.expr.includes('sluice_gpu_')) continue;
    if (!queueLimitsWired && /sluice_queue_max_size|sluice_queue_saturation/.test(q.expr)) {
      pendingWiring.push(`${q.what}: ${q.expr}`);
      continue;
    }
    empty.push(`${q.what}: ${q.expr}`);
  }
  assert.deepEqual(empty, [], 'queries that returned no data');
  if (pendingWiring.length > 0) t.diagnostic(`no data until the composition root sets metrics.sources.queueLimits: ${pendingWiring.join('; ')}`);

  const clientP99 = quantile([warmSeconds, ...load.successLatencies], 0.99);
  const clientP50 = quantile([warmSeconds, ...load.successLatencies], 0.5);
  // The whole load is inside the summary's 60 s window: the same requests as the cumulative buckets.
  const own = /^sluice_request_duration_quantiles_seconds\{model="simple",protocol="http",quantile="0.99"\} (\S+)$/m.exec(await (await fetch(metricsUrl)).text());
  assert.ok(own, 'sluice exports its own P99 of simple');
  const sluiceP99 = Number(own[1]);
  // Exact: the cumulative buckets hold every request since start, the same requests the client timed.
  const cumulative = await scalarOf(prom, 'histogram_quantile(0.99, sum by (le) (sluice_request_duration_seconds_bucket{model="simple",status="success"}))');
  assert.ok(cumulative !== undefined);
  assertP99Agrees('cumulative histogram', cumulative, clientP99, clientP50, sluiceP99);
  // What operators see: the recording rule over the last minute (the whole load fits in its window).
  const recorded = await scalarOf(prom, 'model:sluice_request_duration_seconds:p99_rate1m{model="simple"}');
  assert.ok(recorded !== undefined && Number.isFinite(recorded), `recorded P99 ${recorded}`);
  assertP99Agrees('recording rule', recorded, clientP99, clientP50, sluiceP99);
  t.diagnostic(`client P99 ${(clientP99 * 1000).toFixed(3)} ms; sluice's own P99 ${(sluiceP99 * 1000).toFixed(3)} ms; Prometheus P99 ${(cumulative * 1000).toFixed(3)} ms (cumulative), ${(recorded * 1000).toFixed(3)} ms (rate 1m); ${successes} successes`);

  // promtool check metrics lints the live exposition after traffic (names, units, _total, help).
  const text = await (await fetch(metricsUrl)).text();
  assert.match(text, /^sluice_request_duration_seconds_bucket\{/m);
  const lint = promtool(['check', 'metrics'], text);
  assert.equal(lint.status, 0, lint.output);
});
