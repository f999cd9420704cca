// The autoscalers' PromQL as shipped, evaluated by a real Prometheus scraping two real gateways (the
// scrape attaches namespace and pod labels, as Kubernetes service discovery does): the adapter rules
// give one value per pod, 0 while idle and rising on the pod that is loaded; the KEDA triggers give one
// fleet value that rises with the load. test/deploy/autoscaling-promql.test.ts checks the same queries
// on synthetic series, stalled and fresh pods included.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { request } from 'undici';
import { startTestSluice } from '../helpers/sluice.ts';
import { prometheusMissing, startPrometheus, type TestPrometheus } from '../telemetry/prometheus.ts';
import { adapterQuery, kedaQuery } from './autoscaling-queries.ts';

const missing = prometheusMissing();

function mlpBody(): string {
  const data = Array.from({ length: 784 }, (_, i) => (i % 10) / 10);
  return JSON.stringify({ inputs: [{ name: 'INPUT0', shape: [1, 784], datatype: 'FP32', data }] });
}

async function perPod(prom: TestPrometheus, expr: string, time: number): Promise<Record<string, number>> {
  const r = await prom.query(expr, time);
  return Object.fromEntries(r.result.map((s) => [s.metric['pod'] ?? '?', Number(s.value[1])]));
}

async function fleet(prom: TestPrometheus, expr: string, time: number): Promise<number[]> {
  return (await prom.query(expr, time)).result.map((s) => Number(s.value[1]));
}

test('a real Prometheus scraping two gateways: the adapter rules give each pod its value, rising on the loaded one; the KEDA queries rise with the load', { skip: missing ?? false, timeout: 120_000 }, async (t) => {
  const flags = ['--model-control-mode', 'explicit', '--load-model', 'mlp', '--log-level', 'error'];
  const [busy, idle] = await Promise.all([startTestSluice(t, flags), startTestSluice(t, flags)]);
  const prom = await startPrometheus(t, [
    { port: busy.ports.metrics, labels: { namespace: 'sluice', pod: 'gw-busy' } },
    { port: idle.ports.metrics, labels: { namespace: 'sluice', pod: 'gw-idle' } },
  ], []);
  const up = async (): Promise<number> => (await prom.query('sum(up{namespace="sluice"})')).result.map((s) => Number(s.value[1]))[0] ?? 0;
  for (let i = 0; i < 100 && (await up()) < 2; i++) await sleep(200);
  assert.equal(await up(), 2, 'both gateways scraped');
  // A few idle scrapes first, so that the idle reading below has samples of its own.
  await sleep(4000);
  const idleAt = Date.now() / 1000;

  // 48 clients in a closed loop on one gateway for 12 s: requests queue while a batch runs.
  const body = mlpBody();
  const end = Date.now() + 12_000;
  let answered = 0;
  await Promise.all(Array.from({ length: 48 }, async () => {
    while (Date.now() < end) {
      const res = await request(`http://127.0.0.1:${busy.ports.http}/v2/models/mlp/infer`, { method: 'POST', body, headers: { 'content-type': 'application/json' } });
      await res.body.dump();
      assert.equal(res.statusCode, 200);
      answered++;
    }
  }));
  await sleep(2500); // the last scrape of the load is in
  const loadedAt = Date.now() / 1000;

  const queued = adapterQuery('sluice_queued_requests');
  const before = await perPod(prom, queued, idleAt);
  const after = await perPod(prom, queued, loadedAt);
  t.diagnostic(`sluice_queued_requests idle ${JSON.stringify(before)}, loaded ${JSON.stringify(after)}; ${answered} requests`);
  assert.deepEqual(Object.keys(before).sort(), ['gw-busy', 'gw-idle'], 'one value per pod before any request');
  assert.deepEqual(before, { 'gw-busy': 0, 'gw-idle': 0 });
  assert.deepEqual(Object.keys(after).sort(), ['gw-busy', 'gw-idle'], 'one value per pod under load');
  assert.ok(after['gw-busy']! > 0, 'the loaded pod reads requests queued');
  assert.equal(after['gw-idle'], 0, 'the idle pod still reads 0, not NaN or nothing');

  const wait = adapterQuery('sluice_queue_seconds_per_request');
  const waitAfter = await perPod(prom, wait, loadedAt);
  assert.deepEqual(Object.keys(waitAfter).sort(), ['gw-busy', 'gw-idle']);
  assert.ok(waitAfter['gw-busy']! > 0 && waitAfter['gw-busy']! < 1, `a queue time per request in seconds: ${waitAfter['gw-busy']}`);
  assert.equal(waitAfter['gw-idle'], 0);

  for (const trigger of ['queued', 'arrivals']) {
    const [x] = await fleet(prom, kedaQuery(trigger), idleAt);
    const [y, ...more] = await fleet(prom, kedaQuery(trigger), loadedAt);
    assert.deepEqual(more, [], `KEDA trigger ${trigger}: one fleet value`);
    assert.equal(x, 0, `KEDA trigger ${trigger} reads 0 while idle`);
    assert.ok(y !== undefined && y > 0, `KEDA trigger ${trigger} rises with the load: ${y}`);
  }
});
