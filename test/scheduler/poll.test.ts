// Poll mode: the service rescans the repository on its own (every second here) and follows it.
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { GatewayService } from '../../src/scheduler/service.ts';
import { Metrics } from '../../src/telemetry/metrics.ts';
import { keepAlive, quietLogger, simpleRequest, sleep } from './fixtures.ts';
import { OrtTestExecutor } from './ort-executor.ts';
import { addSimpleLike, makeRepository, serviceConfig } from './repo-fixture.ts';

async function until(what: string, check: () => boolean, ms = 5_000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) assert.fail(`timed out waiting until ${what}`);
    await sleep(50);
  }
}

void test('poll mode loads models that appear, reloads changed ones and unloads those that vanish', async (t) => {
  keepAlive(t);
  const root = makeRepository(t);
  const ex = new OrtTestExecutor({ root });
  const service = new GatewayService({ config: serviceConfig(root, ['--model-control-mode', 'poll', '--repository-poll-secs', '1']), executor: ex, metrics: new Metrics({ defaultMetrics: false }), logger: quietLogger });
  t.after(async () => {
    service.close();
    await ex.close();
  });
  await service.start();
  assert.equal(service.hasModel('late'), false);
  await assert.rejects(service.loadModel('simple'), (e: Error & { code?: string }) => e.code === 'SLUICE_MODEL_CONTROL_DISABLED');

  addSimpleLike(root, 'late', ['1']);
  addSimpleLike(root, 'simple', ['2']);
  rmSync(join(root, 'multi'), { recursive: true });
  await until('late is ready, simple serves version 2 and multi is gone', () => service.modelReady('late', '') && service.modelReady('simple', '2') && !service.hasModel('multi'));
  assert.equal((await service.infer(simpleRequest(1, 1, { model: 'late' }))).version, '1');
  assert.equal((await service.infer(simpleRequest(1, 1))).version, '2');
  await until('the old versions were unloaded', () => ['multi/1', 'multi/2', 'simple/1'].every((v) => ex.unloads.includes(v)));
  assert.equal(service.modelReady('simple', '1'), false, 'latest{1} serves only the newest version');
  assert.equal(service.isReady(), true);
});
