// One client's bad data fails only that client: a batch ONNX Runtime fails is bisected (bisect.ts).
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import type { InferRequest, InferResponse } from '../../src/core/inference.ts';
import { isSluiceError } from '../../src/core/errors.ts';
import { makeBatcher, sampleConfig, submit } from './fixtures.ts';
import { OrtTestExecutor } from './ort-executor.ts';

function executor(t: TestContext): OrtTestExecutor {
  const ex = new OrtTestExecutor({ slots: 1 });
  t.after(() => ex.close());
  return ex;
}

const text = (s: string): Uint8Array => new TextEncoder().encode(s);

/** simple_string, one row: INPUT0 = seed, seed+1, ...; INPUT1 = 1s. `bad` puts a word where a number goes. */
function stringRequest(seed: number, bad = false): InferRequest {
  const a = Array.from({ length: 16 }, (_, i) => (bad && i === 3 ? 'three' : String(seed + i)));
  return {
    id: `s${seed}`, model: 'simple_string', version: '', priority: 0, timeoutUs: 0, arrivalMs: performance.now(), protocol: 'http', outputs: [],
    inputs: [
      { name: 'INPUT0', datatype: 'BYTES', shape: [1, 16], data: a.map(text) },
      { name: 'INPUT1', datatype: 'BYTES', shape: [1, 16], data: a.map(() => text('1')) },
    ],
  };
}

function sums(res: InferResponse): string[] {
  const out = res.outputs.find((o) => o.name === 'OUTPUT0')!;
  return (out.data as readonly Uint8Array[]).map((b) => new TextDecoder().decode(b));
}

const settle = (p: Promise<InferResponse>): Promise<InferResponse | Error> => p.catch((e: unknown) => e as Error);

void test('bad data in a batch fails only its own request, with INVALID_ARGUMENT; every other request is answered', async (t) => {
  const ex = executor(t);
  const config = await sampleConfig('simple_string');
  const rig = makeBatcher(ex, config);
  ex.hold();
  const first = submit(rig, config, stringRequest(1000));
  // 14 queued behind the held batch, two of them bad: they leave together as one batch of 14.
  const seeds = Array.from({ length: 14 }, (_, i) => i * 100);
  const badAt = new Set([3, 10]);
  const queued = seeds.map((seed, i) => settle(submit(rig, config, stringRequest(seed, badAt.has(i)))));
  ex.release();
  await first;
  const answers = await Promise.all(queued);
  answers.forEach((a, i) => {
    if (badAt.has(i)) {
      assert.ok(isSluiceError(a), `request ${i} fails`);
      assert.equal(a.code, 'SLUICE_INPUT_REJECTED_BY_MODEL');
      assert.equal(a.kind, 'INVALID_ARG');
      assert.match(a.message, /model 'simple_string' could not run this request's data/);
    } else {
      assert.ok(!(a instanceof Error), `request ${i} is answered: ${a instanceof Error ? a.message : ''}`);
      assert.deepEqual(sums(a), Array.from({ length: 16 }, (_, k) => String(seeds[i]! + k + 1)));
    }
  });
  const sizes = ex.batches.map((b) => b.job.rows);
  assert.equal(sizes[1], 14, 'the good and the bad were batched together first');
  // Halves of halves: at most two runs per level for each culprit, never more than the batch's rows.
  const extra = sizes.length - 2;
  assert.ok(extra <= 2 * badAt.size * Math.ceil(Math.log2(14)), `bisection took ${extra} extra runs: ${sizes.join(',')}`);
  assert.ok(sizes.slice(2).every((n) => n <= 7), 'every re-run is a part of the failed batch, never joined by others');
});

void test('when nothing in the batch can run, each request keeps the inference error (the model, not the data)', async (t) => {
  const ex = executor(t);
  const config = await sampleConfig('simple_string');
  const rig = makeBatcher(ex, config);
  ex.hold();
  const first = submit(rig, config, stringRequest(1));
  const queued = [10, 20, 30].map((seed) => settle(submit(rig, config, stringRequest(seed, true))));
  ex.release();
  await first;
  for (const a of await Promise.all(queued)) {
    assert.ok(isSluiceError(a));
    assert.equal(a.code, 'SLUICE_INFERENCE_FAILED', 'no batch-mate ran, so nothing says the data is at fault');
  }
});

void test('a lone request that fails is not re-run', async (t) => {
  const ex = executor(t);
  const config = await sampleConfig('simple_string');
  const rig = makeBatcher(ex, config);
  const a = await settle(submit(rig, config, stringRequest(5, true)));
  assert.ok(isSluiceError(a));
  assert.equal(a.code, 'SLUICE_INFERENCE_FAILED');
  assert.equal(ex.batches.length, 1);
});
