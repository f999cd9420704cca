import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { credentials, loadPackageDefinition, type ServiceClientConstructor, type ServiceError } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { LOADER_OPTIONS, protosDir } from '../../src/frontdoor/grpc/proto.ts';
import { startSluice, type Sluice } from '../../src/main.ts';
import { createLogger } from '../../src/telemetry/logger.ts';
import { testConfig } from '../helpers/sluice.ts';
import { samplesOf, sumOf, type Sample } from './exposition.ts';
import { invalidSimpleBody } from './load.ts';

type Unary = (request: object, callback: (e: ServiceError | null, reply?: unknown) => void) => void;

/** A grpc-js client of inference.GRPCInferenceService built from protos/ at run time. */
function grpcInfer(t: TestContext, port: number): (request: object) => Promise<number> {
  const definition = loadSync('grpc_service.proto', { ...LOADER_OPTIONS, includeDirs: [protosDir()] });
  const Ctor = (loadPackageDefinition(definition) as unknown as { inference: { GRPCInferenceService: ServiceClientConstructor } }).inference.GRPCInferenceService;
  const client = new Ctor(`127.0.0.1:${port}`, credentials.createInsecure());
  t.after(() => client.close());
  const infer = (client as unknown as Record<string, Unary>)['ModelInfer']!.bind(client);
  // Resolves with the gRPC status code: 0 on success.
  return (request) => new Promise((resolve) => infer(request, (e) => resolve(e ? e.code : 0)));
}

function simpleRows(rows: number, datatype = 'INT32'): object[] {
  const data = Array.from({ length: rows * 16 }, (_, i) => i % 50);
  return ['INPUT0', 'INPUT1'].map((name) => ({ name, shape: [rows, 16], datatype, data }));
}

async function rest(sluice: Sluice, model: string, body: string): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${sluice.ports.http}/v2/models/${model}/infer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
  await res.arrayBuffer();
  return res.status;
}

/** The non-zero samples of `name` as "label=value,..." -> value, over the given labels only. */
function byLabels(samples: readonly Sample[], name: string, labels: readonly string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const s of samples) {
    if (s.name !== name || s.value === 0) continue;
    const key = labels.map((l) => `${l}=${s.labels[l] ?? ''}`).join(',');
    out[key] = (out[key] ?? 0) + s.value;
  }
  return out;
}

void test('request counters, histogram counts and batch counters equal what was sent, per label; request logs carry id and model', async (t) => {
  const logLines: Record<string, unknown>[] = [];
  const config = testConfig(['--log-level', 'debug']);
  const logger = createLogger('debug', { write: (line: string) => void logLines.push(JSON.parse(line) as Record<string, unknown>) });
  const sluice = await startSluice(config, { logger });
  t.after(() => sluice.close());
  const grpc = grpcInfer(t, sluice.ports.grpc);

  // What is sent, by kind; every request runs to its answer before the scrape.
  const sent: Promise<[string, number]>[] = [];
  const expectStatus = (label: string, status: number, p: Promise<number>): void => void sent.push(p.then((got) => [label, got - status]));
  for (let i = 0; i < 9; i++) expectStatus('rest simple 1 row', 200, rest(sluice, 'simple', JSON.stringify({ id: `rest-simple-${i}`, inputs: simpleRows(1) })));
  for (let i = 0; i < 3; i++) expectStatus('rest simple 3 rows', 200, rest(sluice, 'simple', JSON.stringify({ id: `rest-simple3-${i}`, inputs: simpleRows(3) })));
  const mlp = JSON.stringify({ inputs: [{ name: 'INPUT0', shape: [1, 784], datatype: 'FP32', data: Array.from({ length: 784 }, (_, i) => (i % 7) / 7) }] });
  for (let i = 0; i < 5; i++) expectStatus('rest mlp', 200, rest(sluice, 'mlp', mlp));
  for (let i = 0; i < 4; i++) expectStatus('rest invalid datatype', 400, rest(sluice, 'simple', invalidSimpleBody()));
  for (let i = 0; i < 2; i++) expectStatus('rest malformed JSON', 400, rest(sluice, 'simple', '{"inputs": [')); 
  for (let i = 0; i < 3; i++) expectStatus('rest unknown model', 404, rest(sluice, 'no_such_model', JSON.stringify({ inputs: simpleRows(1) })));
  for (let i = 0; i < 7; i++) {
    const inputs = simpleRows(1).map((x) => ({ ...x, data: undefined, contents: { int_contents: (x as { data: number[] }).data } }));
    expectStatus('grpc simple', 0, grpc({ model_name: 'simple', id: `grpc-simple-${i}`, inputs }));
  }
  const badInputs = simpleRows(1, 'FP32').map((x) => ({ ...x, data: undefined, contents: { fp32_contents: (x as { data: number[] }).data } }));
  for (let i = 0; i < 2; i++) expectStatus('grpc invalid datatype', 3, grpc({ model_name: 'simple', inputs: badInputs }));
  for (let i = 0; i < 2; i++) expectStatus('grpc unknown model', 5, grpc({ model_name: 'no_such_model', inputs: badInputs }));
  for (const [label, diff] of await Promise.all(sent)) assert.equal(diff, 0, `${label}: unexpected status`);

  const text = await (await fetch(`http://127.0.0.1:${sluice.ports.metrics}/metrics`)).text();
  const samples = samplesOf(text);
  const expected = {
    'model=simple,protocol=http,status=success': 12,
    'model=simple,protocol=http,status=invalid': 6,
    'model=_unknown,protocol=http,status=not_found': 3,
    'model=mlp,protocol=http,status=success': 5,
    'model=simple,protocol=grpc,status=success': 7,
    'model=simple,protocol=grpc,status=invalid': 2,
    'model=_unknown,protocol=grpc,status=not_found': 2,
  };
  assert.deepEqual(byLabels(samples, 'sluice_requests_total', ['model', 'protocol', 'status']), expected);
  assert.deepEqual(byLabels(samples, 'sluice_request_duration_seconds_count', ['model', 'protocol', 'status']), expected);
  assert.deepEqual(byLabels(samples, 'sluice_request_duration_quantiles_seconds_count', ['model', 'protocol']), {
    'model=simple,protocol=http': 12, 'model=mlp,protocol=http': 5, 'model=simple,protocol=grpc': 7,
  });
  assert.doesNotMatch(text, /no_such_model/, 'a raw unknown model name never becomes a label value');

  // Rows and batches: 9 + 3x3 + 7 rows of simple, 5 of mlp; every accepted request queued once. Every
  // mismatch is collected first, so that one run names all of them.
  const problems: string[] = [];
  const check = (what: string, actual: unknown, expected: unknown): void => {
    if (JSON.stringify(actual) !== JSON.stringify(expected)) problems.push(`${what}: got ${JSON.stringify(actual)}, expected ${JSON.stringify(expected)}`);
  };
  check('sluice_inferences_total', byLabels(samples, 'sluice_inferences_total', ['model']), { 'model=simple': 25, 'model=mlp': 5 });
  check('sluice_queue_duration_seconds_count', byLabels(samples, 'sluice_queue_duration_seconds_count', ['model']), { 'model=simple': 19, 'model=mlp': 5 });
  for (const model of ['simple', 'mlp']) {
    const batches = sumOf(samples, 'sluice_batches_total', { model });
    check(`${model}: batches between 1 and the requests`, batches >= 1 && batches <= (model === 'simple' ? 19 : 5), true);
    check(`${model}: sluice_batch_size_rows_count (one per batch)`, sumOf(samples, 'sluice_batch_size_rows_count', { model }), batches);
    check(`${model}: sluice_batch_compute_duration_seconds_count (one per batch)`, sumOf(samples, 'sluice_batch_compute_duration_seconds_count', { model }), batches);
    check(`${model}: sluice_batch_size_rows_sum (rows inferred, no padding configured)`, sumOf(samples, 'sluice_batch_size_rows_sum', { model }), model === 'simple' ? 25 : 5);
    check(`${model}: sluice_model_cache_lookups_total (one per batch)`, sumOf(samples, 'sluice_model_cache_lookups_total', { model }), batches);
    check(`${model}: sluice_requests_shed_total`, sumOf(samples, 'sluice_requests_shed_total', { model }), 0);
  }
  await t.test('batch, row and queue counters match what was sent (one record per batch)', () => {
    assert.deepEqual(problems, [], 'batch and queue counters against what was sent');
  });

  await t.test('request log lines at debug carry the request id and model', () => {
    logger.flush();
    const restLines = logLines.filter((l) => typeof l['id'] === 'string' && String(l['id']).startsWith('rest-simple-'));
    assert.equal(restLines.length, 9, 'one debug line per REST request, with its id');
    for (const l of restLines) assert.equal(l['model'], 'simple');
  });
  await t.test('request log lines name the worker that ran the batch', () => {
    const restLines = logLines.filter((l) => typeof l['id'] === 'string' && String(l['id']).startsWith('rest-simple-'));
    assert.ok(restLines.length > 0);
    for (const l of restLines) assert.equal(typeof l['worker'], 'string', JSON.stringify(l));
    const grpcLines = logLines.filter((l) => typeof l['id'] === 'string' && String(l['id']).startsWith('grpc-simple-'));
    assert.equal(grpcLines.length, 7, 'one debug line per gRPC request');
    for (const l of grpcLines) if (l['status'] === 'OK') assert.equal(typeof l['worker'], 'string', JSON.stringify(l));
  });
});
