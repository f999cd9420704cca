import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { loadConfig } from '../../src/config/load.ts';
import type { TraceConfig } from '../../src/config/schema.ts';
import { createLogger } from '../../src/telemetry/logger.ts';
import { TraceFileSink, type FinishedTrace } from '../../src/telemetry/trace-file.ts';
import { Tracer } from '../../src/telemetry/trace.ts';

const logger = createLogger('silent');

function traceConfig(flags: readonly string[]): TraceConfig {
  return loadConfig({ argv: flags, env: {} }).trace;
}

function tempDir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-trace-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Which of n requests the tracer samples (1-based). */
function sampled(tracer: Tracer, model: string, n: number): number[] {
  const out: number[] = [];
  for (let i = 1; i <= n; i++) {
    const trace = tracer.start(model, 'http');
    if (trace) {
      out.push(i);
      trace.end();
    }
  }
  return out;
}

void test('tracing is off by default: nothing is sampled', () => {
  const tracer = new Tracer({ config: traceConfig([]), logger });
  assert.deepEqual(sampled(tracer, 'simple', 3000), []);
  assert.equal(tracer.stats().sampled, 0);
});

void test('trace_rate samples every rate-th request, trace_count stops after that many and reports what is left', () => {
  const tracer = new Tracer({ config: traceConfig(['--trace-level', 'TIMESTAMPS', '--trace-rate', '3', '--trace-count', '2']), logger });
  assert.equal(tracer.settings().count, 2);
  assert.deepEqual(sampled(tracer, 'simple', 5), [3]);
  assert.equal(tracer.settings().count, 1);
  assert.deepEqual(sampled(tracer, 'simple', 20), [1], 'the 6th request overall, then the count is spent');
  assert.equal(tracer.settings().count, 0);
  // As in Triton, requests arriving while the count is spent are not counted towards the rate either:
  // a new count starts sampling again with the rate's counter where it stopped (6 requests seen).
  tracer.update('', { count: -1 });
  assert.deepEqual(sampled(tracer, 'simple', 6), [3, 6]);
  assert.equal(tracer.settings().count, -1, 'unlimited stays unlimited');
});

void test('a model with overrides samples on its own counter; cleared overrides share the global one again', () => {
  const tracer = new Tracer({ config: traceConfig(['--trace-config', 'level=TIMESTAMPS', '--trace-config', 'rate=1000']), logger });
  tracer.update('mlp', { rate: 2, count: 3 });
  assert.deepEqual(sampled(tracer, 'mlp', 10), [2, 4, 6]);
  assert.equal(tracer.settings('mlp').count, 0);
  assert.equal(tracer.settings().count, -1);
  assert.deepEqual(sampled(tracer, 'simple', 10), [], 'simple follows the global rate of 1000');
  tracer.update('mlp', { level: ['OFF'], rate: null, count: null });
  assert.equal(tracer.settings('mlp').level[0], 'OFF');
  assert.deepEqual(sampled(tracer, 'mlp', 5), []);
  tracer.update('mlp', { level: null });
  assert.deepEqual(tracer.settings('mlp'), tracer.settings(), 'no overrides left: the global settings');
});

void test('a trace records its stages in path order with REQUEST_END last, and ignores marks after end()', async (t) => {
  const file = join(tempDir(t), 'trace.json');
  const tracer = new Tracer({ config: traceConfig(['--trace-level', 'TIMESTAMPS', '--trace-rate', '1', '--trace-file', file]), logger });
  const trace = tracer.start('simple', 'grpc', 100)!;
  trace.mark('ENCODE_END', 900);
  trace.mark('DECODE_END', 200);
  trace.markBatch({ workerSendNs: 300, workerRecvNs: 400, computeInputEndNs: 500, computeOutputStartNs: 600, workerReplyNs: 700 });
  trace.identify('req-7', '1');
  trace.end(1000);
  trace.mark('COMPUTE_END', 5000);
  trace.end(6000);
  await tracer.close();
  const written = JSON.parse(readFileSync(file, 'utf8')) as { id: number; model_name: string; model_version: number; request_id: string; timestamps: { name: string; ns: number }[] }[];
  assert.equal(written.length, 1);
  assert.deepEqual({ ...written[0], timestamps: undefined }, { id: trace.id, model_name: 'simple', model_version: 1, request_id: 'req-7', timestamps: undefined });
  assert.deepEqual(written[0]!.timestamps, [
    { name: 'REQUEST_START', ns: 100 }, { name: 'DECODE_END', ns: 200 }, { name: 'WORKER_SEND', ns: 300 }, { name: 'WORKER_RECV', ns: 400 },
    { name: 'COMPUTE_INPUT_END', ns: 500 }, { name: 'COMPUTE_OUTPUT_START', ns: 600 }, { name: 'WORKER_REPLY', ns: 700 },
    { name: 'ENCODE_END', ns: 900 }, { name: 'REQUEST_END', ns: 1000 },
  ]);
});

function finished(id: number): FinishedTrace {
  return { id, model: 'simple', version: '1', requestId: '', protocol: 'http', timestamps: [{ name: 'REQUEST_START', ns: id }, { name: 'REQUEST_END', ns: id + 1 }] };
}

void test('log_frequency N writes trace_file.0, .1, ... every N traces, the rest at close', async (t) => {
  const file = join(tempDir(t), 'trace.json');
  const sink = new TraceFileSink({ file, logger });
  const settings = { file, level: ['TIMESTAMPS' as const], rate: 1, count: -1, logFrequency: 2, mode: 'triton' as const };
  for (let id = 1; id <= 5; id++) sink.add(finished(id), settings);
  await sink.close();
  const ids = (path: string): number[] => (JSON.parse(readFileSync(path, 'utf8')) as { id: number }[]).map((x) => x.id);
  assert.deepEqual(ids(`${file}.0`), [1, 2]);
  assert.deepEqual(ids(`${file}.1`), [3, 4]);
  assert.deepEqual(ids(`${file}.2`), [5]);
  assert.equal(existsSync(file), false, 'with log_frequency set, no un-indexed file is written');
  assert.deepEqual(sink.stats(), { written: 5, dropped: 0, failures: 0 });
});

void test('the file buffer is bounded: the oldest traces are dropped and counted', async (t) => {
  const file = join(tempDir(t), 'trace.json');
  const sink = new TraceFileSink({ file, logger, capacity: 3 });
  const settings = { file, level: ['TIMESTAMPS' as const], rate: 1, count: -1, logFrequency: 0, mode: 'triton' as const };
  for (let id = 1; id <= 5; id++) sink.add(finished(id), settings);
  await sink.close();
  assert.deepEqual((JSON.parse(readFileSync(file, 'utf8')) as { id: number }[]).map((x) => x.id), [3, 4, 5]);
  assert.deepEqual(sink.stats(), { written: 3, dropped: 2, failures: 0 });
});

void test('a spent trace_count writes what is held at once, whatever log_frequency says', async (t) => {
  const file = join(tempDir(t), 'trace.json');
  const tracer = new Tracer({ config: traceConfig(['--trace-level', 'TIMESTAMPS', '--trace-rate', '1', '--trace-count', '2', '--trace-file', file]), logger });
  assert.deepEqual(sampled(tracer, 'simple', 4), [1, 2]);
  // The write is queued when the last counted trace ends; close() waits for it and writes nothing more.
  await tracer.close();
  assert.deepEqual((JSON.parse(readFileSync(`${file}.0`, 'utf8')) as { id: number }[]).map((x) => x.id), [1, 2]);
  assert.equal(existsSync(file), false);
});

void test('trace flags and --trace-config validate at load with messages naming the setting', () => {
  const c = traceConfig(['--trace-config', 'triton,file=/tmp/t.json', '--trace-config', 'triton,log-frequency=50', '--trace-config', 'rate=100', '--trace-config', 'level=timestamps', '--trace-config', 'count=10']);
  assert.deepEqual({ ...c, settings: [] }, { file: '/tmp/t.json', level: ['TIMESTAMPS'], rate: 100, count: 10, logFrequency: 50, mode: 'triton', otlpUrl: '', settings: [] });
  const otel = traceConfig(['--trace-config', 'mode=opentelemetry', '--trace-config', 'opentelemetry,url=http://127.0.0.1:4318', '--trace-level', 'TIMESTAMPS']);
  assert.equal(otel.mode, 'opentelemetry');
  assert.equal(otel.otlpUrl, 'http://127.0.0.1:4318');
  const bad: [string[], RegExp][] = [
    [['--trace-level', 'LOUD'], /--trace-level: 'LOUD' is not one of OFF, TIMESTAMPS, TENSORS/],
    [['--trace-level', 'OFF,TIMESTAMPS'], /--trace-level: OFF cannot be combined/],
    [['--trace-rate', '0'], /--trace-rate: 0 is below the minimum 1/],
    [['--trace-count=-2'], /--trace-count: -2 is below the minimum -1/],
    [['--trace-config', 'rate=fast'], /--trace-config rate: 'fast' is not an integer/],
    [['--trace-config', 'colour=red'], /--trace-config: unknown setting 'colour'/],
    [['--trace-config', 'opentelemetry,file=/tmp/x'], /'file' is a setting of mode triton/],
    [['--trace-mode', 'opentelemetry'], /trace mode opentelemetry needs --trace-otlp-url/],
    [['--trace-otlp-url', 'http://127.0.0.1:4318'], /add --trace-mode opentelemetry/],
    [['--trace-mode', 'opentelemetry', '--trace-otlp-url', 'ftp://x'], /--trace-otlp-url: 'ftp:\/\/x' must use http: or https:/],
  ];
  for (const [flags, message] of bad) assert.throws(() => traceConfig(flags), message, flags.join(' '));
});
