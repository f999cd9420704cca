// GatewayService over the balancer's real WorkerPool: a worker process runs the batches.
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { WorkerPool } from '../../src/balancer/pool.ts';
import { loadConfig } from '../../src/config/load.ts';
import { GatewayService } from '../../src/scheduler/service.ts';
import { Metrics } from '../../src/telemetry/metrics.ts';
import { expectedSimple, int32s, keepAlive, quietLogger, simpleRequest } from './fixtures.ts';

const REPOSITORY = fileURLToPath(new URL('../../models', import.meta.url));

void test('GatewayService over a real WorkerPool batches concurrent requests and answers each exactly', async (t) => {
  keepAlive(t);
  const config = loadConfig({
    argv: ['--model-repository', REPOSITORY, '--workers', '1', '--intra-op-threads', '1', '--model-control-mode', 'explicit', '--load-model', 'simple', '--log-level', 'fatal'],
    env: {},
  });
  const metrics = new Metrics({ defaultMetrics: false });
  const pool = await WorkerPool.create({ config, metrics, logger: quietLogger });
  const service = new GatewayService({ config, executor: pool, metrics, logger: quietLogger });
  t.after(async () => {
    service.close();
    await pool.close();
  });
  await service.start();
  assert.equal(service.isReady(), true);
  assert.equal(pool.hotWorkers('simple', '1'), 1, 'start made the model hot before the first request');

  const requests = Array.from({ length: 120 }, (_, i) => ({ seed: i + 1, rows: 1 + (i % 3) }));
  const answers = await Promise.all(requests.map((r) => service.infer(simpleRequest(r.seed, r.rows))));
  answers.forEach((res, i) => {
    const r = requests[i]!;
    const want = expectedSimple(r.seed, r.rows);
    assert.deepEqual(int32s(res.outputs[0]!), want.sum);
    assert.deepEqual(int32s(res.outputs[1]!), want.diff);
  });
  const [stats] = service.modelStats('simple', '1');
  assert.equal(stats!.inferenceCount, requests.reduce((n, r) => n + r.rows, 0));
  assert.ok(stats!.executionCount < requests.length, `requests shared batches (${stats!.executionCount} batches for ${requests.length} requests)`);

  await service.drain();
  await assert.rejects(service.infer(simpleRequest(1)), (e: Error & { code?: string }) => e.code === 'SLUICE_SHUTTING_DOWN');
});
