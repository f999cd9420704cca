// Models of the built-in repeat backend and sequence configs read from a repository: what loads, and
// the errors that name what is wrong.
import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { readModelEntry } from '../../src/repository/repository.ts';
import { tempRepo, writeConfig, writeVersion } from './fixtures.ts';
import { buildSampleModel } from '../../models/sample-models.ts';

const REPEAT = (extra: string, inputs = '{ name: "IN" data_type: TYPE_INT32 dims: [ -1 ] }, { name: "DELAY" data_type: TYPE_UINT32 dims: [ -1 ] }, { name: "WAIT" data_type: TYPE_UINT32 dims: [ 1 ] }'): string =>
  `backend: "repeat"\n${extra}\nmodel_transaction_policy { decoupled: true }\ninput [ ${inputs} ]\noutput [ { name: "OUT" data_type: TYPE_INT32 dims: [ 1 ] }, { name: "IDX" data_type: TYPE_UINT32 dims: [ 1 ] } ]\n`;

test('a repeat model needs no file, and a config that breaks its signature names the tensor', async (t) => {
  const root = await tempRepo(t);
  await writeConfig(root, 'r', 'config.pbtxt', REPEAT('max_batch_size: 0'));
  await mkdir(join(root, 'r', '1'), { recursive: true });
  const ok = await readModelEntry(root, 'r');
  assert.equal(ok.error, '');
  assert.equal(ok.config?.decoupled, true);
  await writeConfig(root, 'b', 'config.pbtxt', REPEAT('max_batch_size: 4'));
  assert.match((await readModelEntry(root, 'b')).error, /only supports models with max_batch_size 0/);
  await writeConfig(root, 'c', 'config.pbtxt', REPEAT('', '{ name: "IN" data_type: TYPE_FP32 dims: [ -1 ] }, { name: "DELAY" data_type: TYPE_UINT32 dims: [ -1 ] }, { name: "WAIT" data_type: TYPE_UINT32 dims: [ 1 ] }'));
  assert.match((await readModelEntry(root, 'c')).error, /input 'IN' must be IN INT32 \[-1\] for the repeat backend/);
  await writeConfig(root, 'd', 'config.pbtxt', REPEAT('', '{ name: "IN" data_type: TYPE_INT32 dims: [ -1 ] }'));
  assert.match((await readModelEntry(root, 'd')).error, /needs the input DELAY UINT32/);
  await writeConfig(root, 'e', 'config.pbtxt', 'backend: "python"\n');
  assert.match((await readModelEntry(root, 'e')).error, /'python' is not supported: .*built-in backend 'repeat'/);
});

test('sequence_batching that does not fit its model is refused, naming the control or state', async (t) => {
  const root = await tempRepo(t);
  const seq = (body: string): string => `max_batch_size: 8\nsequence_batching {\n${body}\n}\n`;
  const cases: [string, RegExp][] = [
    ['control_input [ { name: "NOPE" control [ { kind: CONTROL_SEQUENCE_START int32_false_true: [ 0, 1 ] } ] } ]', /the model has no input 'NOPE'/],
    ['control_input [ { name: "START" control [ { kind: CONTROL_SEQUENCE_START fp32_false_true: [ 0, 1 ] } ] } ]', /control 'START' \(START\) is FP32 in the config but INT32 in the model/],
    ['control_input [ { name: "START" control [ { kind: CONTROL_SEQUENCE_START int32_false_true: [ 1 ] } ] } ]', /exactly one of int32_false_true, fp32_false_true or bool_false_true, with two values/],
    ['control_input [ { name: "START" control [ { kind: CONTROL_SEQUENCE_CORRID } ] } ]', /CONTROL_SEQUENCE_CORRID needs data_type/],
    ['direct { } oldest { }', /direct and oldest are exclusive/],
    ['state [ { input_name: "READY" output_name: "GONE" data_type: TYPE_INT32 dims: [ 1 ] } ]', /no output 'GONE'/],
    ['state [ { input_name: "READY" output_name: "OUTPUT" data_type: TYPE_INT32 dims: [ 1 ] initial_state { data_file: "x" } } ]', /only zero_data: true/],
  ];
  for (const [i, [body, error]] of cases.entries()) {
    const name = `m${i}`;
    await writeVersion(root, name, '1', buildSampleModel('simple_sequence'));
    await writeConfig(root, name, 'config.pbtxt', seq(body));
    assert.match((await readModelEntry(root, name)).error, error, body);
  }
  await writeVersion(root, 'two', '1', buildSampleModel('simple_sequence'));
  await writeConfig(root, 'two', 'config.pbtxt', 'max_batch_size: 4\ninstance_group [ { count: 3 kind: KIND_CPU } ]\nsequence_batching { }\n');
  assert.equal((await readModelEntry(root, 'two')).config?.sequenceBatching?.maxActiveSequences, 12, 'direct: max_batch_size slots per instance');
  await writeVersion(root, 'z', '1', buildSampleModel('simple_sequence'));
  await writeConfig(root, 'z', 'config.pbtxt', 'max_batch_size: 0\nsequence_batching { }\n');
  assert.match((await readModelEntry(root, 'z')).error, /max_batch_size >= 1/);
});
