// Poll mode: the service rescans the repository on its own (every second here) and follows it.
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { GatewayService } from '../../src/scheduler/service.ts';
import { Metrics } from '../../src/telemetry/metrics.ts';
import { createLogger } from '../../src/telemetry/logger.ts';
import { keepAlive, simpleRequest, sleep } from './fixtures.ts';
import { OrtTestExecutor } from './ort-executor.ts';
import { addSimpleLike, makeRepository, serviceConfig } from './repo-fixture.ts';

async function until(what: string, check: () => boolean, ms = 5_000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) assert.fail(`timed out waiting until ${what}`);
    await sleep(50);
  }
}

/** A service in poll mode (rescanning every second) over a fresh repository and an in-process executor. */
async function startPolling(t: TestContext): Promise<{ root: string; ex: OrtTestExecutor; service: GatewayService; logged: string[] }> {
  keepAlive(t);
  const root = makeRepository(t);
  const ex = new OrtTestExecutor({ root });
  // The service's log lines, so that a test can wait for a poll to have seen a change.
  const logged: string[] = [];
  const logger = createLogger('info', { write: (line: string) => void logged.push(line) });
  const service = new GatewayService({ config: serviceConfig(root, ['--model-control-mode', 'poll', '--repository-poll-secs', '1']), executor: ex, metrics: new Metrics({ defaultMetrics: false }), logger });
  t.after(async () => {
    service.close();
    await ex.close();
  });
  await service.start();
  return { root, ex, service, logged };
}

void test('poll mode loads models that appear, reloads changed ones and unloads those that vanish', async (t) => {
  const { root, ex, service } = await startPolling(t);
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

void test('a new version takes over without a gap; when the next one cannot load, the serving one stays', async (t) => {
  const { root, ex, service, logged } = await startPolling(t);
  assert.equal((await service.infer(simpleRequest(1, 1))).version, '1');

  // Two clients keep asking for `simple` (no version: the policy's choice) through the rollover.
  const seen = new Set<string>();
  const failures: string[] = [];
  let stop = false;
  const client = async (): Promise<void> => {
    for (let i = 0; !stop && i < 100_000; i++) {
      try {
        seen.add((await service.infer(simpleRequest(i % 50, 1))).version);
      } catch (e) {
        failures.push((e as Error).message);
      }
      await sleep(2);
    }
  };
  const clients = [client(), client()];
  addSimpleLike(root, 'simple', ['2']);
  await until('version 2 serves and version 1 is unloaded', () => service.modelReady('simple', '2') && ex.unloads.includes('simple/1'));
  await sleep(100);
  stop = true;
  await Promise.all(clients);
  assert.deepEqual(failures, [], 'no request failed during the rollover');
  assert.deepEqual([...seen].sort(), ['1', '2'], 'answers moved from version 1 to version 2');

  // Version 3 is not a model at all: version 2 keeps serving.
  const mark = logged.length;
  mkdirSync(join(root, 'simple', '3'), { recursive: true });
  writeFileSync(join(root, 'simple', '3', 'model.onnx'), 'not an onnx file');
  await until('a poll saw the broken version 3 and kept version 2', () => logged.slice(mark).some((l) => l.includes('"model":"simple"') && /keep serving|failed to load/.test(l)));
  assert.equal(service.modelReady('simple', '2'), true, 'version 2 still serves');
  assert.equal(ex.unloads.includes('simple/2'), false);
  assert.equal((await service.infer(simpleRequest(2, 1))).version, '2');
  // Once version 3 is a real model, it takes over.
  copyFileSync(join(root, 'simple', '2', 'model.onnx'), join(root, 'simple', '3', 'model.onnx'));
  await until('version 3 serves and version 2 is unloaded', () => service.modelReady('simple', '3') && ex.unloads.includes('simple/2'));
  assert.equal((await service.infer(simpleRequest(3, 1))).version, '3');
  // A replaced file (here: the same bytes, a new modification time) reloads its version.
  const loadsOf3 = (): number => ex.loads.filter((l) => l === 'simple/3').length;
  assert.equal(loadsOf3(), 1);
  const later = new Date(Date.now() + 60_000);
  utimesSync(join(root, 'simple', '3', 'model.onnx'), later, later);
  await until('version 3 was reloaded from its new file', () => loadsOf3() === 2 && ex.unloads.includes('simple/3') && service.modelReady('simple', '3'));
  assert.equal((await service.infer(simpleRequest(3, 1))).version, '3');
});

void test('a change to scheduling settings alone swaps the batcher: no reload, queued requests still answered, new limits in force', async (t) => {
  const { root, ex, service } = await startPolling(t);
  const limit = (): number | undefined => [...service.queueLimits()].find(([m]) => m === 'simple')?.[1];
  assert.equal(limit(), 1024);
  const loadsBefore = [...ex.loads];

  ex.hold();
  const queued = [1, 2, 3, 4].map((seed) => service.infer(simpleRequest(seed, 1)));
  const file = join(root, 'simple', 'config.pbtxt');
  writeFileSync(file, readFileSync(file, 'utf8').replace('max_queue_size: 1024', 'max_queue_size: 2'));
  await until('the new queue limit is in force', () => limit() === 2);
  // The new batcher takes new requests under the new bound while the old one still holds four.
  const fresh = [5, 6].map((seed) => service.infer(simpleRequest(seed, 1)));
  await assert.rejects(service.infer(simpleRequest(7, 1)), (e: Error & { code?: string }) => e.code === 'SLUICE_QUEUE_FULL');
  ex.release();
  const answers = await Promise.all([...queued, ...fresh]);
  assert.equal(answers.length, 6, 'every request accepted before and after the change is answered');
  assert.deepEqual(ex.loads, loadsBefore, 'no session was loaded again');
  assert.deepEqual(ex.unloads, [], 'and none unloaded');
  assert.equal(service.modelReady('simple', '1'), true);
});
