// Scanning real repositories: the bundled samples, auto-complete, configs checked against their files,
// and broken models reported with their reasons while the others load.
import assert from 'node:assert/strict';
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { isSluiceError } from '../../src/core/errors.ts';
import { readModelEntry, scanRepository } from '../../src/repository/repository.ts';
import type { ModelEntry } from '../../src/repository/repository.ts';
import { ELEM, identityBytes, simpleBytes, tempRepo, writeConfig, writeVersion } from './fixtures.ts';

const SAMPLES = fileURLToPath(new URL('../../models', import.meta.url));

function usable(entry: ModelEntry | undefined): NonNullable<ModelEntry['config']> {
  assert.ok(entry !== undefined, 'entry exists');
  assert.equal(entry.error, '', `${entry.name} should load`);
  assert.ok(entry.config !== undefined);
  return entry.config;
}

function broken(entry: ModelEntry | undefined, reason: RegExp): void {
  assert.ok(entry !== undefined, 'entry exists');
  assert.match(entry.error, reason);
  assert.equal(entry.config, undefined);
  assert.deepEqual(entry.versions, []);
}

void test('the sample repository: every model loads, from pbtxt, JSON and auto-complete', async () => {
  const repo = await scanRepository(SAMPLES);
  assert.deepEqual([...repo.keys()], ['cnn', 'identity', 'mlp', 'mlp_pipeline', 'postprocess', 'preprocess', 'repeat_int32', 'sequence_accumulator', 'simple', 'simple_dyna_sequence', 'simple_identity', 'simple_int8', 'simple_sequence', 'simple_string', 'tiny_lm']);
  const seq = usable(repo.get('simple_sequence'));
  assert.deepEqual(seq.inputs.map((i) => i.name), ['INPUT'], 'the controls are the scheduler\'s, not the client\'s');
  assert.equal(seq.sequenceBatching?.maxActiveSequences, 8);
  const repeat = usable(repo.get('repeat_int32'));
  assert.deepEqual([repeat.backend, repeat.platform, repeat.decoupled, repeat.maxBatchSize], ['repeat', '', true, 0]);
  // Two instances of an oldest-strategy model; a direct one's slots are max_batch_size per instance.
  assert.equal(usable(repo.get('simple_dyna_sequence')).sequenceBatching?.maxActiveSequences, 1024);
  const lm = usable(repo.get('tiny_lm'));
  assert.equal(lm.source, 'json');
  assert.deepEqual([lm.generation?.layers, lm.generation?.heads, lm.generation?.headDim, lm.generation?.vocab], [2, 4, 16, 97]);
  const simple = usable(repo.get('simple'));
  assert.equal(simple.source, 'pbtxt');
  assert.equal(simple.maxBatchSize, 32);
  assert.deepEqual(simple.inputs.map((i) => [i.name, i.datatype, i.dims]), [['INPUT0', 'INT32', [16]], ['INPUT1', 'INT32', [16]]]);
  assert.deepEqual(simple.dynamicBatching.preferredBatchSizes, [8, 16, 32]);
  assert.equal(simple.dynamicBatching.defaultQueuePolicy.maxQueueSize, 1024);
  assert.deepEqual(simple.instanceGroups, [{ count: 1, kind: 'KIND_AUTO', gpus: [] }]);
  assert.equal(simple.warmup[0]?.inputs['INPUT1']?.randomData, true);
  assert.deepEqual(repo.get('simple')?.warnings, []);

  const identity = usable(repo.get('identity'));
  assert.equal(identity.source, 'json');
  // The config's two inputs come first; the other eleven are filled from the file.
  assert.deepEqual(identity.inputs.slice(0, 2).map((i) => i.name), ['INPUT_FP32', 'INPUT_BYTES']);
  assert.equal(identity.inputs.length, 13);
  assert.equal(identity.outputs.length, 13);
  assert.ok(identity.inputs.every((i) => i.dims.length === 1 && i.dims[0] === -1));
  assert.deepEqual(identity.dynamicBatching.preferredBatchSizes, [4, 8, 16, 32]);

  const mlp = usable(repo.get('mlp'));
  assert.equal(mlp.source, 'auto');
  assert.deepEqual(mlp.inputs, [{ name: 'INPUT0', datatype: 'FP32', dims: [784] }]);
  assert.deepEqual(mlp.outputs, [{ name: 'OUTPUT0', datatype: 'FP32', dims: [10] }]);
  const v = repo.get('mlp')?.versions[0];
  assert.equal(v?.version, '1');
  assert.equal(v?.file, join(SAMPLES, 'mlp', '1', 'model.onnx'));
  assert.equal(v?.byteSize, (await stat(join(SAMPLES, 'mlp', '1', 'model.onnx'))).size);
  assert.deepEqual(usable(repo.get('cnn')).inputs[0]?.dims, [3, 64, 64]);
  assert.deepEqual(usable(repo.get('simple_string')).inputs[0]?.datatype, 'BYTES');
});

void test('auto-complete: a dynamic first dimension means batching with the defaults', async (t) => {
  const root = await tempRepo(t);
  await writeVersion(root, 'plain', '1', simpleBytes());
  const c = usable(await readModelEntry(root, 'plain'));
  assert.equal(c.name, 'plain');
  assert.equal(c.platform, 'onnxruntime_onnx');
  assert.equal(c.backend, 'onnxruntime');
  assert.equal(c.maxBatchSize, 32);
  assert.deepEqual(c.outputs.map((o) => [o.name, o.dims]), [['OUTPUT0', [16]], ['OUTPUT1', [16]]]);
  assert.deepEqual(c.dynamicBatching, {
    preferredBatchSizes: [8, 16, 32],
    maxQueueDelayUs: 0,
    preserveOrdering: false,
    priorityLevels: 0,
    defaultPriorityLevel: 0,
    defaultQueuePolicy: { timeoutAction: 'REJECT', defaultTimeoutUs: 0, allowTimeoutOverride: false, maxQueueSize: 4096, maxExpectedWaitUs: 1_000_000 },
    priorityQueuePolicy: {},
    allowedBatchSizes: [],
  });
  assert.deepEqual(c.versionPolicy, { latest: { numVersions: 1 } });
  assert.deepEqual(c.unknownFields, []);
  assert.ok(Object.isFrozen(c) && Object.isFrozen(c.inputs[0]) && Object.isFrozen(c.dynamicBatching.preferredBatchSizes), 'deeply frozen');
});

void test('auto-complete: fixed first dimension means no batching; initializers are not inputs', async (t) => {
  const root = await tempRepo(t);
  await writeVersion(root, 'fixed', '1', identityBytes({ name: 'X', elemType: ELEM.FLOAT16, dims: [2, 'n'] }));
  const fixed = usable(await readModelEntry(root, 'fixed'));
  assert.equal(fixed.maxBatchSize, 0);
  assert.deepEqual(fixed.inputs, [{ name: 'X', datatype: 'FP16', dims: [2, -1] }]);
  assert.deepEqual(fixed.dynamicBatching.preferredBatchSizes, []);

  // Old exporters list weights among the graph inputs: they are not something a client feeds.
  const { encodeModel, floatInitializer, node } = await import('../../models/onnx-builder.ts');
  const withWeights = encodeModel({
    name: 'w',
    doc: '',
    inputs: [{ name: 'X', elemType: ELEM.FLOAT, dims: ['b', 2] }, { name: 'W', elemType: ELEM.FLOAT, dims: [2, 2] }],
    outputs: [{ name: 'Y', elemType: ELEM.FLOAT, dims: ['b', 2] }],
    nodes: [node('MatMul', ['X', 'W'], ['Y'])],
    initializers: [floatInitializer('W', [2, 2], Float32Array.from([1, 0, 0, 1]))],
  });
  await writeVersion(root, 'weights', '1', withWeights);
  const w = usable(await readModelEntry(root, 'weights'));
  assert.deepEqual(w.inputs.map((i) => i.name), ['X']);
  assert.equal(w.maxBatchSize, 32);
});

void test('auto-complete: what the file cannot tell makes the model unavailable, naming the tensor', async (t) => {
  const root = await tempRepo(t);
  await writeVersion(root, 'noshape', '1', identityBytes({ name: 'X', elemType: ELEM.FLOAT }));
  broken(await readModelEntry(root, 'noshape'), /input 'X': the model file gives no shape; give its dims in a config/);
  await writeVersion(root, 'complex', '1', identityBytes({ name: 'Z', elemType: 14, dims: ['b', 2] }));
  broken(await readModelEntry(root, 'complex'), /input 'Z': the model file's element type 14 has no protocol datatype/);
  // The same shapeless model works once a config gives the dims.
  await writeConfig(root, 'noshape', 'config.json', JSON.stringify({ maxBatchSize: 0, inputs: [{ name: 'X', dims: [3] }], outputs: [{ name: 'OUT', dims: [3] }] }));
  assert.deepEqual(usable(await readModelEntry(root, 'noshape')).inputs, [{ name: 'X', datatype: 'FP32', dims: [3] }]);
});

void test('a config that disagrees with its file makes the model unavailable with the tensor named', async (t) => {
  const root = await tempRepo(t);
  const cases: [string, string, RegExp][] = [
    ['dtype', 'max_batch_size: 8 input [{ name: "INPUT0" data_type: TYPE_FP32 dims: [16] }]', /input 'INPUT0': the config says datatype FP32 but the model file has INT32/],
    ['rank', 'max_batch_size: 8 input [{ name: "INPUT1" data_type: TYPE_INT32 dims: [4, 4] }]', /input 'INPUT1': the config gives 2 dims \[4, 4\] but the model file has 1 after the batch dimension/],
    ['size', 'max_batch_size: 8 output [{ name: "OUTPUT1" data_type: TYPE_INT32 dims: [15] }]', /output 'OUTPUT1': dim 0 after the batch dimension is 15 in the config but 16 in the model file/],
    ['name', 'max_batch_size: 8 input [{ name: "INPUT9" data_type: TYPE_INT32 dims: [16] }]', /input 'INPUT9': not an input of the model file \(its inputs: INPUT0, INPUT1\)/],
    ['nobatch', 'max_batch_size: 0 input [{ name: "INPUT0" data_type: TYPE_INT32 dims: [16] }]', /input 'INPUT0': the config gives 1 dims \[16\] but the model file has 2: shape \[-1, 16\]/],
  ];
  for (const [name, pbtxt] of cases) {
    await writeVersion(root, name, '1', simpleBytes());
    await writeConfig(root, name, 'config.pbtxt', pbtxt);
  }
  await writeVersion(root, 'fixedbatch', '1', identityBytes({ name: 'X', elemType: ELEM.INT64, dims: [1, 4] }));
  await writeConfig(root, 'fixedbatch', 'config.json', '{"maxBatchSize": 4}');
  await writeVersion(root, 'good', '1', simpleBytes());
  await writeConfig(root, 'good', 'config.pbtxt', 'max_batch_size: 0 input [{ name: "INPUT0" dims: [-1, 16] }]');
  const repo = await scanRepository(root);
  for (const [name, , reason] of cases) broken(repo.get(name), reason);
  broken(repo.get('fixedbatch'), /input 'X': max_batch_size 4 needs a dynamic first \(batch\) dimension, but the model file's shape is \[1, 4\]/);
  // An explicit max_batch_size 0 keeps the batch dimension as an ordinary one.
  const good = usable(repo.get('good'));
  assert.equal(good.maxBatchSize, 0);
  assert.deepEqual(good.inputs.map((i) => [i.name, i.datatype, i.dims]), [['INPUT0', 'INT32', [-1, 16]], ['INPUT1', 'INT32', [-1, 16]]]);
  assert.match(repo.get('dtype')?.error ?? '', /config\.pbtxt/, 'the reason names the config file');
});

void test('broken models are reported with their reason while the others load', async (t) => {
  const root = await tempRepo(t);
  await writeVersion(root, 'ok', '1', simpleBytes());
  await mkdir(join(root, 'nofile', '1'), { recursive: true });
  await writeVersion(root, 'garbage', '1', new TextEncoder().encode('this is not an onnx model at all'));
  const mlp = await readFile(join(SAMPLES, 'mlp', '1', 'model.onnx'));
  await writeVersion(root, 'truncated', '1', mlp.subarray(0, mlp.length >> 1));
  await writeVersion(root, 'empty', '1', new Uint8Array(0));
  await mkdir(join(root, 'noversions', 'latest'), { recursive: true });
  await mkdir(join(root, 'bad name!', '1'), { recursive: true });
  await writeVersion(root, 'tf', '1', simpleBytes());
  await writeConfig(root, 'tf', 'config.pbtxt', 'platform: "tensorflow_savedmodel"');
  await writeVersion(root, 'renamed', '1', simpleBytes());
  await writeConfig(root, 'renamed', 'config.pbtxt', 'name: "other"');
  await writeVersion(root, 'twoconfigs', '1', simpleBytes());
  await writeConfig(root, 'twoconfigs', 'config.pbtxt', '');
  await writeConfig(root, 'twoconfigs', 'config.json', '{}');
  await writeVersion(root, 'syntax', '1', simpleBytes());
  await writeConfig(root, 'syntax', 'config.pbtxt', 'max_batch_size: 8\ninput [\n  { name: "INPUT0" data_type TYPE_INT32 }\n]');
  await writeVersion(root, 'badjson', '1', simpleBytes());
  await writeConfig(root, 'badjson', 'config.json', '{"maxBatchSize": 8,}');
  // Not models: hidden folders and stray files.
  await mkdir(join(root, '.cache', '1'), { recursive: true });
  await writeFile(join(root, 'README.md'), 'notes');

  const repo = await scanRepository(root);
  assert.deepEqual([...repo.keys()].sort(), ['bad name!', 'badjson', 'empty', 'garbage', 'nofile', 'noversions', 'ok', 'renamed', 'syntax', 'tf', 'truncated', 'twoconfigs']);
  usable(repo.get('ok'));
  broken(repo.get('nofile'), /version 1: model\.onnx is missing/);
  broken(repo.get('garbage'), /version 1: model\.onnx: not a valid ONNX model/);
  broken(repo.get('truncated'), /version 1: model\.onnx: not a valid ONNX model/);
  broken(repo.get('empty'), /version 1: model\.onnx: not a valid ONNX model/);
  broken(repo.get('noversions'), /no version folders/);
  broken(repo.get('bad name!'), /invalid model name 'bad name!'/);
  broken(repo.get('tf'), /'tensorflow_savedmodel' is not supported: sluice serves ONNX models/);
  broken(repo.get('renamed'), /the config names model 'other' but it lies in the folder 'renamed'/);
  broken(repo.get('twoconfigs'), /both config\.pbtxt and config\.json are present/);
  broken(repo.get('syntax'), /config\.pbtxt: .*syntax error at line 3, column 30: expected ':' or '\{' after field name 'data_type'/);
  broken(repo.get('badjson'), /config\.json: not valid JSON/);
});

void test('unknown config.pbtxt fields are kept and reported as warnings, never fatal', async (t) => {
  const root = await tempRepo(t);
  await writeVersion(root, 'm', '1', simpleBytes());
  await writeConfig(root, 'm', 'config.pbtxt', [
    'name: "m"',
    'backend: "onnxruntime"',
    'max_batch_size: 16',
    'input [{ name: "INPUT0" data_type: TYPE_INT32 dims: [16] reshape: { shape: [4, 4] } }]',
    'optimization { execution_accelerators { gpu_execution_accelerator : [ { name : "tensorrt" } ] } }',
    'parameters { key: "intra_op_thread_count" value: { string_value: "1" } }',
    'parameters { key: "inter_op_thread_count" value: { string_value: "1" } }',
    'dynamic_batching { priority_levels: 2 default_priority_level: 1 preferred_batch_size: [4] custom_knob: 3 }',
  ].join('\n'));
  const entry = await readModelEntry(root, 'm');
  const c = usable(entry);
  assert.deepEqual([...c.unknownFields].sort(), ['dynamic_batching.custom_knob', 'input[0].reshape', 'optimization', 'parameters']);
  assert.equal(entry.warnings.length, 4);
  assert.ok(entry.warnings.some((w) => /config\.pbtxt: field 'input\[0\]\.reshape' is not used by sluice/.test(w)), entry.warnings.join('; '));
  assert.equal(c.maxBatchSize, 16);
  assert.deepEqual(c.dynamicBatching.preferredBatchSizes, [4]);
  assert.equal(c.dynamicBatching.defaultPriorityLevel, 1);
});

void test('version policies choose among the numeric version folders, in numeric order', async (t) => {
  const root = await tempRepo(t);
  const bytes = simpleBytes();
  const policies: [string, string | undefined, string[]][] = [
    ['default', undefined, ['10']],
    ['latest2', 'version_policy { latest { num_versions: 2 } }', ['3', '10']],
    ['latest9', 'version_policy: { latest: { num_versions: 9 } }', ['1', '2', '3', '10']],
    ['all', 'version_policy { all { } }', ['1', '2', '3', '10']],
    ['specific', 'version_policy { specific { versions: [10, 1] } }', ['1', '10']],
  ];
  for (const [name, policy] of policies) {
    for (const v of ['1', '2', '3', '10']) await writeVersion(root, name, v, bytes);
    // Not versions: a non-numeric folder, a zero and a leading zero.
    for (const junk of ['old', '0', '01']) await mkdir(join(root, name, junk), { recursive: true });
    if (policy !== undefined) await writeConfig(root, name, 'config.pbtxt', policy);
  }
  const repo = await scanRepository(root);
  for (const [name, , versions] of policies) {
    const entry = repo.get(name);
    usable(entry);
    assert.deepEqual(entry?.versions.map((v) => v.version), versions, name);
    assert.ok(entry?.versions.every((v) => v.file === join(root, name, v.version, 'model.onnx') && v.byteSize === bytes.length));
  }
});

void test('version policies: missing versions, and served versions that disagree, are errors', async (t) => {
  const root = await tempRepo(t);
  const bytes = simpleBytes();
  await writeVersion(root, 'absent', '1', bytes);
  await writeConfig(root, 'absent', 'config.pbtxt', 'version_policy { specific { versions: [1, 4] } }');
  broken(await readModelEntry(root, 'absent'), /version_policy specific lists version 4, which has no folder \(found: 1\)/);

  const other = identityBytes({ name: 'INPUT0', elemType: ELEM.INT32, dims: ['b', 16] });
  await writeVersion(root, 'drift', '1', other);
  await writeVersion(root, 'drift', '2', bytes);
  // Only the newest is served by default, so the older, different file does not matter...
  assert.deepEqual((await readModelEntry(root, 'drift')).versions.map((v) => v.version), ['2']);
  // ...until the policy serves both.
  await writeConfig(root, 'drift', 'config.json', '{"versionPolicy": {"all": {}}}');
  broken(await readModelEntry(root, 'drift'), /version 1's model\.onnx.*input 'INPUT1': not an input of the model file \(its inputs: INPUT0\)/);

  // A corrupt old version that the policy does not serve is never read.
  await writeVersion(root, 'oldjunk', '1', new Uint8Array([1, 2, 3]));
  await writeVersion(root, 'oldjunk', '2', bytes);
  usable(await readModelEntry(root, 'oldjunk'));
});

void test('readModelEntry checks the name before touching the disk and reports missing models', async (t) => {
  const root = await tempRepo(t);
  await writeVersion(root, 'simple', '1', simpleBytes());
  await writeFile(join(root, 'afile'), 'x');
  for (const [name, code] of [['../simple', 'SLUICE_INVALID_MODEL_NAME'], ['..', 'SLUICE_INVALID_MODEL_NAME'], ['', 'SLUICE_INVALID_MODEL_NAME'], ['a/b', 'SLUICE_INVALID_MODEL_NAME'], ['nope', 'SLUICE_MODEL_NOT_FOUND'], ['afile', 'SLUICE_MODEL_NOT_FOUND']] as const) {
    await assert.rejects(readModelEntry(root, name), (e: unknown) => isSluiceError(e) && e.code === code, `${JSON.stringify(name)} -> ${code}`);
  }
  usable(await readModelEntry(root, 'simple'));
  await assert.rejects(scanRepository(join(root, 'missing-root')), /model repository '.*missing-root' cannot be read: ENOENT/);
});
