import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Agent, request } from 'undici';
import { startTestSluice } from '../helpers/sluice.ts';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function body(k: number): string {
  return JSON.stringify({
    id: `r${k}`,
    inputs: [
      { name: 'INPUT0', shape: [1, 16], datatype: 'INT32', data: Array.from({ length: 16 }, (_, i) => i * k) },
      { name: 'INPUT1', shape: [1, 16], datatype: 'INT32', data: Array.from({ length: 16 }, () => k) },
    ],
  });
}

test('a worker SIGKILLed under load: every request is answered right, the worker respawns and serves again', async (t) => {
  const sluice = await startTestSluice(t, ['--workers', '2', '--worker-isolation', 'process']);
  const agent = new Agent({ connections: 32 });
  t.after(() => agent.close());
  const url = `http://127.0.0.1:${sluice.ports.http}/v2/models/simple/infer`;
  const one = async (k: number): Promise<void> => {
    const r = await request(url, { method: 'POST', body: body(k), headers: { 'content-type': 'application/json' }, dispatcher: agent });
    const json = (await r.body.json()) as { id: string; outputs: { name: string; data: number[] }[]; error?: string };
    assert.equal(r.statusCode, 200, `request ${k}: ${json.error ?? ''}`);
    assert.equal(json.id, `r${k}`);
    assert.deepEqual(json.outputs.find((o) => o.name === 'OUTPUT0')!.data, Array.from({ length: 16 }, (_, i) => i * k + k));
  };
  // 32 clients in closed loops keep both workers busy while one of them is killed.
  let next = 0;
  let stop = false;
  const loops = Array.from({ length: 32 }, async () => {
    while (!stop && next < 5000) await one(next++);
  });
  await sleep(300);
  const victim = sluice.workers().find((w) => w.pid !== undefined && w.completedBatches > 0);
  assert.ok(victim?.pid, 'a local worker with a pid that has run batches');
  process.kill(victim.pid, 'SIGKILL');
  await sleep(300);
  stop = true;
  await Promise.all(loops);
  assert.ok(next > 64, `load ran (${next} requests)`);
  const failed = (await sluice.metrics.requests.get()).values.filter((v) => v.labels.status !== 'success' && v.value > 0);
  assert.deepEqual(failed, [], 'no request failed');
  // The killed worker comes back (a new pid) and takes batches again.
  let back;
  for (let i = 0; i < 200; i++) {
    back = sluice.workers().find((w) => w.id === victim.id);
    if (back?.healthy && back.pid !== undefined && back.pid !== victim.pid) break;
    await sleep(50);
  }
  assert.ok(back?.healthy && back.pid !== victim.pid, `worker ${victim.id} respawned (${JSON.stringify(back)})`);
  assert.ok(back.restarts >= 1);
  const before = back.completedBatches;
  stop = false;
  next = 10_000;
  const more = Array.from({ length: 32 }, async () => {
    for (let i = 0; i < 20 && !stop; i++) await one(next++);
  });
  await Promise.all(more);
  const after = sluice.workers().find((w) => w.id === victim.id)!;
  assert.ok(after.completedBatches > before, `respawned worker served again (${before} -> ${after.completedBatches})`);
});
