import assert from 'node:assert/strict';
import { test } from 'node:test';
import { compareOutputs, isSimpleModel, simpleExpected } from '../../loadtest/check.ts';
import { createDriver } from '../../loadtest/driver.ts';
import { decodeHttpResponse } from '../../loadtest/http-codec.ts';
import { parseOptions, UsageError } from '../../loadtest/options.ts';
import { decodeRaw, encodeRaw, fromHalf, toHalf } from '../../loadtest/raw-codec.ts';
import { bucketQuantile, defaultMetricsUrl, parsePrometheus, serverView, type Snapshot } from '../../loadtest/scrape.ts';
import { generateVariants, makeTensor, variantFromBody, type ModelMeta } from '../../loadtest/workload.ts';

const SIMPLE: ModelMeta = {
  name: 'simple', versions: ['1'], platform: 'x',
  inputs: [{ name: 'INPUT0', datatype: 'INT32', shape: [-1, 16] }, { name: 'INPUT1', datatype: 'INT32', shape: [-1, 16] }],
  outputs: [{ name: 'OUTPUT0', datatype: 'INT32', shape: [-1, 16] }, { name: 'OUTPUT1', datatype: 'INT32', shape: [-1, 16] }],
};

test('options: lists, durations and defaults; bad values name their flag', () => {
  const o = parseOptions(['--model', 'm', '--concurrency', '1,8', '--concurrency', '64', '--rate', '100,250.5', '--duration', '500ms', '--warmup', '1m', '--shape', 'X:2x3']);
  assert.deepEqual(o.concurrency, [1, 8, 64]);
  assert.deepEqual(o.rates, [100, 250.5]);
  assert.equal(o.durationMs, 500);
  assert.equal(o.warmupMs, 60_000);
  assert.deepEqual(o.shapes, { X: [2, 3] });
  assert.equal(o.url, 'http://127.0.0.1:8000');
  assert.equal(parseOptions(['--model', 'm', '--protocol', 'grpc']).grpcUrl, '127.0.0.1:8001');
  const bad: [string[], RegExp][] = [
    [[], /--model is required/],
    [['--model', 'm', '--protocol', 'udp'], /--protocol 'udp'/],
    [['--model', 'm', '--concurrency', '0'], /--concurrency 0: must be between 1/],
    [['--model', 'm', '--rate', 'fast'], /--rate 'fast'/],
    [['--model', 'm', '--duration', '10 minutes'], /--duration '10 minutes'/],
    [['--model', 'm', '--duration', '2h'], /--duration '2h'/],
    [['--model', 'm', '--shape', 'X'], /--shape 'X'/],
    [['--model', 'm', '--url', 'localhost:8000'], /--url 'localhost:8000'/],
    [['--model', 'm', '--bogus'], /bogus/],
    [['--model', 'm', '--report', 'out.png'], /--report out\.png: .*\.html or \.svg/],
  ];
  for (const [argv, re] of bad) assert.throws(() => parseOptions(argv), (e: unknown) => e instanceof UsageError && re.test(e.message), argv.join(' '));
});

test('generated inputs follow the metadata, are seeded, and differ between input sets', () => {
  const a = generateVariants(SIMPLE, { seed: 7, variants: 3, batch: 2, shapes: {} });
  const b = generateVariants(SIMPLE, { seed: 7, variants: 3, batch: 2, shapes: {} });
  const c = generateVariants(SIMPLE, { seed: 8, variants: 3, batch: 2, shapes: {} });
  assert.deepEqual(a[0]![0]!.shape, [2, 16]);
  assert.equal(a[0]![0]!.raw.length, 2 * 16 * 4);
  assert.deepEqual(a.map((v) => v.map((t) => t.values)), b.map((v) => v.map((t) => t.values)));
  assert.notDeepEqual(a[0]![0]!.values, c[0]![0]!.values);
  assert.notDeepEqual(a[0]![0]!.values, a[1]![0]!.values);
  const shaped = generateVariants(SIMPLE, { seed: 1, variants: 1, batch: 1, shapes: { INPUT0: [1, 16], INPUT1: [1, 16] } });
  assert.deepEqual(shaped[0]![1]!.shape, [1, 16]);
  assert.throws(() => generateVariants({ ...SIMPLE, inputs: [{ name: 'Z', datatype: 'COMPLEX', shape: [1] }] }, { seed: 1, variants: 1, batch: 1, shapes: {} }), /'Z'.*COMPLEX/);
});

test('--input bodies: nested data is flattened; mistakes name the input', () => {
  const v = variantFromBody({ inputs: [{ name: 'A', shape: [2, 2], datatype: 'FP32', data: [[1, 2], [3, 4]] }] }, 'f.json');
  assert.deepEqual(v[0]!.values, [1, 2, 3, 4]);
  assert.throws(() => variantFromBody({ inputs: [{ name: 'A', shape: [3], datatype: 'FP32', data: [1, 2] }] }, 'f.json'), /f\.json: input 'A': shape \[3\] needs 3 values, got 2/);
  assert.throws(() => variantFromBody({ nope: 1 }, 'f.json'), /"inputs" array/);
  assert.throws(() => variantFromBody({ inputs: [{ name: 'A', shape: [1], datatype: 'FP32', data: [{}] }] }, 'f.json'), /'A'.*not a number/);
});

test('raw tensors: FP16 round trip, BYTES framing, size mismatches reported', () => {
  for (const x of [0, 1, -2.5, 0.333251953125, 65504, 6.103515625e-5]) assert.equal(fromHalf(toHalf(x)), x);
  assert.equal(fromHalf(toHalf(1e6)), Infinity);
  assert.deepEqual(decodeRaw('FP16', encodeRaw('FP16', [0.5, -1])), [0.5, -1]);
  assert.deepEqual(decodeRaw('BYTES', encodeRaw('BYTES', ['ab', '', 'xyz'])), ['ab', '', 'xyz']);
  assert.deepEqual(decodeRaw('INT64', encodeRaw('INT64', [-3, 5])), [-3, 5]);
  assert.match(String(decodeRaw('INT32', new Uint8Array(6))), /not a whole number/);
  assert.match(String(decodeRaw('BYTES', new Uint8Array([9, 0, 0, 0, 1]))), /past the end/);
});

test('binary responses decode; the simple model check catches a wrong element and a float tolerance holds', () => {
  const [inputs] = generateVariants(SIMPLE, { seed: 3, variants: 1, batch: 1, shapes: {} });
  assert.ok(isSimpleModel(SIMPLE));
  const want = simpleExpected(inputs!);
  // A response in the binary extension, built the way a server would: OUTPUT0 binary, OUTPUT1 as JSON.
  const raw0 = encodeRaw('INT32', want[0]!.values);
  const header = Buffer.from(JSON.stringify({ outputs: [
    { name: 'OUTPUT0', datatype: 'INT32', shape: [1, 16], parameters: { binary_data_size: raw0.length } },
    { name: 'OUTPUT1', datatype: 'INT32', shape: [1, 16], data: want[1]!.values },
  ] }));
  const got = decodeHttpResponse(Buffer.concat([header, raw0]), header.length);
  assert.ok(Array.isArray(got));
  assert.equal(compareOutputs(want, got, { atol: 0, rtol: 0 }), undefined);
  const off = got.map((t) => (t.name === 'OUTPUT1' ? { ...t, values: t.values.map((v, i) => (i === 5 ? Number(v) + 1 : v)) } : t));
  assert.match(compareOutputs(want, off, { atol: 0, rtol: 0 }) ?? '', /OUTPUT1'\[5\]/);
  const f = [{ name: 'Y', datatype: 'FP32', shape: [2], values: [1, 100] }];
  assert.equal(compareOutputs(f, [{ ...f[0]!, values: [1.0005, 100.05] }], { atol: 1e-4, rtol: 1e-3 }), undefined);
  assert.match(compareOutputs(f, [{ ...f[0]!, values: [1.01, 100] }], { atol: 1e-4, rtol: 1e-3 }) ?? '', /Y'\[0\]/);
  assert.match(JSON.stringify(decodeHttpResponse(Buffer.from('{"outputs":[{"name":"A","datatype":"INT32","shape":[1],"parameters":{"binary_data_size":8}}]}'), undefined)), /past the end|binary/);
});

test('server view: deltas of sluice metrics, mean batch, busy fraction, histogram quantiles', () => {
  const snap = (atMs: number, text: string): Snapshot => ({ atMs, samples: parsePrometheus(text) });
  const a = snap(0, [
    '# HELP x', 'sluice_requests_total{model="m",protocol="http",status="success"} 10',
    'sluice_requests_total{model="other",protocol="http",status="success"} 99',
    'sluice_batch_size_rows_sum{model="m"} 20', 'sluice_batch_size_rows_count{model="m"} 10',
    'sluice_batch_compute_duration_seconds_sum{model="m"} 1', 'sluice_batch_compute_duration_seconds_count{model="m"} 10',
    'sluice_queue_duration_seconds_sum{model="m"} 0', 'sluice_queue_duration_seconds_count{model="m"} 10',
    'sluice_request_duration_seconds_bucket{model="m",protocol="http",status="success",le="0.001"} 0',
    'sluice_request_duration_seconds_bucket{model="m",protocol="http",status="success",le="0.01"} 10',
    'sluice_request_duration_seconds_bucket{model="m",protocol="http",status="success",le="+Inf"} 10',
  ].join('\n'));
  const b = snap(2000, [
    'sluice_requests_total{model="m",protocol="http",status="success"} 110',
    'sluice_requests_total{model="m",protocol="grpc",status="queue_full"} 5',
    'sluice_requests_total{model="other",protocol="http",status="success"} 500',
    'sluice_batch_size_rows_sum{model="m"} 420', 'sluice_batch_size_rows_count{model="m"} 60',
    'sluice_batch_compute_duration_seconds_sum{model="m"} 2.8', 'sluice_batch_compute_duration_seconds_count{model="m"} 60',
    'sluice_queue_duration_seconds_sum{model="m"} 0.2', 'sluice_queue_duration_seconds_count{model="m"} 110',
    'sluice_worker_up{worker="w0"} 1', 'sluice_worker_up{worker="w1"} 0',
    'sluice_request_duration_seconds_bucket{model="m",protocol="http",status="success",le="0.001"} 50',
    'sluice_request_duration_seconds_bucket{model="m",protocol="http",status="success",le="0.01"} 110',
    'sluice_request_duration_seconds_bucket{model="m",protocol="http",status="success",le="+Inf"} 110',
  ].join('\n'));
  const v = serverView(a, b, 'm', { mean: 1.5, max: 3 });
  assert.deepEqual(v.requests, { success: 100, queue_full: 5 });
  assert.equal(v.meanBatchSize, 8);
  assert.equal(v.batches, 50);
  assert.ok(Math.abs(v.meanComputeMs! - 36) < 1e-9);
  assert.ok(Math.abs(v.meanQueueMs! - 2) < 1e-9);
  assert.equal(v.workers, 1);
  assert.ok(Math.abs(v.busyFraction! - 0.9) < 1e-9);
  assert.equal(v.queueDepthMax, 3);
  // Half of the 100 new requests under 1 ms: the median sits at the 1 ms bucket edge.
  assert.ok(Math.abs(v.serverP50Ms! - 1) < 1e-9);
  assert.ok(Math.abs(bucketQuantile(a, b, 'sluice_request_duration_seconds', () => true, 0.99)! - (0.001 + 0.009 * (49 / 50))) < 1e-9);
  assert.deepEqual(parsePrometheus('m{a="x\\"y",b="z"} 1.5\nbad line\nn +Inf'), [{ name: 'm', labels: { a: 'x"y', b: 'z' }, value: 1.5 }, { name: 'n', labels: {}, value: Infinity }]);
});

test('the metrics URL defaults to the REST port + 2, as 8000 -> 8002', () => {
  assert.equal(defaultMetricsUrl('http://10.0.0.5:8000', undefined), 'http://10.0.0.5:8002/metrics');
  assert.equal(defaultMetricsUrl('http://host', undefined), 'http://host:8002/metrics');
  assert.equal(defaultMetricsUrl(undefined, 'grpc://h:8001'), 'http://h:8002/metrics');
  assert.equal(defaultMetricsUrl(undefined, '127.0.0.1:9001'), 'http://127.0.0.1:9002/metrics');
});

test('FP16 inputs cannot go as JSON: the driver says which input and what to use instead', () => {
  const variants = [[makeTensor('HALF', 'FP16', [1, 2], [0.5, 1])]];
  const o = { url: 'http://127.0.0.1:1', grpcUrl: undefined, model: 'm', version: '', variants, timeoutMs: 1000, connections: 1, maxOutstanding: 1, lateThresholdMs: 5, checkEvery: 1 };
  assert.throws(() => createDriver({ ...o, protocol: 'json' }), /input 'HALF' is FP16, which has no JSON form: use --protocol binary, h2c or grpc/);
  const binary = createDriver({ ...o, protocol: 'binary' });
  void binary.close();
});
