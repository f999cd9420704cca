import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { startFastifyEcho, startGrpcEcho } from '../../loadtest/bench/echo-servers.ts';
import { startNaiveServer } from '../../loadtest/bench/naive-server.ts';
import { startServerProcess } from '../../loadtest/bench/processes.ts';
import { createDriver } from '../../loadtest/driver.ts';
import { planCheck } from '../../loadtest/prepare.ts';
import { runStep } from '../../loadtest/step.ts';
import type { DecodedTensor, LoadProtocol, WorkTensor } from '../../loadtest/types.ts';
import { generateVariants, type ModelMeta } from '../../loadtest/workload.ts';
import { startTestSluice } from '../helpers/sluice.ts';

const MLP_FILE = fileURLToPath(new URL('../../models/mlp/1/model.onnx', import.meta.url));
const step = { warmupMs: 0, durationMs: 500, drainTimeoutMs: 10_000, maxRequests: 1_000_000, metricsUrl: undefined };

function driverFor(protocol: LoadProtocol, url: string, model: string, variants: readonly (readonly WorkTensor[])[]): ReturnType<typeof createDriver> {
  return createDriver({ protocol, url: protocol === 'grpc' ? undefined : url, grpcUrl: protocol === 'grpc' ? url : undefined, model, version: '', variants, timeoutMs: 20_000, connections: 1, maxOutstanding: 64, lateThresholdMs: 5, checkEvery: 1 });
}

test('the naive baseline server answers exactly what sluice answers for mlp', async (t) => {
  const sluice = await startTestSluice(t);
  const naive = await startNaiveServer({ modelFile: MLP_FILE, model: 'mlp', inputName: 'INPUT0', host: '127.0.0.1', port: 0, intraOpThreads: 1 });
  t.after(() => naive.close());
  const meta: ModelMeta = sluice.service.modelMetadata('mlp', '');
  const variants = generateVariants(meta, { seed: 5, variants: 4, batch: 1, shapes: {} });
  const fromSluice = driverFor('binary', `http://127.0.0.1:${sluice.ports.http}`, 'mlp', variants);
  const toNaive = driverFor('json', `http://127.0.0.1:${naive.port}`, 'mlp', variants);
  t.after(async () => {
    await fromSluice.close();
    await toNaive.close();
  });
  // Expected outputs come from sluice; every naive answer is then checked against them.
  const { check, kind } = await planCheck(fromSluice, meta, variants, { enabled: true, rtol: 1e-3 });
  assert.equal(kind, 'reference');
  const r = await runStep(toNaive, { mode: 'closed', concurrency: 4 }, { ...step, check, model: 'mlp' });
  assert.equal(r.errorCount, 0, JSON.stringify(r.errors));
  assert.ok(r.checked >= 4);
  assert.equal(r.wrong, 0);
});

test('the naive server without inference answers every request with its first real reply, shaped like it', async (t) => {
  const sluice = await startTestSluice(t);
  const parseOnly = await startNaiveServer({ modelFile: MLP_FILE, model: 'mlp', inputName: 'INPUT0', host: '127.0.0.1', port: 0, intraOpThreads: 1, skipInference: true });
  t.after(() => parseOnly.close());
  const post = async (url: string, value: number): Promise<{ shape: number[]; data: number[] }> => {
    const body = { inputs: [{ name: 'INPUT0', datatype: 'FP32', shape: [1, 784], data: new Array<number>(784).fill(value) }] };
    const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    assert.equal(res.status, 200);
    const out = ((await res.json()) as { outputs: { shape: number[]; data: number[] }[] }).outputs[0]!;
    return out;
  };
  const naiveUrl = `http://127.0.0.1:${parseOnly.port}/v2/models/mlp/infer`;
  const sluiceUrl = `http://127.0.0.1:${sluice.ports.http}/v2/models/mlp/infer`;
  const first = await post(naiveUrl, 0.25);
  const real = await post(sluiceUrl, 0.25);
  assert.deepEqual(first.shape, [1, 10]);
  first.data.forEach((v, k) => assert.ok(Math.abs(v - real.data[k]!) < 1e-5, 'the first reply is a real inference'));
  const other = await post(sluiceUrl, -0.5);
  assert.notDeepEqual(other.data, real.data, 'a different input has a different real answer');
  assert.deepEqual((await post(naiveUrl, -0.5)).data, first.data, 'but the server without inference repeats the stored reply');
});

test('the echo servers send the request tensors back under output names', async (t) => {
  const http = await startFastifyEcho({ host: '127.0.0.1', port: 0 });
  const grpc = await startGrpcEcho({ host: '127.0.0.1', port: 0 });
  t.after(async () => {
    await http.close();
    await grpc.close();
  });
  const meta: ModelMeta = {
    name: 'simple', versions: ['1'], platform: 'x',
    inputs: [{ name: 'INPUT0', datatype: 'INT32', shape: [-1, 16] }, { name: 'INPUT1', datatype: 'INT32', shape: [-1, 16] }],
    outputs: [{ name: 'OUTPUT0', datatype: 'INT32', shape: [-1, 16] }, { name: 'OUTPUT1', datatype: 'INT32', shape: [-1, 16] }],
  };
  const variants = generateVariants(meta, { seed: 2, variants: 2, batch: 1, shapes: {} });
  // An echo is right when OUTPUTn carries INPUTn's values.
  const echoCheck = (variant: number, outputs: readonly DecodedTensor[] | string): string | undefined => {
    if (typeof outputs === 'string') return outputs;
    for (const input of variants[variant]!) {
      const out = outputs.find((o) => o.name === input.name.replace('INPUT', 'OUTPUT'));
      if (!out || out.values.join() !== input.values.join()) return `${input.name} not echoed`;
    }
    return undefined;
  };
  for (const [protocol, url] of [['json', `http://127.0.0.1:${http.port}`], ['grpc', `127.0.0.1:${grpc.port}`]] as const) {
    const driver = driverFor(protocol, url, 'simple', variants);
    try {
      const r = await runStep(driver, { mode: 'closed', concurrency: 4 }, { ...step, durationMs: 300, check: echoCheck, model: 'simple' });
      assert.equal(r.errorCount, 0, `${protocol}: ${JSON.stringify(r.errors)}`);
      assert.ok(r.checked > 0 && r.ok > 0);
      assert.equal(r.wrong, 0);
    } finally {
      await driver.close();
    }
  }
});

test('bench servers run in child processes that report their ports and stop on request', async () => {
  const child = await startServerProcess('echo', 'echo-http', [], 60_000);
  try {
    const res = await fetch(`http://127.0.0.1:${child.ports['http']}/v2/models/x/infer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ inputs: [{ name: 'INPUT0', datatype: 'FP32', shape: [1], data: [1.5] }] }) });
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { model_name: 'x', outputs: [{ name: 'OUTPUT0', datatype: 'FP32', shape: [1], data: [1.5] }] });
  } finally {
    await child.stop();
  }
  await assert.rejects(fetch(`http://127.0.0.1:${child.ports['http']}/`), 'the child stopped listening');
  await assert.rejects(startServerProcess('bad', 'no-such-kind', [], 60_000), /exited with 1 before serving: .*unknown bench server 'no-such-kind'/s);
});
