import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startTestSluice } from '../helpers/sluice.ts';
import { connectGrpc, int32Bytes, int32Values, outputOf, range16, simpleRequest, type Reply } from './client.ts';
import { slowSimpleConfig, tempRepository } from './repo.ts';

interface RestTensor {
  name: string;
  datatype: string;
  shape: number[];
  data: number[];
}

async function restInfer(port: number, model: string, inputs: RestTensor[]): Promise<{ outputs: RestTensor[] }> {
  const res = await fetch(`http://127.0.0.1:${port}/v2/models/${model}/infer`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ inputs }),
  });
  const body = await res.text();
  assert.equal(res.status, 200, body);
  return JSON.parse(body) as { outputs: RestTensor[] };
}

function float32Values(raw: Buffer): Float32Array {
  return new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength));
}

/** Compares every output of a REST JSON reply with the same output of a gRPC reply, element by element, bit for bit. */
function assertSameOutputs(rest: { outputs: RestTensor[] }, grpc: Reply): void {
  assert.deepEqual(rest.outputs.map((o) => o.name).sort(), (grpc['outputs'] as { name: string }[]).map((o) => o.name).sort());
  for (const r of rest.outputs) {
    const g = outputOf(grpc, r.name);
    assert.equal(g.datatype, r.datatype, r.name);
    assert.deepEqual(g.shape, r.shape, r.name);
    const values: number[] = r.datatype === 'FP32' ? [...float32Values(g.raw)] : int32Values(g.raw);
    assert.equal(values.length, r.data.length, r.name);
    // JSON carries FP32 as decimal numbers: rounding each back to float32 must give the very same bits.
    for (let i = 0; i < values.length; i++) assert.ok(Object.is(r.datatype === 'FP32' ? Math.fround(r.data[i]!) : r.data[i], values[i]), `${r.name}[${i}]: REST ${r.data[i]} vs gRPC ${values[i]}`);
  }
}

test('REST and gRPC agree, and share batches', { timeout: 60_000 }, async (t) => {
  const repo = tempRepository(t, ['simple', 'mlp'], { shared: slowSimpleConfig('shared', 1_000_000, 64) });
  const sluice = await startTestSluice(t, ['--model-repository', repo]);
  const c = connectGrpc(t, sluice.ports.grpc);

  await t.test('simple: identical outputs for identical inputs', async () => {
    const a = [...range16(-8), ...range16(1000)];
    const b = [...range16(3), ...range16(-77)];
    const rest = await restInfer(sluice.ports.http, 'simple', [
      { name: 'INPUT0', datatype: 'INT32', shape: [2, 16], data: a },
      { name: 'INPUT1', datatype: 'INT32', shape: [2, 16], data: b },
    ]);
    const grpc = await c.call('ModelInfer', simpleRequest(a, b));
    assertSameOutputs(rest, grpc);
    assert.deepEqual(int32Values(outputOf(grpc, 'OUTPUT0').raw), a.map((x, i) => x + b[i]!));
  });

  await t.test('mlp: identical FP32 outputs for identical inputs, typed or raw on the gRPC side', async () => {
    const x = Array.from({ length: 784 }, (_, i) => Math.fround(Math.sin(i * 0.37) * 0.5));
    const rest = await restInfer(sluice.ports.http, 'mlp', [{ name: 'INPUT0', datatype: 'FP32', shape: [1, 784], data: x }]);
    const raw = await c.call('ModelInfer', { model_name: 'mlp', inputs: [{ name: 'INPUT0', datatype: 'FP32', shape: [1, 784] }], raw_input_contents: [Buffer.from(new Float32Array(x).buffer)] });
    const typed = await c.call('ModelInfer', { model_name: 'mlp', inputs: [{ name: 'INPUT0', datatype: 'FP32', shape: [1, 784], contents: { fp32_contents: x } }] });
    assertSameOutputs(rest, raw);
    assertSameOutputs(rest, typed);
    const probs = float32Values(outputOf(raw, 'OUTPUT0').raw);
    assert.ok(Math.abs(probs.reduce((s, p) => s + p, 0) - 1) < 1e-5, 'softmax sums to 1');
  });

  await t.test('a REST request and a gRPC request for the same model run in one batch', async () => {
    const before = sluice.service.modelStats('shared', '')[0]!;
    const a = range16(5);
    const b = range16(9);
    const [rest, grpc] = await Promise.all([
      restInfer(sluice.ports.http, 'shared', [
        { name: 'INPUT0', datatype: 'INT32', shape: [1, 16], data: a },
        { name: 'INPUT1', datatype: 'INT32', shape: [1, 16], data: b },
      ]),
      c.call('ModelInfer', { model_name: 'shared', inputs: [{ name: 'INPUT0', datatype: 'INT32', shape: [1, 16] }, { name: 'INPUT1', datatype: 'INT32', shape: [1, 16] }], raw_input_contents: [int32Bytes(a), int32Bytes(b)] }),
    ]);
    assertSameOutputs(rest, grpc);
    const after = sluice.service.modelStats('shared', '')[0]!;
    assert.equal(after.inferenceCount - before.inferenceCount, 2, 'two rows inferred');
    assert.equal(after.executionCount - before.executionCount, 1, 'in one execution');
  });
});
