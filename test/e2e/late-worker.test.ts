// A gateway that starts before its remote worker (a rollout, workers scaled to zero): its models find
// no worker, and load once the worker joins, without a restart.
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { test } from 'node:test';
import { request } from 'undici';
import { SAMPLE_REPOSITORY, startTestSluice } from '../helpers/sluice.ts';
import { simpleRequest } from '../http/client.ts';
import { spawnWorker } from '../worker/helpers.ts';

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', () => resolve()));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

test('models that found no worker at start load when the worker appears', { timeout: 90_000 }, async (t) => {
  const port = await freePort();
  const sluice = await startTestSluice(t, ['--workers', '0', '--worker', `http://127.0.0.1:${port}`, '--load-model', 'simple']);
  const base = `http://127.0.0.1:${sluice.ports.http}`;
  const ready = async (): Promise<number> => {
    const r = await request(`${base}/v2/models/simple/ready`);
    await r.body.dump();
    return r.statusCode;
  };
  assert.equal(await ready(), 400, 'no worker: not ready');
  await spawnWorker(t, ['--listen', `127.0.0.1:${port}`, '--model-repository', SAMPLE_REPOSITORY, '--intra-op-threads', '1']);
  const deadline = Date.now() + 60_000;
  while ((await ready()) !== 200) {
    assert.ok(Date.now() < deadline, 'the model did not become ready within 60 s of the worker starting');
    await new Promise((r) => setTimeout(r, 200));
  }
  const res = await request(`${base}/v2/models/simple/infer`, { method: 'POST', body: JSON.stringify(simpleRequest()), headers: { 'content-type': 'application/json' } });
  assert.equal(res.statusCode, 200, await res.body.text());
});
