import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { TRACE_STAGES } from '../../src/core/trace.ts';
import { createLogger } from '../../src/telemetry/logger.ts';
import { OtlpSink } from '../../src/telemetry/trace-otlp.ts';
import { connectGrpc, range16, simpleRequest as grpcSimpleRequest } from '../grpc/client.ts';
import { startTestSluice } from '../helpers/sluice.ts';
import { h1Client, simpleRequest } from '../http/client.ts';

interface FileTrace {
  id: number;
  model_name: string;
  model_version: number;
  request_id?: string;
  timestamps: { name: string; ns: number }[];
}

const FRONT_DOOR_STAGES = ['REQUEST_START', 'DECODE_END', 'ENCODE_END', 'REQUEST_END'];

function tempDir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-trace-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Every stamp in path order, and the clock never runs backwards along the path. */
function assertOrdered(trace: FileTrace): void {
  const names = trace.timestamps.map((s) => s.name);
  const order = names.map((n) => TRACE_STAGES.indexOf(n as (typeof TRACE_STAGES)[number]));
  assert.ok(order.every((i) => i >= 0), `unknown stage in ${names.join(', ')}`);
  assert.deepEqual(order, [...order].sort((a, b) => a - b), `stages out of path order: ${names.join(', ')}`);
  for (let i = 1; i < trace.timestamps.length; i++) {
    assert.ok(trace.timestamps[i]!.ns >= trace.timestamps[i - 1]!.ns, `${names[i]} is earlier than ${names[i - 1]}`);
  }
}

void test('trace mode triton: a gateway with trace_level TIMESTAMPS writes Triton-shaped traces of REST, gRPC and gRPC stream requests at close', { timeout: 60_000 }, async (t) => {
  const file = join(tempDir(t), 'trace.json');
  const sluice = await startTestSluice(t, ['--trace-config', 'level=TIMESTAMPS', '--trace-rate', '1', '--trace-file', file]);
  const http = h1Client(`http://127.0.0.1:${sluice.ports.http}`);
  t.after(() => http.close().catch(() => undefined));
  const ok = await http.call('POST', '/v2/models/simple/infer', { body: JSON.stringify(simpleRequest({ id: 'rest-1' })) });
  assert.equal(ok.status, 200, ok.text());
  const bad = await http.call('POST', '/v2/models/simple/infer', { body: '{"inputs": [' });
  assert.equal(bad.status, 400);
  const grpc = connectGrpc(t, sluice.ports.grpc);
  await grpc.call('ModelInfer', grpcSimpleRequest(range16(0), range16(1), { id: 'grpc-1' }));
  // ModelStreamInfer takes the streaming path (answers as they come): traced alike.
  const stream = grpc.stream();
  const streamed = new Promise<unknown>((resolve, reject) => {
    stream.once('data', resolve);
    stream.once('error', reject);
  });
  stream.write(grpcSimpleRequest(range16(2), range16(3), { id: 'stream-1' }));
  assert.equal(((await streamed) as { error_message: string }).error_message, '');
  stream.end();
  grpc.close();
  await http.close();
  await sluice.close();

  const traces = JSON.parse(readFileSync(file, 'utf8')) as FileTrace[];
  assert.equal(traces.length, 4, JSON.stringify(traces));
  assert.deepEqual(traces.map((x) => x.id).sort(), [1, 2, 3, 4]);
  for (const id of ['rest-1', 'grpc-1', 'stream-1']) {
    const trace = traces.find((x) => x.request_id === id);
    assert.ok(trace, `no trace of ${id}`);
    assert.equal(trace.model_name, 'simple');
    assert.equal(trace.model_version, 1);
    const names = trace.timestamps.map((s) => s.name);
    for (const stage of FRONT_DOOR_STAGES) assert.ok(names.includes(stage), `${id}: ${stage} missing from ${names.join(', ')}`);
    assertOrdered(trace);
  }
  // The malformed request is traced too, and ended by its error answer.
  const failed = traces.find((x) => x.request_id === undefined);
  assert.ok(failed);
  assert.deepEqual(failed.timestamps.map((s) => s.name), ['REQUEST_START', 'REQUEST_END']);
  assert.equal(failed.model_version, -1);
});

/** A real OTLP/HTTP receiver: collects the JSON bodies POSTed to /v1/traces. */
async function collector(t: TestContext, status = 200): Promise<{ url: string; bodies: { path: string; type: string; json: any }[] }> { // eslint-disable-line @typescript-eslint/no-explicit-any
  const bodies: { path: string; type: string; json: unknown }[] = [];
  const server = createServer((req: IncomingMessage, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      bodies.push({ path: req.url ?? '', type: req.headers['content-type'] ?? '', json: JSON.parse(Buffer.concat(chunks).toString('utf8')) });
      res.writeHead(status, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, bodies };
}

void test('trace mode opentelemetry: a gateway exports one OTLP span per request with a child span per stage', { timeout: 60_000 }, async (t) => {
  const otlp = await collector(t);
  const sluice = await startTestSluice(t, ['--trace-mode', 'opentelemetry', '--trace-otlp-url', otlp.url, '--trace-level', 'TIMESTAMPS', '--trace-rate', '1']);
  const http = h1Client(`http://127.0.0.1:${sluice.ports.http}`);
  t.after(() => http.close().catch(() => undefined));
  const before = BigInt(Date.now() - 1000) * 1_000_000n;
  const ok = await http.call('POST', '/v2/models/simple/infer', { body: JSON.stringify(simpleRequest({ id: 'otel-1' })) });
  assert.equal(ok.status, 200);
  await http.close();
  await sluice.close();
  const after = BigInt(Date.now() + 1000) * 1_000_000n;

  assert.equal(otlp.bodies.length, 1, 'close() exports what is held');
  const { path, type, json } = otlp.bodies[0]!;
  assert.equal(path, '/v1/traces');
  assert.equal(type, 'application/json');
  const rs = json.resourceSpans[0];
  assert.deepEqual(rs.resource.attributes.find((a: { key: string }) => a.key === 'service.name').value, { stringValue: 'sluice' });
  const spans = rs.scopeSpans[0].spans as { traceId: string; spanId: string; parentSpanId?: string; name: string; kind: number; startTimeUnixNano: string; endTimeUnixNano: string; attributes: { key: string; value: { stringValue?: string } }[]; events?: { name: string }[] }[];
  const roots = spans.filter((s) => s.parentSpanId === undefined);
  assert.equal(roots.length, 1);
  const root = roots[0]!;
  assert.match(root.traceId, /^[0-9a-f]{32}$/);
  assert.match(root.spanId, /^[0-9a-f]{16}$/);
  assert.equal(root.kind, 2);
  assert.deepEqual(root.attributes.find((a) => a.key === 'triton.request_id')?.value, { stringValue: 'otel-1' });
  assert.deepEqual(root.attributes.find((a) => a.key === 'triton.model_name')?.value, { stringValue: 'simple' });
  const start = BigInt(root.startTimeUnixNano);
  const end = BigInt(root.endTimeUnixNano);
  assert.ok(start >= before && end <= after && start <= end, `root span ${start}..${end} is not within the test's wall-clock window`);
  assert.deepEqual(root.events?.map((e) => e.name).filter((n) => FRONT_DOOR_STAGES.includes(n)), FRONT_DOOR_STAGES);
  const children = spans.filter((s) => s.parentSpanId !== undefined);
  assert.ok(children.length >= FRONT_DOOR_STAGES.length - 1, `children: ${children.map((c) => c.name).join(', ')}`);
  for (const c of children) {
    assert.equal(c.traceId, root.traceId);
    assert.equal(c.parentSpanId, root.spanId);
    assert.match(c.spanId, /^[0-9a-f]{16}$/);
    assert.notEqual(c.spanId, root.spanId);
    assert.ok(BigInt(c.startTimeUnixNano) >= start && BigInt(c.endTimeUnixNano) <= end && BigInt(c.startTimeUnixNano) <= BigInt(c.endTimeUnixNano), c.name);
  }
  assert.equal(children[0]!.name, 'decode');
  assert.equal(children[children.length - 1]!.name, 'send');
  assert.equal(new Set(spans.map((s) => s.spanId)).size, spans.length, 'span ids are unique');
});

void test('the OTLP sink batches, never throws on add, and counts failed exports', async (t) => {
  const logger = createLogger('silent');
  const otlp = await collector(t);
  const trace = (id: number) => ({ id, model: 'm', version: '1', requestId: '', protocol: 'grpc' as const, timestamps: [{ name: 'REQUEST_START' as const, ns: 1000 }, { name: 'REQUEST_END' as const, ns: 2000 }] });
  const sink = new OtlpSink({ url: `${otlp.url}/`, logger, service: { name: 'sluice', version: '0' }, batchSize: 2, intervalMs: 60_000 });
  sink.add(trace(1));
  assert.equal(otlp.bodies.length, 0, 'one trace waits for its batch');
  sink.add(trace(2));
  sink.add(trace(3));
  await sink.close();
  assert.deepEqual(otlp.bodies.map((b) => b.json.resourceSpans[0].scopeSpans[0].spans.length), [4, 2], 'two traces of two spans, then the rest at close');
  assert.deepEqual(sink.stats(), { written: 3, dropped: 0, failures: 0 });

  const failing = await collector(t, 503);
  const down = new OtlpSink({ url: failing.url, logger, service: { name: 'sluice', version: '0' }, batchSize: 1 });
  down.add(trace(4));
  await down.close();
  assert.deepEqual(down.stats(), { written: 0, dropped: 1, failures: 1 });
});
