// The protobuf text format parser and the mapping of Triton's config.pbtxt onto a config draft.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isSluiceError } from '../../src/core/errors.ts';
import { PbtxtSyntaxError, parsePbtxt } from '../../src/repository/pbtxt.ts';
import type { PbMessage } from '../../src/repository/pbtxt.ts';
import { readPbtxtConfig } from '../../src/repository/pbtxt-config.ts';

/** The tree as [name, value] pairs, nested messages as arrays: easy to compare. */
function flat(m: PbMessage): unknown[] {
  return m.fields.map((f) => [f.name, f.value.kind === 'message' ? flat(f.value.message) : f.value.kind === 'number' ? Number(f.value.text) : f.value.value]);
}

void test('pbtxt: fields, nesting in every spelling, lists, separators and comments', () => {
  const text = [
    '# a comment line',
    'name: "m"  # trailing comment',
    'a { b: 1 }',
    'a: { b: 2 };',
    'a < b: 3 >,',
    'dims: [ 1, -2, 0x10 ]',
    'input [ { n: "x" }, { n: "y" } ]',
    'empty: []',
    'flag: true',
  ].join('\n');
  assert.deepEqual(flat(parsePbtxt(text)), [
    ['name', 'm'],
    ['a', [['b', 1]]],
    ['a', [['b', 2]]],
    ['a', [['b', 3]]],
    ['dims', 1],
    ['dims', -2],
    ['dims', 16],
    ['input', [['n', 'x']]],
    ['input', [['n', 'y']]],
    ['flag', 'true'],
  ]);
  assert.equal(parsePbtxt('x: 1\n\n  y: 2').fields[1]?.line, 3, 'fields remember their line');
  assert.deepEqual(flat(parsePbtxt('')), []);
});

void test('pbtxt: strings with escapes, both quotes, concatenation and UTF-8', () => {
  const m = parsePbtxt(String.raw`s: "tab\tnl\n\"q\" \x41\101 \\" t: 'it''s' u: "ü✓😀"`);
  assert.deepEqual(flat(m), [['s', 'tab\tnl\n"q" AA \\'], ['t', 'its'], ['u', 'ü✓😀']]);
  // Octal and hex escapes name bytes: two of them can spell one UTF-8 character.
  assert.deepEqual(flat(parsePbtxt(String.raw`s: "\303\274"`)), [['s', 'ü']]);
});

void test('pbtxt: numbers, signed special values and extension names', () => {
  const m = parsePbtxt('a: 1.5 b: -2e3 c: .5 d: 3f e: -inf f: nan g: 010 [pkg.ext]: 1 [type.googleapis.com/pkg.Msg] { x: 1 }');
  assert.deepEqual(m.fields.map((f) => [f.name, f.value.kind === 'number' ? f.value.text : f.value.kind]), [
    ['a', '1.5'], ['b', '-2e3'], ['c', '.5'], ['d', '3f'], ['e', '-inf'], ['f', 'ident'], ['g', '010'],
    ['[pkg.ext]', '1'], ['[type.googleapis.com/pkg.Msg]', 'message'],
  ]);
});

void test('pbtxt: malformed text fails with line, column and what was expected', () => {
  const cases: [string, RegExp][] = [
    ['a: ', /line 1, column 4: expected a value for 'a' but found end of file/],
    ['a {\n  b: 1\n', /line 3, column 1: expected '}' before end of file/],
    ['a: "abc', /line 1, column 4: unterminated string/],
    ['a: "x\ny"', /line 1, column 4: unterminated string/],
    ['a: 12abc', /line 1, column 4: malformed number '12abc'/],
    ['a: 1.2.3', /malformed number '1\.2\.3'/],
    ['a: [1 2]', /line 1, column 7: expected ',' or ']' in the list of 'a' but found '2'/],
    ['a: [1,]', /expected a value for 'a' but found ']'/],
    ['a b', /line 1, column 3: expected ':' or '\{' after field name 'a'/],
    ['a: @', /line 1, column 4: unexpected character '@'/],
    ['a: "\\q"', /unknown escape '\\q' in string/],
    ['a: {b: 1}}', /line 1, column 10: expected a field name but found '\}'/],
    ['a: { b: 1 >', /expected a field name but found '>'/],
    ['a [ 1 ]', /line 1, column 5: expected '\{' for the message 'a' but found '1'/],
  ];
  for (const [text, message] of cases) {
    assert.throws(() => parsePbtxt(text), (e: unknown) => e instanceof PbtxtSyntaxError && message.test(e.message), JSON.stringify(text));
  }
});

const FULL = `
name: "full"
platform: "onnxruntime_onnx"
backend: "onnxruntime"
max_batch_size: 16
input [
  { name: "IN" data_type: TYPE_FP32 dims: [ 3, -1 ] optional: true },
  { name: "TXT" data_type: TYPE_STRING dims: [ 1 ] }
]
output { name: "OUT" data_type: TYPE_FP16 dims: [ 2 ] }
dynamic_batching {
  preferred_batch_size: [ 4, 8 ]
  max_queue_delay_microseconds: 100
  preserve_ordering: true
  priority_levels: 3
  default_priority_level: 2
  default_queue_policy { timeout_action: DELAY default_timeout_microseconds: 5000 allow_timeout_override: true max_queue_size: 7 }
  priority_queue_policy { key: 1 value { max_queue_size: 9 } }
  priority_queue_policy { key: 3 value { timeout_action: REJECT } }
}
instance_group [ { count: 2 kind: KIND_GPU gpus: [ 0, 1 ] }, { kind: KIND_CPU } ]
version_policy { specific { versions: [ 3, 1 ] } }
model_warmup [
  {
    name: "w"
    batch_size: 4
    count: 2
    inputs { key: "IN" value { data_type: TYPE_FP32 dims: [ 3, 5 ] random_data: true } }
    inputs [ { key: "TXT", value: { data_type: TYPE_STRING, dims: [ 1 ], zero_data: true } } ]
  }
]
`;

void test('config.pbtxt: every field sluice reads lands in the draft', () => {
  const d = readPbtxtConfig(FULL);
  assert.equal(d.source, 'pbtxt');
  assert.deepEqual([d.name, d.platform, d.backend, d.maxBatchSize], ['full', 'onnxruntime_onnx', 'onnxruntime', 16]);
  assert.deepEqual(d.inputs, [{ name: 'IN', datatype: 'FP32', dims: [3, -1], optional: true }, { name: 'TXT', datatype: 'BYTES', dims: [1] }]);
  assert.deepEqual(d.outputs, [{ name: 'OUT', datatype: 'FP16', dims: [2] }]);
  assert.deepEqual(d.dynamicBatching, {
    preferredBatchSizes: [4, 8],
    maxQueueDelayUs: 100,
    preserveOrdering: true,
    priorityLevels: 3,
    defaultPriorityLevel: 2,
    defaultQueuePolicy: { timeoutAction: 'DELAY', defaultTimeoutUs: 5000, allowTimeoutOverride: true, maxQueueSize: 7 },
    priorityQueuePolicy: {
      1: { timeoutAction: undefined, defaultTimeoutUs: undefined, allowTimeoutOverride: undefined, maxQueueSize: 9 },
      3: { timeoutAction: 'REJECT', defaultTimeoutUs: undefined, allowTimeoutOverride: undefined, maxQueueSize: undefined },
    },
  });
  assert.deepEqual(d.instanceGroups, [{ count: 2, kind: 'KIND_GPU', gpus: [0, 1] }, { count: undefined, kind: 'KIND_CPU', gpus: undefined }]);
  assert.deepEqual(d.versionPolicy, { specific: { versions: [3, 1] } });
  assert.deepEqual(d.warmup, [{
    name: 'w',
    batchSize: 4,
    count: 2,
    inputs: { IN: { datatype: 'FP32', dims: [3, 5], randomData: true }, TXT: { datatype: 'BYTES', dims: [1], zeroData: true } },
  }]);
  assert.deepEqual(d.unknownFields, []);
});

void test('config.pbtxt: version_policy latest and all; absent sections stay absent', () => {
  assert.deepEqual(readPbtxtConfig('version_policy { latest { num_versions: 3 } }').versionPolicy, { latest: { numVersions: 3 } });
  assert.deepEqual(readPbtxtConfig('version_policy { latest { } }').versionPolicy, { latest: { numVersions: 1 } });
  assert.deepEqual(readPbtxtConfig('version_policy: { all: {} }').versionPolicy, { all: {} });
  const empty = readPbtxtConfig('');
  assert.equal(empty.maxBatchSize, undefined, 'absent max_batch_size is not 0: auto-complete decides');
  assert.equal(empty.inputs, undefined);
  assert.equal(empty.dynamicBatching, undefined);
  assert.equal(readPbtxtConfig('max_batch_size: 0').maxBatchSize, 0);
});

void test('config.pbtxt: unknown fields are collected with their paths, once each', () => {
  const d = readPbtxtConfig('optimization { } input { name: "a" format: FORMAT_NCHW } input { name: "b" format: FORMAT_NHWC } parameters { key: "k" } parameters { key: "j" } dynamic_batching { priority_queue_policy { key: 1 value { x: 1 } } }');
  assert.deepEqual([...d.unknownFields].sort(), ['dynamic_batching.priority_queue_policy[0].value.x', 'input[0].format', 'input[1].format', 'optimization', 'parameters']);
});

void test('config.pbtxt: wrong types and values are errors naming the field and line', () => {
  const cases: [string, RegExp][] = [
    ['max_batch_size: "8"', /at 'max_batch_size': expected an integer, got the string "8" \(line 1\)/],
    ['max_batch_size: -1', /at 'max_batch_size': must be between 0 and 2147483647, got -1 \(line 1\)/],
    ['max_batch_size: 1.5', /at 'max_batch_size': expected an integer, got the number 1\.5/],
    ['name: model', /at 'name': expected a quoted string, got 'model'/],
    ['input { name: "x" data_type: FLOAT }', /at 'input\[0\]\.data_type': expected a TYPE_\* datatype \(e\.g\. TYPE_FP32\), got 'FLOAT'/],
    ['input { data_type: TYPE_FP32 }', /at 'input\[0\]': every input and output needs a 'name'/],
    ['input { name: "x" dims: [ -2 ] }', /at 'input\[0\]\.dims\[0\]': must be >= -1, got -2 \(line 1\)/],
    ['input { name: "x" optional: maybe }', /at 'input\[0\]\.optional': expected true or false, got 'maybe'/],
    ['dynamic_batching { preferred_batch_size: [ 0 ] }', /preferred_batch_size\[0\]': must be between 1 and 2147483647, got 0 \(line 1\)/],
    ['dynamic_batching { default_queue_policy { timeout_action: DROP } }', /timeout_action': expected one of REJECT, DELAY, got 'DROP'/],
    ['dynamic_batching { priority_queue_policy { value { } } }', /a map entry needs a 'key'/],
    ['dynamic_batching { priority_queue_policy { key: 1 } priority_queue_policy { key: 1 } }', /priority level 1 is given twice/],
    ['instance_group { kind: KIND_MODEL }', /at 'instance_group\[0\]\.kind': expected one of KIND_CPU, KIND_GPU, KIND_AUTO, got 'KIND_MODEL'/],
    ['instance_group { count: 0 }', /instance_group\[0\]\.count': must be between 1 and/],
    ['version_policy { latest { } all { } }', /at 'version_policy': give exactly one of latest, all, specific \(found 2\)/],
    ['version_policy { }', /give exactly one of latest, all, specific \(found 0\)/],
    ['version_policy { specific { } }', /at 'version_policy\.specific': list at least one version/],
    ['model_warmup { batch_size: 1 }', /every warmup sample needs a 'name'/],
    ['model_warmup { name: "w" inputs { key: "x" value { dims: [1] } } }', /warmup input 'x' needs a 'data_type'/],
    ['name: "a" name: "b"', /at 'name': field given 2 times \(lines 1, 1\) but it is not repeated/],
    ['dynamic_batching: 3', /at 'dynamic_batching': expected a message \{ \.\.\. \}, got the number 3/],
    ['max_batch_size: 8 input [', /syntax error at line 1, column 26: expected '\{' for the message 'input' but found end of file/],
  ];
  for (const [text, message] of cases) {
    assert.throws(() => readPbtxtConfig(text), (e: unknown) => isSluiceError(e) && e.code === 'SLUICE_INVALID_MODEL_CONFIG' && e.message.includes('config.pbtxt') && message.test(e.message), text);
  }
});

void test('config.pbtxt: integers in hex and octal, booleans in every spelling', () => {
  assert.equal(readPbtxtConfig('max_batch_size: 0x20').maxBatchSize, 32);
  assert.equal(readPbtxtConfig('max_batch_size: 010').maxBatchSize, 8);
  for (const [text, value] of [['true', true], ['True', true], ['t', true], ['1', true], ['false', false], ['False', false], ['f', false], ['0', false]] as const) {
    assert.equal(readPbtxtConfig(`dynamic_batching { preserve_ordering: ${text} }`).dynamicBatching?.preserveOrdering, value, text);
  }
});
