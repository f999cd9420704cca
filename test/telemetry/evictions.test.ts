// sluice_model_evictions_total counts the models a worker evicted to make room, per model: a budget
// that holds one of two models, requests alternating between them.
import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { request } from 'undici';
import { estimateFootprint } from '../../src/worker/cache.ts';
import { SAMPLE_REPOSITORY, startTestSluice } from '../helpers/sluice.ts';
import { simpleRequest } from '../http/client.ts';

const footprint = (model: string): number => estimateFootprint(statSync(join(SAMPLE_REPOSITORY, model, '1', 'model.onnx')).size);

test('evictions are counted per evicted model', async (t) => {
  const budget = footprint('mlp') + 1024;
  const sluice = await startTestSluice(t, ['--model-control-mode', 'explicit', '--worker-memory-budget', String(budget)]);
  const base = `http://127.0.0.1:${sluice.ports.http}`;
  const post = async (path: string, body: unknown): Promise<number> => {
    const r = await request(`${base}${path}`, { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json' } });
    await r.body.dump();
    return r.statusCode;
  };
  // Loading both registers them; the second load evicts the first from the one worker.
  assert.equal(await post('/v2/repository/models/simple/load', {}), 200);
  assert.equal(await post('/v2/repository/models/mlp/load', {}), 200);
  const mlp = { inputs: [{ name: 'INPUT0', datatype: 'FP32', shape: [1, 784], data: new Array<number>(784).fill(0.5) }] };
  for (let round = 0; round < 2; round++) {
    assert.equal(await post('/v2/models/simple/infer', simpleRequest()), 200);
    assert.equal(await post('/v2/models/mlp/infer', mlp), 200);
  }
  const text = await (await request(`http://127.0.0.1:${sluice.ports.metrics}/metrics`)).body.text();
  const value = (model: string): number => Number(new RegExp(`^sluice_model_evictions_total\\{model="${model}"\\} (\\S+)$`, 'm').exec(text)?.[1]);
  // simple evicted by mlp's load and by each mlp run after a simple run; mlp evicted by each simple run.
  assert.equal(value('simple'), 3);
  assert.equal(value('mlp'), 2);
});
