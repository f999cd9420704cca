// Ensembles over REST: mlp_pipeline (preprocess -> mlp -> postprocess) answers byte for byte what its
// three models answer one by one, counts in their statistics and its own, fails with a step's error,
// and a repository lists broken ensembles with their reasons.
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { request } from 'undici';
import { SAMPLE_REPOSITORY, startTestSluice } from '../helpers/sluice.ts';

interface Wire {
  readonly datatype: string;
  readonly shape: number[];
  readonly bytes: Buffer;
}

/** Parsed JSON answers, indexed freely as the tests read Triton's field names. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = Record<string, any>;

/** One inference with every input and output as binary tensor data; outputs by name. */
async function inferBinary(port: number, model: string, inputs: Record<string, Wire>): Promise<Map<string, Wire>> {
  const header = Buffer.from(JSON.stringify({
    inputs: Object.entries(inputs).map(([name, t]) => ({ name, datatype: t.datatype, shape: t.shape, parameters: { binary_data_size: t.bytes.length } })),
    parameters: { binary_data_output: true },
  }));
  const res = await request(`http://127.0.0.1:${port}/v2/models/${model}/infer`, {
    method: 'POST',
    headers: { 'content-type': 'application/octet-stream', 'inference-header-content-length': String(header.length) },
    body: Buffer.concat([header, ...Object.values(inputs).map((t) => t.bytes)]),
  });
  const body = Buffer.from(await res.body.arrayBuffer());
  assert.equal(res.statusCode, 200, body.toString());
  const length = Number(res.headers['inference-header-content-length']);
  const json = JSON.parse(body.subarray(0, length).toString()) as { outputs: { name: string; datatype: string; shape: number[]; parameters: { binary_data_size: number } }[] };
  const out = new Map<string, Wire>();
  let at = length;
  for (const o of json.outputs) {
    const size = o.parameters.binary_data_size;
    out.set(o.name, { datatype: o.datatype, shape: o.shape, bytes: body.subarray(at, at + size) });
    at += size;
  }
  return out;
}

async function getJson(port: number, path: string, method: 'GET' | 'POST' = 'GET', body?: object): Promise<{ status: number; json: Json }> {
  const res = await request(`http://127.0.0.1:${port}${path}`, { method, ...(body && { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }) });
  const text = await res.body.text();
  return { status: res.statusCode, json: text === '' ? {} : (JSON.parse(text) as Json) };
}

async function statsOf(port: number, model: string): Promise<Json> {
  const { status, json } = await getJson(port, `/v2/models/${model}/stats`);
  assert.equal(status, 200);
  return (json['model_stats'] as Json[])[0]!;
}

const pixels = (rows: number): Buffer => Buffer.from(Array.from({ length: rows * 784 }, (_, i) => (i * 37) % 256));

test('mlp_pipeline answers the bytes of its three models run one by one, with per-step and ensemble statistics', async (t) => {
  // Explicit mode loading only the ensemble: its step models load with it (as Triton does).
  const sluice = await startTestSluice(t, ['--model-control-mode', 'explicit', '--load-model', 'mlp_pipeline']);
  const port = sluice.ports.http;
  const index = (await getJson(port, '/v2/repository/index', 'POST')).json as unknown as { name: string; state: string }[];
  const state = new Map(index.map((e) => [e.name, e.state]));
  for (const m of ['mlp_pipeline', 'preprocess', 'mlp', 'postprocess']) assert.equal(state.get(m), 'READY', `${m} is loaded`);
  assert.equal(state.get('cnn'), 'UNAVAILABLE', 'models no step names stay unloaded');
  assert.equal((await request(`http://127.0.0.1:${port}/v2/models/mlp_pipeline/ready`)).statusCode, 200);

  const meta = (await getJson(port, '/v2/models/mlp_pipeline')).json;
  assert.equal(meta['platform'], 'ensemble');
  assert.deepEqual(meta['inputs'], [{ name: 'IMAGE', datatype: 'UINT8', shape: [-1, 784] }]);
  assert.deepEqual((meta['outputs'] as Json[]).map((o) => [o['name'], o['datatype'], o['shape']]), [['CLASS', 'INT64', [-1, 1]], ['PROBABILITIES', 'FP32', [-1, 10]]]);
  const config = (await getJson(port, '/v2/models/mlp_pipeline/config')).json;
  assert.equal(config['platform'], 'ensemble');
  assert.equal(config['dynamic_batching'], undefined, 'ensemble_scheduling is the scheduling choice');
  assert.deepEqual(config['ensemble_scheduling'], { step: [
    { model_name: 'preprocess', model_version: -1, input_map: { INPUT0: 'IMAGE' }, output_map: { OUTPUT0: 'scaled' } },
    { model_name: 'mlp', model_version: -1, input_map: { INPUT0: 'scaled' }, output_map: { OUTPUT0: 'probabilities' } },
    { model_name: 'postprocess', model_version: -1, input_map: { INPUT0: 'probabilities' }, output_map: { CLASS: 'CLASS', PROBABILITIES: 'PROBABILITIES' } },
  ] });

  const steps = ['preprocess', 'mlp', 'postprocess'];
  const before = await Promise.all(steps.map((m) => statsOf(port, m)));
  const image: Wire = { datatype: 'UINT8', shape: [2, 784], bytes: pixels(2) };
  const whole = await inferBinary(port, 'mlp_pipeline', { IMAGE: image });
  const after = await Promise.all(steps.map((m) => statsOf(port, m)));
  steps.forEach((m, i) => {
    assert.equal(after[i]!['inference_count'] - before[i]!['inference_count'], 2, `${m} inferred the 2 rows`);
    assert.equal(after[i]!['execution_count'] - before[i]!['execution_count'], 1, `${m} ran one batch`);
    assert.equal(after[i]!['inference_stats'].success.count - before[i]!['inference_stats'].success.count, 1);
  });
  const own = await statsOf(port, 'mlp_pipeline');
  assert.equal(own['inference_count'], 2);
  assert.equal(own['execution_count'], 1);
  assert.equal(own['inference_stats'].success.count, 1);
  assert.equal(own['inference_stats'].fail.count, 0);
  assert.equal(own['inference_stats'].queue.ns, 0, 'an ensemble waits only in its steps\' queues');
  assert.ok(own['inference_stats'].compute_infer.ns > 0, 'the whole run counts as compute');

  const scaled = (await inferBinary(port, 'preprocess', { INPUT0: image })).get('OUTPUT0')!;
  const probabilities = (await inferBinary(port, 'mlp', { INPUT0: scaled })).get('OUTPUT0')!;
  const last = await inferBinary(port, 'postprocess', { INPUT0: probabilities });
  for (const name of ['CLASS', 'PROBABILITIES']) {
    const a = whole.get(name)!;
    const b = last.get(name)!;
    assert.deepEqual([a.datatype, a.shape], [b.datatype, b.shape], name);
    assert.ok(a.bytes.equals(b.bytes), `${name}: the same bytes`);
  }
  assert.deepEqual(whole.get('CLASS')!.shape, [2, 1]);

  // The metrics name the ensemble as any model.
  const metrics = await (await request(`http://127.0.0.1:${sluice.ports.metrics}/metrics`)).body.text();
  assert.match(metrics, /sluice_requests_total\{[^}]*model="mlp_pipeline"/);
});

/** A repository with the three step models and ensembles good and broken. */
function brokenRepository(): string {
  const root = mkdtempSync(join(tmpdir(), 'sluice-ensemble-'));
  for (const m of ['preprocess', 'mlp', 'postprocess']) {
    mkdirSync(join(root, m, '1'), { recursive: true });
    copyFileSync(join(SAMPLE_REPOSITORY, m, '1', 'model.onnx'), join(root, m, '1', 'model.onnx'));
  }
  const ensemble = (name: string, body: string, dims = '784'): void => {
    mkdirSync(join(root, name, '1'), { recursive: true });
    writeFileSync(join(root, name, 'config.pbtxt'), `name: "${name}"\nplatform: "ensemble"\nmax_batch_size: 8\ninput [ { name: "IMAGE" data_type: TYPE_UINT8 dims: [ ${dims} ] } ]\noutput [ { name: "OUT" data_type: TYPE_FP32 dims: [ 784 ] } ]\nensemble_scheduling { step [ ${body} ] }\n`);
  };
  const pre = (input: string, output: string): string => `{ model_name: "preprocess" model_version: -1 input_map { key: "INPUT0" value: "${input}" } output_map { key: "OUTPUT0" value: "${output}" } }`;
  // Any number of pixels passes the ensemble's own check: preprocess refuses all but 784.
  ensemble('loose', pre('IMAGE', 'OUT'), '-1');
  ensemble('unknown_step', `${pre('IMAGE', 'OUT')}, { model_name: "nosuch" input_map { key: "X" value: "OUT" } output_map { key: "Y" value: "z" } }`);
  ensemble('unfed', pre('missing', 'OUT'));
  ensemble('cycle', `${pre('b', 'a')}, ${pre('a', 'b')}, ${pre('IMAGE', 'OUT')}`);
  ensemble('wrong_type', '{ model_name: "mlp" input_map { key: "INPUT0" value: "IMAGE" } output_map { key: "OUTPUT0" value: "OUT" } }');
  // Ensembles may name ensembles, but not in a ring.
  const via = (model: string): string => `{ model_name: "${model}" input_map { key: "IMAGE" value: "IMAGE" } output_map { key: "OUT" value: "OUT" } }`;
  ensemble('ring_a', via('ring_b'));
  ensemble('ring_b', via('ring_a'));
  ensemble('nested', via('json_pipeline'));
  // config.json spells the same in camelCase.
  mkdirSync(join(root, 'json_pipeline', '1'), { recursive: true });
  writeFileSync(join(root, 'json_pipeline', 'config.json'), JSON.stringify({
    platform: 'ensemble', maxBatchSize: 8,
    inputs: [{ name: 'IMAGE', datatype: 'UINT8', dims: [784] }], outputs: [{ name: 'OUT', datatype: 'FP32', dims: [784] }],
    ensembleScheduling: { step: [{ modelName: 'preprocess', modelVersion: -1, inputMap: { INPUT0: 'IMAGE' }, outputMap: { OUTPUT0: 'OUT' } }] },
  }));
  return root;
}

test('a failing step fails the ensemble with its error; broken ensembles are listed with their reasons', async (t) => {
  const root = brokenRepository();
  t.after(() => rmSync(root, { recursive: true, force: true }));
  const sluice = await startTestSluice(t, ['--model-repository', root]);
  const port = sluice.ports.http;

  const index = (await getJson(port, '/v2/repository/index', 'POST')).json as unknown as { name: string; state: string; reason: string }[];
  const reason = new Map(index.map((e) => [e.name, e.reason]));
  const state = new Map(index.map((e) => [e.name, e.state]));
  assert.equal(state.get('loose'), 'READY');
  assert.equal(state.get('json_pipeline'), 'READY', reason.get('json_pipeline'));
  assert.match(reason.get('unknown_step') ?? '', /config\.pbtxt.*step\[1\] \(model 'nosuch'\): no such model in the repository/);
  assert.match(reason.get('unfed') ?? '', /input 'INPUT0' of model 'preprocess' is fed by 'missing', which is neither an ensemble input nor any step's output/);
  assert.match(reason.get('cycle') ?? '', /the steps form a cycle: step\[0\] \(preprocess\), step\[1\] \(preprocess\)/);
  assert.match(reason.get('wrong_type') ?? '', /input 'INPUT0' is FP32 \[-1, 784\] but 'IMAGE' is UINT8 \[-1, 784\]/);
  assert.match(reason.get('ring_a') ?? '', /the ensembles form a cycle: ring_a -> ring_b -> ring_a|model 'ring_b'\): the model is unavailable/);
  assert.match(reason.get('ring_b') ?? '', /the ensembles form a cycle: ring_a -> ring_b -> ring_a/);
  for (const m of ['unknown_step', 'unfed', 'cycle', 'wrong_type', 'ring_a', 'ring_b']) assert.equal(state.get(m), 'UNAVAILABLE', m);
  assert.equal(state.get('nested'), 'READY', reason.get('nested'));
  const twice = await inferBinary(port, 'nested', { IMAGE: { datatype: 'UINT8', shape: [1, 784], bytes: pixels(1) } });
  assert.equal(twice.get('OUT')!.bytes.readFloatLE(4), Math.fround(37 / 255), 'an ensemble as a step of another');

  const json = JSON.stringify({ inputs: [{ name: 'IMAGE', datatype: 'UINT8', shape: [1, 5], data: [1, 2, 3, 4, 5] }] });
  const res = await request(`http://127.0.0.1:${port}/v2/models/loose/infer`, { method: 'POST', body: json });
  const body = (await res.body.json()) as { error: string; code: string };
  assert.equal(res.statusCode, 400);
  assert.equal(body.code, 'SLUICE_SHAPE_MISMATCH', 'the step\'s own error code');
  assert.match(body.error, /model 'preprocess'/);
  const own = await statsOf(port, 'loose');
  assert.equal(own['inference_stats'].fail.count, 1);
  assert.equal(own['inference_stats'].success.count, 0);

  const ok = await inferBinary(port, 'json_pipeline', { IMAGE: { datatype: 'UINT8', shape: [1, 784], bytes: pixels(1) } });
  assert.equal(ok.get('OUT')!.bytes.readFloatLE(4), Math.fround(37 / 255));
});

test('loading an ensemble through the repository API loads its step models', async (t) => {
  const sluice = await startTestSluice(t, ['--model-control-mode', 'explicit']);
  const port = sluice.ports.http;
  assert.equal((await request(`http://127.0.0.1:${port}/v2/models/mlp_pipeline/ready`)).statusCode, 400);
  const load = await request(`http://127.0.0.1:${port}/v2/repository/models/mlp_pipeline/load`, { method: 'POST' });
  assert.equal(load.statusCode, 200, await load.body.text());
  for (const m of ['preprocess', 'mlp', 'postprocess', 'mlp_pipeline']) assert.equal((await request(`http://127.0.0.1:${port}/v2/models/${m}/ready`)).statusCode, 200, m);
  // A load override (protobuf JSON, maps as objects) replaces the steps; a broken one keeps them.
  const override = (steps: object[]): string => JSON.stringify({ parameters: { config: JSON.stringify({
    name: 'mlp_pipeline', platform: 'ensemble', max_batch_size: 32,
    input: [{ name: 'IMAGE', data_type: 'TYPE_UINT8', dims: [784] }], output: [{ name: 'PROBABILITIES', data_type: 'TYPE_FP32', dims: [10] }],
    ensemble_scheduling: { step: steps },
  }) } });
  const two = [
    { model_name: 'preprocess', model_version: '-1', input_map: { INPUT0: 'IMAGE' }, output_map: { OUTPUT0: 'scaled' } },
    { model_name: 'mlp', model_version: -1, input_map: { INPUT0: 'scaled' }, output_map: { OUTPUT0: 'PROBABILITIES' } },
  ];
  const loaded = await request(`http://127.0.0.1:${port}/v2/repository/models/mlp_pipeline/load`, { method: 'POST', body: override(two) });
  assert.equal(loaded.statusCode, 200, await loaded.body.text());
  const served = async (): Promise<string[]> => ((await getJson(port, '/v2/models/mlp_pipeline/config')).json['ensemble_scheduling'].step as Json[]).map((x) => x['model_name'] as string);
  assert.deepEqual(await served(), ['preprocess', 'mlp']);
  const broken = await request(`http://127.0.0.1:${port}/v2/repository/models/mlp_pipeline/load`, { method: 'POST', body: override([{ ...two[0], model_name: 'nosuch' }, two[1]!]) });
  assert.equal(broken.statusCode, 400, "the override is what was wrong");
  assert.match(await broken.body.text(), /no such model in the repository.*keep serving/);
  assert.deepEqual(await served(), ['preprocess', 'mlp']);
  const two_out = await inferBinary(port, 'mlp_pipeline', { IMAGE: { datatype: 'UINT8', shape: [1, 784], bytes: pixels(1) } });
  assert.deepEqual([...two_out.keys()], ['PROBABILITIES']);
  assert.equal((await request(`http://127.0.0.1:${port}/v2/repository/models/mlp_pipeline/load`, { method: 'POST' })).statusCode, 200, 'a load without config reads the disk again');
  assert.deepEqual(await served(), ['preprocess', 'mlp', 'postprocess']);
  // A step unloaded on its own leaves the ensemble not ready, and its requests fail with the step's error.
  assert.equal((await request(`http://127.0.0.1:${port}/v2/repository/models/postprocess/unload`, { method: 'POST' })).statusCode, 200);
  assert.equal((await request(`http://127.0.0.1:${port}/v2/models/mlp_pipeline/ready`)).statusCode, 400);
  const index = (await getJson(port, '/v2/repository/index', 'POST')).json as unknown as { name: string; state: string; reason: string }[];
  assert.deepEqual(index.find((e) => e.name === 'mlp_pipeline'), { name: 'mlp_pipeline', version: '1', state: 'UNAVAILABLE', reason: "step model 'postprocess' is not ready" }, 'the index says what the ready endpoint says');
  const readyIndex = (await getJson(port, '/v2/repository/index', 'POST', { ready: true })).json as unknown as { name: string }[];
  assert.ok(!readyIndex.some((e) => e.name === 'mlp_pipeline'), 'a ready-only index leaves it out');
  const res = await request(`http://127.0.0.1:${port}/v2/models/mlp_pipeline/infer`, { method: 'POST', body: JSON.stringify({ inputs: [{ name: 'IMAGE', datatype: 'UINT8', shape: [1, 784], data: [...pixels(1)] }] }) });
  const body = (await res.body.json()) as { error: string; code: string };
  assert.equal(res.statusCode, 503);
  assert.equal(body.code, 'SLUICE_MODEL_NOT_READY');
  assert.match(body.error, /'postprocess'/);
});
