// sluice's config.json, and the defaults and cross-field checks every config goes through.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isSluiceError } from '../../src/core/errors.ts';
import type { ModelConfig } from '../../src/core/model.ts';
import { settleSignature } from '../../src/repository/autocomplete.ts';
import type { ConfigDraft } from '../../src/repository/draft.ts';
import { readJsonConfig } from '../../src/repository/json-config.ts';
import { defaultPreferredBatchSizes, normalizeConfig } from '../../src/repository/normalize.ts';
import type { OnnxMetadata } from '../../src/repository/onnx-metadata.ts';
import { readPbtxtConfig } from '../../src/repository/pbtxt-config.ts';

/** The signature of the sample `simple` model, as its file declares it. */
const SIMPLE: OnnxMetadata = {
  irVersion: 8,
  opsets: [{ domain: '', version: 17 }],
  inputs: ['INPUT0', 'INPUT1'].map((name) => ({ name, elemType: 6, datatype: 'INT32' as const, shape: [-1, 16] })),
  outputs: ['OUTPUT0', 'OUTPUT1'].map((name) => ({ name, elemType: 6, datatype: 'INT32' as const, shape: [-1, 16] })),
};

function complete(draft: ConfigDraft | undefined, meta: OnnxMetadata = SIMPLE): ModelConfig {
  return normalizeConfig('m', draft, settleSignature(draft, meta, '1'));
}

function rejects(fn: () => unknown, message: RegExp): void {
  assert.throws(fn, (e: unknown) => isSluiceError(e) && e.code === 'SLUICE_INVALID_MODEL_CONFIG' && message.test(e.message), String(message));
}

void test('config.json: the ModelConfig fields in camelCase, partial', () => {
  const d = readJsonConfig(JSON.stringify({
    name: 'm',
    maxBatchSize: 8,
    inputs: [{ name: 'INPUT0', datatype: 'INT32', dims: [16] }, { name: 'INPUT1', datatype: 'TYPE_INT32' }],
    dynamicBatching: { preferredBatchSizes: [8, 2], maxQueueDelayUs: 50, priorityLevels: 2, priorityQueuePolicy: { 2: { maxQueueSize: 3 } }, allowedBatchSizes: [4, 8] },
    instanceGroups: [{ count: 2, kind: 'KIND_CPU' }],
    versionPolicy: { specific: { versions: [2, 1] } },
    warmup: [{ name: 'w', inputs: { INPUT0: { datatype: 'INT32', dims: [16], zeroData: true }, INPUT1: { datatype: 'INT32', dims: [16], randomData: true } } }],
    pinned: true,
    platform: null,
  }));
  assert.equal(d.source, 'json');
  assert.deepEqual(d.unknownFields, []);
  const c = complete(d);
  assert.equal(c.maxBatchSize, 8);
  assert.deepEqual(c.inputs.map((i) => [i.name, i.datatype, i.dims]), [['INPUT0', 'INT32', [16]], ['INPUT1', 'INT32', [16]]]);
  assert.deepEqual(c.dynamicBatching.preferredBatchSizes, [2, 8], 'sorted');
  assert.deepEqual(c.dynamicBatching.allowedBatchSizes, [4, 8]);
  assert.equal(c.dynamicBatching.maxQueueDelayUs, 50);
  assert.equal(c.dynamicBatching.defaultPriorityLevel, 2, 'no default level given: the lowest priority');
  assert.deepEqual(c.dynamicBatching.priorityQueuePolicy, { 2: { timeoutAction: 'REJECT', defaultTimeoutUs: 0, allowTimeoutOverride: false, maxQueueSize: 3, maxExpectedWaitUs: 1_000_000 } });
  assert.deepEqual(c.instanceGroups, [{ count: 2, kind: 'KIND_CPU', gpus: [] }]);
  assert.deepEqual(c.versionPolicy, { specific: { versions: [1, 2] } });
  assert.deepEqual(c.warmup[0], { name: 'w', batchSize: 1, count: 1, inputs: { INPUT0: { datatype: 'INT32', dims: [16], zeroData: true }, INPUT1: { datatype: 'INT32', dims: [16], randomData: true } } });
  assert.equal(c.pinned, true);
  assert.equal(c.source, 'json');
});

void test('config.json: unknown keys are kept as unknown fields', () => {
  const d = readJsonConfig('{"maxBatchSize": 4, "optimization": {}, "inputs": [{"name": "INPUT0", "reshape": [4, 4]}], "dynamicBatching": {"turbo": true}}');
  assert.deepEqual([...d.unknownFields].sort(), ['dynamicBatching.turbo', 'inputs[0].reshape', 'optimization']);
  assert.deepEqual(complete(d).unknownFields, d.unknownFields);
});

void test('config.json: wrong types are errors naming the field', () => {
  const cases: [string, RegExp][] = [
    ['[]', /in config\.json: expected an object, got an array/],
    ['{"maxBatchSize": "8"}', /at 'maxBatchSize': expected an integer, got the string "8"/],
    ['{"maxBatchSize": 2.5}', /at 'maxBatchSize': expected an integer, got 2\.5/],
    ['{"inputs": {"name": "x"}}', /at 'inputs': expected an array of objects, got an object/],
    ['{"inputs": [{"name": "x", "datatype": "FLOAT"}]}', /at 'inputs\[0\]\.datatype': expected a datatype such as FP32, INT64 or BYTES, got the string "FLOAT"/],
    ['{"inputs": [{"datatype": "FP32"}]}', /at 'inputs\[0\]': every input and output needs a 'name'/],
    ['{"inputs": [{"name": "x", "dims": [4, "n"]}]}', /at 'inputs\[0\]\.dims\[1\]': expected an integer, got the string "n"/],
    ['{"dynamicBatching": {"priorityQueuePolicy": {"high": {}}}}', /keys are priority levels \(positive integers\), got 'high'/],
    ['{"dynamicBatching": {"defaultQueuePolicy": {"timeoutAction": "drop"}}}', /at 'dynamicBatching\.defaultQueuePolicy\.timeoutAction': expected one of REJECT, DELAY/],
    ['{"instanceGroups": [{"kind": "GPU"}]}', /at 'instanceGroups\[0\]\.kind': expected one of KIND_CPU, KIND_GPU, KIND_AUTO, got the string "GPU"/],
    ['{"versionPolicy": {"latest": {"numVersions": 0}}}', /at 'versionPolicy\.latest\.numVersions': must be >= 1, got 0/],
    ['{"versionPolicy": {}}', /give exactly one of latest, all, specific \(found 0\)/],
    ['{"pinned": "yes"}', /at 'pinned': expected true or false, got the string "yes"/],
    ['{"warmup": [{"name": "w", "inputs": {"x": {"dims": [1]}}}]}', /warmup input 'x' needs a 'datatype'/],
    ['{"maxBatchSize": 8,}', /in config\.json: not valid JSON/],
  ];
  for (const [text, message] of cases) rejects(() => readJsonConfig(text), message);
});

void test('defaults: preferred batch sizes 8, 16, 32 clipped to max_batch_size', () => {
  assert.deepEqual(defaultPreferredBatchSizes(32), [8, 16, 32]);
  assert.deepEqual(defaultPreferredBatchSizes(64), [8, 16, 32]);
  assert.deepEqual(defaultPreferredBatchSizes(20), [8, 16, 20]);
  assert.deepEqual(defaultPreferredBatchSizes(8), [8]);
  assert.deepEqual(defaultPreferredBatchSizes(4), [4]);
  assert.deepEqual(defaultPreferredBatchSizes(0), []);
  assert.deepEqual(complete(readPbtxtConfig('max_batch_size: 20')).dynamicBatching.preferredBatchSizes, [8, 16, 20]);
  assert.deepEqual(complete(readPbtxtConfig('max_batch_size: 20 dynamic_batching { }')).dynamicBatching.preferredBatchSizes, [8, 16, 20]);
});

void test("defaults: Triton's zero max_queue_size (unbounded) becomes sluice's bound; level policies inherit the default one", () => {
  const c = complete(readPbtxtConfig(`dynamic_batching {
    priority_levels: 2
    default_priority_level: 1
    default_queue_policy { max_queue_size: 0 default_timeout_microseconds: 10 }
    priority_queue_policy { key: 2 value { timeout_action: DELAY } }
  }`));
  assert.equal(c.dynamicBatching.defaultQueuePolicy.maxQueueSize, 4096);
  assert.deepEqual(c.dynamicBatching.priorityQueuePolicy[2], { timeoutAction: 'DELAY', defaultTimeoutUs: 10, allowTimeoutOverride: false, maxQueueSize: 4096, maxExpectedWaitUs: 1_000_000 });
  assert.equal(c.dynamicBatching.defaultPriorityLevel, 1);
});

void test('cross-field checks name the field as the config file spells it', () => {
  const cases: [string, RegExp][] = [
    ['max_batch_size: 8 dynamic_batching { preferred_batch_size: [4, 16] }', /config\.pbtxt at 'dynamic_batching\.preferred_batch_size': 16 exceeds max_batch_size 8/],
    ['max_batch_size: 0 input [{ name: "INPUT0" dims: [-1, 16] }] dynamic_batching { preferred_batch_size: [4] }', /'dynamic_batching\.preferred_batch_size': batch sizes need max_batch_size > 0/],
    ['dynamic_batching { default_priority_level: 1 }', /'dynamic_batching\.default_priority_level': is 1 but priority levels are not enabled/],
    ['dynamic_batching { priority_levels: 2 default_priority_level: 3 }', /'dynamic_batching\.default_priority_level': must be between 1 and priority_levels \(2\), got 3/],
    ['dynamic_batching { priority_queue_policy { key: 1 value { } } }', /has a policy for priority level 1, but levels are 1\.\.0 \(priority_levels is 0\)/],
    ['instance_group { kind: KIND_CPU gpus: [0] }', /'instance_group\[0\]': KIND_CPU instances cannot list gpus/],
    ['model_warmup { name: "w" batch_size: 64 inputs { key: "INPUT0" value { data_type: TYPE_INT32 dims: [16] zero_data: true } } inputs { key: "INPUT1" value { data_type: TYPE_INT32 dims: [16] zero_data: true } } }', /'model_warmup\[0\]': warmup 'w': batch size 64 exceeds max_batch_size 32/],
    ['model_warmup { name: "w" inputs { key: "NOPE" value { data_type: TYPE_INT32 dims: [16] zero_data: true } } }', /warmup 'w' feeds 'NOPE', which is not an input of the model/],
    ['model_warmup { name: "w" inputs { key: "INPUT0" value { data_type: TYPE_FP32 dims: [16] zero_data: true } } }', /warmup 'w' gives input 'INPUT0' datatype FP32, but the model expects INT32/],
    ['model_warmup { name: "w" inputs { key: "INPUT0" value { data_type: TYPE_INT32 dims: [8] zero_data: true } } }', /gives input 'INPUT0' dims \[8\], which must be concrete and fit the model's \[16\]/],
    ['model_warmup { name: "w" inputs { key: "INPUT0" value { data_type: TYPE_INT32 dims: [16] } } }', /warmup 'w' input 'INPUT0': give exactly one of zero_data or random_data/],
    ['model_warmup { name: "w" inputs { key: "INPUT0" value { data_type: TYPE_INT32 dims: [16] random_data: true } } }', /warmup 'w' does not feed the model's input 'INPUT1'/],
    ['input [{ name: "INPUT0" }, { name: "INPUT0" }]', /input 'INPUT0': listed twice in the config/],
  ];
  for (const [text, message] of cases) rejects(() => complete(readPbtxtConfig(text)), message);
  rejects(() => complete(readJsonConfig('{"maxBatchSize": 8, "dynamicBatching": {"allowedBatchSizes": [9]}}')), /config\.json at 'dynamicBatching\.allowedBatchSizes': 9 exceeds max_batch_size 8/);
});

void test('auto-complete decides batching from every tensor of the file', () => {
  const mixed: OnnxMetadata = { ...SIMPLE, outputs: [{ name: 'OUTPUT0', elemType: 6, datatype: 'INT32', shape: [4] }] };
  const c = complete(undefined, mixed);
  assert.equal(c.maxBatchSize, 0, 'an output without a batch dimension: no batching');
  assert.deepEqual(c.inputs[0]?.dims, [-1, 16]);
  assert.equal(c.source, 'auto');
  const noInputs: OnnxMetadata = { ...SIMPLE, inputs: [] };
  assert.equal(complete(undefined, noInputs).maxBatchSize, 0);
});
