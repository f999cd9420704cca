// Two gateways, one worker host: the host bounds what it holds from every gateway together
// (--max-queued-batches) and answers busy past it; each gateway keeps such a batch in its model's queue
// and sends it again shortly, so no client sees the refusal, no worker is ejected, and no batch uses
// up its one retry for it.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { request } from 'undici';
import { SAMPLE_REPOSITORY, startTestSluice } from '../helpers/sluice.ts';
import { health, poolFor, spawnWorker } from '../worker/helpers.ts';

function mlpRequest(seed: number): string {
  const data = Array.from({ length: 4 * 784 }, (_, i) => ((i * 7 + seed) % 100) / 100);
  return JSON.stringify({ inputs: [{ name: 'INPUT0', shape: [4, 784], datatype: 'FP32', data }] });
}

async function metric(port: number, pattern: RegExp): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  let sum = 0;
  for (const line of text.split('\n')) {
    const m = pattern.exec(line);
    if (m) sum += Number(m[1]);
  }
  return sum;
}

test('two gateways oversubscribing one worker host: the host says busy, the gateways keep the batches queued, every request is answered', { timeout: 120_000 }, async (t) => {
  const worker = await spawnWorker(t, ['--listen', '127.0.0.1:0', '--model-repository', SAMPLE_REPOSITORY, '--intra-op-threads', '1', '--max-queued-batches', '1']);
  const url = `http://${worker.address}`;
  // Four batches in flight from each gateway against room for three at the host (two in its ORT
  // thread, one queued): busy answers are certain under load.
  const flags = ['--workers', '0', '--worker', url, '--worker-max-inflight', '4', '--model-control-mode', 'explicit', '--load-model', 'mlp', '--log-level', 'error'];
  const gateways = await Promise.all([startTestSluice(t, flags), startTestSluice(t, flags)]);
  let sent = 0;
  const failures: string[] = [];
  await Promise.all(gateways.flatMap((g) => Array.from({ length: 24 }, async () => {
    for (let n = 0; n < 12; n++) {
      const seed = sent++;
      const res = await request(`http://127.0.0.1:${g.ports.http}/v2/models/mlp/infer`, { method: 'POST', body: mlpRequest(seed), headers: { 'content-type': 'application/json' } });
      const body = await res.body.text();
      if (res.statusCode !== 200) failures.push(`${res.statusCode} ${body.slice(0, 200)}`);
      else assert.equal((JSON.parse(body) as { outputs: { shape: number[] }[] }).outputs[0]!.shape.join('x'), '4x10');
    }
  })));
  assert.deepEqual(failures, [], 'every request answered');
  assert.equal(sent, 2 * 24 * 12);
  let busy = 0;
  for (const g of gateways) {
    busy += await metric(g.ports.metrics, /^sluice_worker_busy_total\{[^}]*\} (\S+)$/);
    assert.equal(await metric(g.ports.metrics, /^sluice_batch_retries_total\{model="mlp"\} (\S+)$/), 0, 'a busy answer uses up no retry');
    assert.equal(await metric(g.ports.metrics, /^sluice_worker_up\{[^}]*\} (\S+)$/), 1, 'the worker was never ejected for being busy');
  }
  assert.ok(busy > 0, 'the host refused some batches as busy');
  const pool = poolFor(worker.address);
  const held = (await health(pool)).heldBatches;
  await pool.close();
  assert.ok(held, 'a worker host reports what it held');
  assert.equal(held.bound, 3, 'one queued plus two in the ORT thread');
  assert.ok(held.peak <= held.bound && held.peak >= 2, `the host never held more than its bound (peak ${held.peak} of ${held.bound})`);
  t.diagnostic(`${busy} busy answers over ${sent} requests`);
});
