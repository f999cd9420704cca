// The ensemble runner on its own, with steps answered by a stand-in for the service: the DAG order,
// independent steps at once, the first failing step's error, and cancellation reaching every step.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { InvalidRequest, RequestCancelled, RequestTimeout, WorkerFailed } from '../../src/core/errors.ts';
import type { InferRequest, InferResponse } from '../../src/core/inference.ts';
import type { EnsembleStep, ModelConfig } from '../../src/core/model.ts';
import { readPbtxtConfig } from '../../src/repository/pbtxt-config.ts';
import { normalizeConfig } from '../../src/repository/normalize.ts';
import { runEnsemble } from '../../src/scheduler/ensemble.ts';
import { ModelStatsRecorder } from '../../src/scheduler/stats.ts';

const f32 = (v: number): Uint8Array => new Uint8Array(Float32Array.of(v).buffer);
const value = (r: InferRequest, name: string): number => new Float32Array((r.inputs.find((i) => i.name === name)!.data as Uint8Array).slice().buffer)[0]!;

/** A diamond: a = split(X); b = left(a), c = right(a); Y = join(b, c). */
function diamond(): ModelConfig {
  const step = (model: string, inputs: string, outputs: string): string => `{ model_name: "${model}" ${inputs} ${outputs} }`;
  const map = (kind: string, pairs: [string, string][]): string => pairs.map(([k, v]) => `${kind} { key: "${k}" value: "${v}" }`).join(' ');
  const text = `name: "d" platform: "ensemble" max_batch_size: 0
input [ { name: "X" data_type: TYPE_FP32 dims: [ 1 ] } ]
output [ { name: "Y" data_type: TYPE_FP32 dims: [ 1 ] } ]
ensemble_scheduling { step [
  ${step('join', map('input_map', [['L', 'b'], ['R', 'c']]), map('output_map', [['O', 'Y']]))},
  ${step('left', map('input_map', [['I', 'a']]), map('output_map', [['O', 'b']]))},
  ${step('right', map('input_map', [['I', 'a']]), map('output_map', [['O', 'c']]))},
  ${step('split', map('input_map', [['I', 'X']]), map('output_map', [['O', 'a']]))}
] }`;
  const draft = readPbtxtConfig(text);
  const io = { maxBatchSize: 0, inputs: [{ name: 'X', datatype: 'FP32' as const, dims: [1] }], outputs: [{ name: 'Y', datatype: 'FP32' as const, dims: [1] }] };
  return normalizeConfig('d', draft, io);
}

function request(signal?: AbortSignal): InferRequest {
  return { id: 'r', model: 'd', version: '', inputs: [{ name: 'X', datatype: 'FP32', shape: [1], data: f32(3) }], outputs: [], priority: 0, timeoutUs: 0, arrivalMs: performance.now(), protocol: 'http', ...(signal && { signal }) };
}

/** Every step model has one priority level, except 'left' with three. */
const levelsOf = (model: string): number => (model === 'left' ? 3 : 1);

const answer = (r: InferRequest, v: number): InferResponse => ({ id: r.id, model: r.model, version: '1', outputs: [{ name: 'O', datatype: 'FP32', shape: [1], data: f32(v) }] });

test('steps run in dataflow order, independent ones at once, and the outputs are mapped back', async () => {
  const config = diamond();
  assert.deepEqual(config.ensembleScheduling?.steps.map((s: EnsembleStep) => s.modelName), ['join', 'left', 'right', 'split']);
  const order: string[] = [];
  let inFlight = 0;
  let most = 0;
  const infer = async (r: InferRequest): Promise<InferResponse> => {
    order.push(r.model);
    inFlight++;
    most = Math.max(most, inFlight);
    await new Promise((resolve) => setTimeout(resolve, 5));
    inFlight--;
    if (r.model === 'split') return answer(r, value(r, 'I') + 1);
    if (r.model === 'left') return answer(r, value(r, 'I') * 2);
    if (r.model === 'right') return answer(r, value(r, 'I') * 10);
    return answer(r, value(r, 'L') + value(r, 'R'));
  };
  const stats = new ModelStatsRecorder('d', '1');
  const res = await runEnsemble({ config, version: '1', rows: 1, stats, infer, levelsOf }, request());
  assert.deepEqual(order, ['split', 'left', 'right', 'join']);
  assert.equal(most, 2, 'left and right ran at the same time');
  assert.deepEqual(res.outputs.map((o) => o.name), ['Y']);
  assert.equal(new Float32Array((res.outputs[0]!.data as Uint8Array).slice().buffer)[0], 4 * 2 + 4 * 10);
  const s = stats.snapshot();
  assert.deepEqual([s.success.count, s.fail.count, s.inferenceCount, s.executionCount, s.queue.ns], [1, 0, 1, 1, 0]);
});

test('the first failing step fails the request with its own error and cancels the steps still running', async () => {
  let rightSignal: AbortSignal | undefined;
  const infer = async (r: InferRequest): Promise<InferResponse> => {
    if (r.model === 'split') return answer(r, 1);
    if (r.model === 'left') throw WorkerFailed('w1', 'boom');
    rightSignal = r.signal;
    await new Promise((resolve) => setTimeout(resolve, 20));
    if (r.model === 'join') assert.fail('join must not run');
    return answer(r, 1);
  };
  const stats = new ModelStatsRecorder('d', '1');
  await assert.rejects(runEnsemble({ config: diamond(), version: '1', rows: 1, stats, infer, levelsOf }, request()), (e: Error & { code?: string; kind?: string }) => e.code === WorkerFailed.code && e.kind === 'UNAVAILABLE' && /boom/.test(e.message));
  assert.equal(rightSignal?.aborted, true, 'the sibling step was cancelled');
  assert.equal(stats.snapshot().fail.count, 1);
  assert.equal(stats.snapshot().success.count, 0);
});

test('cancelling the ensemble request cancels its steps and answers as cancelled', async () => {
  const controller = new AbortController();
  const seen: AbortSignal[] = [];
  const infer = (r: InferRequest): Promise<InferResponse> => new Promise((resolve, reject) => {
    seen.push(r.signal!);
    r.signal!.addEventListener('abort', () => reject(RequestCancelled(r.model)));
    if (r.model === 'split') setTimeout(() => resolve(answer(r, 1)), 1);
  });
  const run = runEnsemble({ config: diamond(), version: '1', rows: 1, stats: new ModelStatsRecorder('d', '1'), infer, levelsOf }, request(controller.signal));
  // Wait until the two middle steps are running, then cancel.
  while (seen.length < 3) await new Promise((resolve) => setTimeout(resolve, 1));
  controller.abort();
  await assert.rejects(run, (e: Error & { code?: string }) => e.code === RequestCancelled.code && /model 'd'/.test(e.message));
  assert.ok(seen.every((s) => s.aborted));
  await assert.rejects(runEnsemble({ config: diamond(), version: '1', rows: 1, stats: new ModelStatsRecorder('d', '1'), infer, levelsOf }, request(controller.signal)), (e: Error & { code?: string }) => e.code === RequestCancelled.code);
  // An invalid step request is that step's error, unchanged.
  const bad = (r: InferRequest): Promise<InferResponse> => Promise.reject(InvalidRequest(`bad input for ${r.model}`));
  await assert.rejects(runEnsemble({ config: diamond(), version: '1', rows: 1, stats: new ModelStatsRecorder('d', '1'), infer: bad, levelsOf }, request()), /bad input for split/);
});

test("the ensemble's timeout passes to each step as what is left of it; an expired one runs no step", async () => {
  const seen: number[] = [];
  const infer = (r: InferRequest): Promise<InferResponse> => {
    seen.push(r.timeoutUs);
    return Promise.resolve(answer(r, r.model === 'join' ? value(r, 'L') : value(r, 'I')));
  };
  const stats = new ModelStatsRecorder('d', '1');
  await runEnsemble({ config: diamond(), version: '1', rows: 1, stats, infer, levelsOf }, { ...request(), timeoutUs: 1_000_000, arrivalMs: performance.now() - 100 });
  assert.equal(seen.length, 4);
  assert.ok(seen.every((us) => us > 0 && us <= 900_000), `step timeouts ${seen.join(', ')}`);
  seen.length = 0;
  await assert.rejects(runEnsemble({ config: diamond(), version: '1', rows: 1, stats, infer, levelsOf }, { ...request(), timeoutUs: 1000, arrivalMs: performance.now() - 50 }), (e: Error & { code?: string }) => e.code === RequestTimeout.code);
  assert.equal(seen.length, 0);
});

test("the ensemble's priority passes to each step whose model has that level; the others run at their default", async () => {
  const seen = new Map<string, number>();
  const infer = (r: InferRequest): Promise<InferResponse> => {
    seen.set(r.model, r.priority);
    return Promise.resolve(answer(r, r.model === 'join' ? value(r, 'L') : value(r, 'I')));
  };
  const stats = new ModelStatsRecorder('d', '1');
  await runEnsemble({ config: diamond(), version: '1', rows: 1, stats, infer, levelsOf }, { ...request(), priority: 2 });
  assert.deepEqual(Object.fromEntries(seen), { split: 0, left: 2, right: 0, join: 0 });
  await runEnsemble({ config: diamond(), version: '1', rows: 1, stats, infer, levelsOf }, { ...request(), priority: 1 });
  assert.deepEqual(Object.fromEntries(seen), { split: 1, left: 1, right: 1, join: 1 });
  await runEnsemble({ config: diamond(), version: '1', rows: 1, stats, infer, levelsOf: () => undefined }, { ...request(), priority: 1 });
  assert.deepEqual(Object.fromEntries(seen), { split: 0, left: 0, right: 0, join: 0 }, 'a step model whose levels cannot be read runs at its default');
});
