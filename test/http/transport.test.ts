import assert from 'node:assert/strict';
import http2 from 'node:http2';
import net from 'node:net';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { InferenceService, InferRequest } from '../../src/core/inference.ts';
import { startHttpServer } from '../../src/frontdoor/http/server.ts';
import { createLogger } from '../../src/telemetry/logger.ts';
import { tempRepository } from '../worker/helpers.ts';
import { startTestSluice, testConfig } from '../helpers/sluice.ts';
import { binaryBody, h1Client, h2Client, simpleRequest, type HttpClient, type HttpResult } from './client.ts';

/** Writes raw bytes (in pieces, with pauses) and collects everything the server sends until it closes or `ms` pass. */
async function rawExchange(port: number, pieces: readonly (string | Buffer)[], ms: number): Promise<{ data: Buffer; closed: boolean }> {
  const socket = net.connect(port, '127.0.0.1');
  const chunks: Buffer[] = [];
  let closed = false;
  socket.on('data', (c: Buffer) => chunks.push(c));
  socket.on('error', () => undefined);
  socket.on('close', () => (closed = true));
  await new Promise((resolve) => socket.once('connect', resolve));
  for (const p of pieces) {
    socket.write(p);
    await sleep(30);
  }
  const end = Date.now() + ms;
  while (!closed && Date.now() < end) await sleep(10);
  socket.destroy();
  return { data: Buffer.concat(chunks), closed };
}

/** A 32-row cnn request sent binary: heavy enough to keep the single test worker busy for a while. */
function cnnBody(rows = 32): { body: Buffer; headers: Record<string, string> } {
  const data = Buffer.alloc(rows * 3 * 64 * 64 * 4);
  return binaryBody({ inputs: [{ name: 'INPUT0', datatype: 'FP32', shape: [rows, 3, 64, 64], parameters: { binary_data_size: data.byteLength } }], parameters: { binary_data_output: true } }, [data]);
}

async function counter(registry: { getSingleMetric(name: string): unknown }, labels: Record<string, string>): Promise<number> {
  const metric = registry.getSingleMetric('sluice_requests_total') as { get(): Promise<{ values: { labels: Record<string, string>; value: number }[] }> };
  const { values } = await metric.get();
  return values.filter((v) => Object.entries(labels).every(([k, x]) => v.labels[k] === x)).reduce((s, v) => s + v.value, 0);
}

test('transport: one port, keep-alive, timeouts, cancellation, metrics, graceful close', async (t) => {
  // This test needs cnn batches still running when the server closes, queued deep enough that the
  // expected-wait admission would shed some: it is turned off for cnn here. And it needs 1.5 MB uploads
  // to arrive while a batch runs, so the worker runs off the event loop (a thread): inline, each run
  // holds the loop and the uploads come in between runs, one at a time, never queueing.
  const repo = tempRepository(t, ['simple', 'cnn'], { 'cnn/config.json': JSON.stringify({ name: 'cnn', maxBatchSize: 32, dynamicBatching: { defaultQueuePolicy: { maxExpectedWaitUs: 0 } } }) });
  const sluice = await startTestSluice(t, ['--log-level', 'fatal', '--model-repository', repo, '--worker-isolation', 'thread']);
  const port = sluice.ports.http;
  const origin = `http://127.0.0.1:${port}`;
  const cnnInput = (await (h1Client(origin)).call('GET', '/v2/models/cnn')).json().inputs[0].name as string;
  const cnn = (): { body: Buffer; headers: Record<string, string> } => {
    const b = cnnBody();
    return { body: Buffer.from(b.body.toString('latin1').replace('"INPUT0"', JSON.stringify(cnnInput)), 'latin1'), headers: b.headers };
  };

  await t.test('an HTTP/2 preface split over several packets is still recognised', async () => {
    const preface = 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n';
    const settings = Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0]);
    const { data } = await rawExchange(port, [preface.slice(0, 3), preface.slice(3, 12), preface.slice(12), settings], 300);
    // The server's first frame is its SETTINGS frame: type 4 on stream 0.
    assert.ok(data.byteLength >= 9, 'the server answered');
    assert.equal(data[3], 4);
    assert.equal(data.readUInt32BE(5) & 0x7fffffff, 0);
  });

  await t.test('an HTTP/1 request whose first byte looks like the preface is served as HTTP/1', async () => {
    const { data } = await rawExchange(port, ['P', 'UT /v2/health/live HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n'], 300);
    assert.match(data.toString(), /^HTTP\/1\.1 404 /);
  });

  await t.test('HTTP/1.1 keep-alive: pipelined requests on one connection', async () => {
    const req = 'GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n';
    const { data, closed } = await rawExchange(port, [req + req], 300);
    assert.equal(data.toString().match(/HTTP\/1\.1 200 OK/g)?.length, 2);
    assert.match(data.toString(), /Keep-Alive: timeout=75/);
    assert.equal(closed, false);
  });

  await t.test('metrics: exactly one observation per infer request, unknown models under one label', async () => {
    const client = h2Client(origin);
    t.after(() => client.close());
    const reg = sluice.metrics.registry;
    const before = { ok: await counter(reg, { model: 'simple', status: 'success', protocol: 'http' }), bad: await counter(reg, { model: 'simple', status: 'invalid' }), unknown: await counter(reg, { model: '_unknown', status: 'not_found' }) };
    for (let i = 0; i < 3; i++) assert.equal((await client.call('POST', '/v2/models/simple/infer', { body: JSON.stringify(simpleRequest()) })).status, 200);
    for (let i = 0; i < 2; i++) assert.equal((await client.call('POST', '/v2/models/simple/infer', { body: '{"inputs":' })).status, 400);
    assert.equal((await client.call('POST', '/v2/models/zzz/infer', { body: JSON.stringify(simpleRequest()) })).status, 404);
    assert.equal((await client.call('GET', '/v2/models/simple')).status, 200);
    assert.equal(await counter(reg, { model: 'simple', status: 'success', protocol: 'http' }) - before.ok, 3);
    assert.equal(await counter(reg, { model: 'simple', status: 'invalid' }) - before.bad, 2);
    assert.equal(await counter(reg, { model: '_unknown', status: 'not_found' }) - before.unknown, 1);
  });

  await t.test('a client that resets its stream cancels the request: counted once as cancelled, dropped from the queue', async () => {
    const session = http2.connect(origin);
    t.after(() => session.close());
    const before = await counter(sluice.metrics.registry, { model: 'cnn', status: 'cancelled' });
    const shed = sluice.metrics.requestsShed;
    const shedBefore = (await shed.get()).values.find((v) => v.labels.model === 'cnn' && v.labels.reason === 'cancelled')?.value ?? 0;
    // The work queued ahead goes over HTTP/1.1, one connection each: twelve 1.5 MB uploads on one h2
    // session pass a Node h2 client's own 10 MB session memory, and Node 24's client then resets some of
    // its streams with ENHANCE_YOUR_CALM (it is the client's limit, not the server's).
    const h1 = h1Client(origin);
    t.after(() => h1.close());
    const send = async (): Promise<number> => {
      const { body, headers } = cnn();
      return (await h1.call('POST', '/v2/models/cnn/infer', { headers, body })).status;
    };
    const depth = (): number => [...(sluice.metrics.sources.queueDepth?.() ?? [])].find(([m]) => m === 'cnn')?.[1] ?? 0;
    const untilDepth = async (n: number): Promise<void> => {
      for (let i = 0; i < 200 && depth() < n; i++) await sleep(5);
      assert.ok(depth() >= n, `cnn queue depth reached ${n}`);
    };
    // Enough 32-row work queued ahead (a dozen full batches) that the doomed request is still waiting
    // when it is cancelled, however fast the worker runs.
    const busy = Array.from({ length: 12 }, () => send());
    await untilDepth(1);
    // A one-row request uploads at once and waits behind the 32-row ones (they cannot share a batch).
    const small = cnnBody(1);
    const doomed = session.request({ ':method': 'POST', ':path': '/v2/models/cnn/infer', ...small.headers });
    doomed.on('error', () => undefined);
    doomed.end(Buffer.from(small.body.toString('latin1').replace('"INPUT0"', JSON.stringify(cnnInput)), 'latin1'));
    // Cancelled once it is queued, not after a guess at how long that takes: the gateway holds its
    // input bytes from the moment it is queued (in the same tick) until it is answered, and it is the
    // only request whose bytes are not a whole number of 32-row requests.
    const ROW_BYTES = 3 * 64 * 64 * 4;
    const held = (): number => sluice.metrics.sources.requestMemory?.().heldBytes ?? 0;
    for (let i = 0; i < 400 && held() % (32 * ROW_BYTES) !== ROW_BYTES; i++) await sleep(5);
    assert.equal(held() % (32 * ROW_BYTES), ROW_BYTES, 'the one-row request is queued behind the 32-row ones');
    doomed.close(http2.constants.NGHTTP2_CANCEL);
    assert.deepEqual(await Promise.all(busy), busy.map(() => 200));
    for (let i = 0; i < 50 && await counter(sluice.metrics.registry, { model: 'cnn', status: 'cancelled' }) === before; i++) await sleep(20);
    assert.equal(await counter(sluice.metrics.registry, { model: 'cnn', status: 'cancelled' }) - before, 1);
    // The abort reached the scheduler: the queued request was dropped rather than run.
    const shedAfter = (await shed.get()).values.find((v) => v.labels.model === 'cnn' && v.labels.reason === 'cancelled')?.value ?? 0;
    assert.equal(shedAfter - shedBefore, 1);
  });

  await t.test('a second server on the same service: timeouts for silent and stalled clients, graceful close', async () => {
    const base = testConfig(['--log-level', 'fatal']);
    const config = { ...base, http: { ...base.http, port: 0, requestTimeoutMs: 600, keepAliveTimeoutMs: 500 } };
    // The real service, counting the infer calls it gets (so the test knows when requests are accepted).
    let accepted = 0;
    const service = new Proxy(sluice.service, {
      get(target, prop: keyof InferenceService) {
        if (prop === 'infer') return (r: InferRequest) => (accepted++, target.infer(r));
        const v: unknown = Reflect.get(target, prop);
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    });
    const server = await startHttpServer({ config, service, metrics: sluice.metrics, logger: createLogger('fatal') });
    let closed = false;
    t.after(() => (closed ? undefined : server.close()));

    const silent = await rawExchange(server.port, [], 3000);
    assert.equal(silent.closed, true, 'a connection that never sends a byte is closed');
    const stalled = await rawExchange(server.port, ['POST /v2/models/simple/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"in'], 3000);
    assert.equal(stalled.closed, true, 'an HTTP/1 request whose body stalls is closed');
    assert.match(stalled.data.toString(), /^(HTTP\/1\.1 408|$)/);

    const h2 = http2.connect(`http://127.0.0.1:${server.port}`);
    h2.on('error', () => undefined);
    const reset = await new Promise<number>((resolve) => {
      const s = h2.request({ ':method': 'POST', ':path': '/v2/models/simple/infer' });
      s.on('close', () => resolve(s.rstCode));
      s.on('error', () => undefined);
      s.write('{"inputs":');
    });
    assert.equal(reset, http2.constants.NGHTTP2_CANCEL, 'a stalled HTTP/2 stream is reset');
    h2.close();

    const clients: HttpClient[] = [h1Client(`http://127.0.0.1:${server.port}`), h2Client(`http://127.0.0.1:${server.port}`)];
    const inflight: Promise<HttpResult & { at: number }>[] = [];
    for (let i = 0; i < 6; i++) {
      const c = clients[i % 2]!;
      inflight.push(c.call('POST', '/v2/models/cnn/infer', cnn()).then((r) => ({ ...r, at: Date.now() }), (e: Error) => { throw new Error(`${c.name} request ${i}: ${e.message} at ${Date.now()}`); }));
    }
    for (let i = 0; i < 500 && accepted < 6; i++) await sleep(10);
    assert.equal(accepted, 6, 'all six requests reached the service');
    const closeStart = Date.now();
    const closing = server.close();
    closed = true;
    const results = await Promise.all(inflight);
    await closing;
    for (const r of results) assert.equal(r.status, 200, r.text());
    assert.ok(results.some((r) => r.at > closeStart), 'some requests were still in flight when close began');
    await assert.rejects(h1Client(`http://127.0.0.1:${server.port}`).call('GET', '/v2/health/live'), /ECONNREFUSED|other side closed|SocketError/);
    await Promise.all(clients.map((c) => c.close()));
  });
});
