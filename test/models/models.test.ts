// The sample models run in a real ONNX Runtime session and compute what models/README.md says.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import { CNN_CHANNELS, IDENTITY_TYPES, MLP_LAYERS, SAMPLE_MODELS, buildSampleModel } from '../../models/sample-models.ts';
import { Xorshift32 } from '../../models/xorshift.ts';
import { toOrtTensor } from '../../src/worker/session.ts';
import { cnnForward, mlpForward, readInitializers } from './reference.ts';

const MODELS = fileURLToPath(new URL('../../models', import.meta.url));
const fileOf = (name: string): string => `${MODELS}/${name}/1/model.onnx`;

async function session(name: string): Promise<ort.InferenceSession> {
  return ort.InferenceSession.create(fileOf(name), { intraOpNumThreads: 1, interOpNumThreads: 1 });
}

function int32s(n: number, f: (i: number) => number): Int32Array {
  return Int32Array.from({ length: n }, (_, i) => f(i));
}

void test('the generated files are what the generator builds now (else: npm run models)', () => {
  for (const name of Object.keys(SAMPLE_MODELS)) {
    const built = buildSampleModel(name);
    assert.deepEqual(buildSampleModel(name), built, `${name}: two builds differ, the generator is not deterministic`);
    assert.ok(Buffer.from(built).equals(readFileSync(fileOf(name))), `${fileOf(name)} is stale: run node --import tsx models/generate.ts`);
  }
});

void test('simple: OUTPUT0 is the sum and OUTPUT1 the difference, over a batch', async (t) => {
  const s = await session('simple');
  t.after(() => s.release());
  const rows = 3;
  const a = int32s(rows * 16, (i) => i * 7 - 40);
  const b = int32s(rows * 16, (i) => 1000 - i * i);
  const out = await s.run({ INPUT0: new ort.Tensor('int32', a, [rows, 16]), INPUT1: new ort.Tensor('int32', b, [rows, 16]) });
  assert.deepEqual(out['OUTPUT0']?.dims, [rows, 16]);
  assert.deepEqual(Array.from(out['OUTPUT0']?.data as Int32Array), Array.from(a, (x, i) => x + (b[i] ?? 0)));
  assert.deepEqual(Array.from(out['OUTPUT1']?.data as Int32Array), Array.from(a, (x, i) => x - (b[i] ?? 0)));
});

void test('simple_int8: INT8 sum and difference, wrapping as INT8 does', async (t) => {
  const s = await session('simple_int8');
  t.after(() => s.release());
  const a = Int8Array.from({ length: 32 }, (_, i) => i * 9 - 120);
  const b = Int8Array.from({ length: 32 }, (_, i) => (i % 3) * 60 - 50);
  const out = await s.run({ INPUT0: new ort.Tensor('int8', a, [2, 16]), INPUT1: new ort.Tensor('int8', b, [2, 16]) });
  assert.equal(out['OUTPUT0']?.type, 'int8');
  const wrap = (x: number): number => ((((x + 128) % 256) + 256) % 256) - 128;
  assert.deepEqual(Array.from(out['OUTPUT0']?.data as Int8Array), Array.from(a, (x, i) => wrap(x + b[i]!)));
  assert.deepEqual(Array.from(out['OUTPUT1']?.data as Int8Array), Array.from(a, (x, i) => wrap(x - b[i]!)));
});

void test('simple_string: decimal strings in, sum and difference out as strings', async (t) => {
  const s = await session('simple_string');
  t.after(() => s.release());
  const a = Array.from({ length: 32 }, (_, i) => String(i * 13 - 100));
  const b = Array.from({ length: 32 }, (_, i) => String(-7 * i));
  const out = await s.run({ INPUT0: new ort.Tensor('string', a, [2, 16]), INPUT1: new ort.Tensor('string', b, [2, 16]) });
  assert.equal(out['OUTPUT0']?.type, 'string');
  assert.deepEqual(out['OUTPUT0']?.data, a.map((x, i) => String(Number(x) + Number(b[i]))));
  assert.deepEqual(out['OUTPUT1']?.data, a.map((x, i) => String(Number(x) - Number(b[i]))));
});

void test('simple_identity: echoes strings, including empty and non-ASCII ones', async (t) => {
  const s = await session('simple_identity');
  t.after(() => s.release());
  const words = ['', 'sluice', 'ünïcödé ✓', 'a'.repeat(1000)];
  const out = await s.run({ INPUT0: new ort.Tensor('string', words, [2, 2]) });
  assert.deepEqual(out['OUTPUT0']?.dims, [2, 2]);
  assert.deepEqual(out['OUTPUT0']?.data, words);
});

void test('identity: every datatype round-trips unchanged', async (t) => {
  const s = await session('identity');
  t.after(() => s.release());
  const samples: Record<string, ort.Tensor> = {
    BOOL: new ort.Tensor('bool', Uint8Array.from([1, 0, 1, 1]), [2, 2]),
    UINT8: new ort.Tensor('uint8', Uint8Array.from([0, 1, 254, 255]), [2, 2]),
    UINT16: new ort.Tensor('uint16', Uint16Array.from([0, 1, 65534, 65535]), [2, 2]),
    UINT32: new ort.Tensor('uint32', Uint32Array.from([0, 1, 2 ** 32 - 2, 2 ** 32 - 1]), [2, 2]),
    UINT64: new ort.Tensor('uint64', BigUint64Array.from([0n, 1n, 2n ** 64n - 2n, 2n ** 64n - 1n]), [2, 2]),
    INT8: new ort.Tensor('int8', Int8Array.from([-128, -1, 0, 127]), [2, 2]),
    INT16: new ort.Tensor('int16', Int16Array.from([-32768, -1, 0, 32767]), [2, 2]),
    INT32: new ort.Tensor('int32', Int32Array.from([-(2 ** 31), -1, 0, 2 ** 31 - 1]), [2, 2]),
    INT64: new ort.Tensor('int64', BigInt64Array.from([-(2n ** 63n), -1n, 0n, 2n ** 63n - 1n]), [2, 2]),
    // FP16 travels as its bit patterns: 1.0, -2.0, +inf, a NaN payload. Built as sluice builds it: on a
    // runtime with a native Float16Array, onnxruntime-common would rewrap a Uint16Array the binding cannot read.
    FP16: toOrtTensor({ name: 'INPUT_FP16', datatype: 'FP16', shape: [2, 2], data: new Uint8Array(Uint16Array.from([0x3c00, 0xc000, 0x7c00, 0x7e01]).buffer) }),
    FP32: new ort.Tensor('float32', Float32Array.from([1.5, -0, 3.4e38, Number.NaN]), [2, 2]),
    FP64: new ort.Tensor('float64', Float64Array.from([Math.PI, -0, 5e-324, Number.NEGATIVE_INFINITY]), [2, 2]),
    BYTES: new ort.Tensor('string', ['x', '', 'yz', '✓'], [2, 2]),
  };
  assert.deepEqual(Object.keys(samples).sort(), IDENTITY_TYPES.map(([dt]) => dt).sort(), 'a sample per identity datatype');
  const feeds = Object.fromEntries(Object.entries(samples).map(([dt, tensor]) => [`INPUT_${dt}`, tensor]));
  const out = await s.run(feeds);
  for (const [dt, tensor] of Object.entries(samples)) {
    const got = out[`OUTPUT_${dt}`];
    assert.ok(got !== undefined, `OUTPUT_${dt} missing`);
    assert.equal(got.type, tensor.type, dt);
    assert.deepEqual(got.dims, [2, 2], dt);
    if (tensor.type === 'float32' || tensor.type === 'float64') {
      // Object.is tells -0 from 0 and matches NaN with NaN: bit-level equality for these samples.
      const want = Array.from(tensor.data as Float32Array);
      Array.from(got.data as Float32Array).forEach((v, i) => assert.ok(Object.is(v, want[i]), `${dt}[${i}]: ${v} vs ${want[i]}`));
    } else if (tensor.type === 'float16') {
      // Compared as bits: the output may come back as a Float16Array, whose NaN would not compare.
      const bits = (d: ort.Tensor['data']): number[] => Array.from(new Uint16Array((d as Uint16Array).buffer, (d as Uint16Array).byteOffset, 4));
      assert.deepEqual(bits(got.data), bits(tensor.data), dt);
    } else {
      assert.deepEqual(got.data, tensor.data, dt);
    }
  }
});

void test('mlp: rows are probability distributions equal to a plain-JS forward pass of the same weights', async (t) => {
  const s = await session('mlp');
  t.after(() => s.release());
  const weights = readInitializers(fileOf('mlp'));
  const rng = new Xorshift32(42);
  const rows = 5;
  const x = Float32Array.from({ length: rows * 784 }, () => rng.next());
  const out = await s.run({ INPUT0: new ort.Tensor('float32', x, [rows, 784]) });
  const y = out['OUTPUT0'];
  assert.deepEqual(y?.dims, [rows, 10]);
  const probs = y?.data as Float32Array;
  let spread = 0;
  for (let r = 0; r < rows; r++) {
    const row = probs.subarray(r * 10, r * 10 + 10);
    assert.ok(Math.abs(row.reduce((a, b) => a + b, 0) - 1) < 1e-5, `row ${r} sums to 1`);
    const expected = mlpForward(weights, MLP_LAYERS.length - 1, x.subarray(r * 784, r * 784 + 784));
    expected.forEach((e, k) => assert.ok(Math.abs((row[k] ?? NaN) - e) < 1e-5, `row ${r} class ${k}: ${row[k]} vs ${e}`));
    spread = Math.max(spread, Math.max(...row) - Math.min(...row));
  }
  // Small seeded weights keep the softmax away from one-hot or uniform, so the comparison means something.
  assert.ok(spread > 0.01 && spread < 0.99, `softmax spread ${spread}`);
});

void test('cnn: 10 logits per image, equal to a plain-JS forward pass, the same on every run', async (t) => {
  const s = await session('cnn');
  t.after(() => s.release());
  const weights = readInitializers(fileOf('cnn'));
  const rng = new Xorshift32(7);
  const size = 64;
  const per = 3 * size * size;
  const x = Float32Array.from({ length: 2 * per }, () => rng.next());
  const feeds = { INPUT0: new ort.Tensor('float32', x, [2, 3, size, size]) };
  const first = await s.run(feeds);
  const again = await s.run(feeds);
  assert.deepEqual(first['OUTPUT0']?.dims, [2, 10]);
  const logits = first['OUTPUT0']?.data as Float32Array;
  assert.deepEqual(again['OUTPUT0']?.data, logits, 'same input, same output');
  for (let i = 0; i < 2; i++) {
    const expected = cnnForward(weights, CNN_CHANNELS, size, x.subarray(i * per, (i + 1) * per));
    expected.forEach((e, k) => assert.ok(Math.abs((logits[i * 10 + k] ?? NaN) - e) < 1e-4, `image ${i} logit ${k}: ${logits[i * 10 + k]} vs ${e}`));
  }
  // A batch of one gives the same row as the same image inside a batch.
  const single = await s.run({ INPUT0: new ort.Tensor('float32', x.slice(per), [1, 3, size, size]) });
  Array.from(single['OUTPUT0']?.data as Float32Array).forEach((v, k) => assert.ok(Math.abs(v - (logits[10 + k] ?? NaN)) < 1e-5));
});
