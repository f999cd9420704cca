import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { test } from 'node:test';
import { createDriver } from '../../loadtest/driver.ts';
import { parseOptions } from '../../loadtest/options.ts';
import { ResponseParser } from '../../loadtest/raw-http.ts';
import { runLoadtest } from '../../loadtest/run.ts';
import { CpuMeter, processCpuMs, processTree } from '../../loadtest/server-cpu.ts';
import { runStep } from '../../loadtest/step.ts';
import { generateVariants, type ModelMeta } from '../../loadtest/workload.ts';
import { startFakeServer } from './fake-server.ts';

const base = (url: string, extra: string[]): ReturnType<typeof parseOptions> =>
  parseOptions(['--url', url, '--model', 'simple', '--no-metrics', '--timeout', '20s', ...extra]);

const SIMPLE: ModelMeta = {
  name: 'simple', versions: ['1'], platform: 'fake',
  inputs: [{ name: 'INPUT0', datatype: 'INT32', shape: [-1, 16] }, { name: 'INPUT1', datatype: 'INT32', shape: [-1, 16] }],
  outputs: [{ name: 'OUTPUT0', datatype: 'INT32', shape: [-1, 16] }, { name: 'OUTPUT1', datatype: 'INT32', shape: [-1, 16] }],
};

/** An open-loop step straight through the driver: no metadata, so any address will do (a closed port too). */
async function openStep(url: string, rate: number, durationMs: number, extra: { timeoutMs?: number; connections?: number } = {}): Promise<Awaited<ReturnType<typeof runStep>>> {
  const variants = generateVariants(SIMPLE, { seed: 1, variants: 4, batch: 1, shapes: {} });
  const driver = createDriver({ protocol: 'json', url, grpcUrl: undefined, model: 'simple', version: '', variants, timeoutMs: extra.timeoutMs ?? 20_000, connections: extra.connections ?? 8, maxOutstanding: 1024, lateThresholdMs: 5, checkEvery: 0 });
  try {
    return await runStep(driver, { mode: 'open', rate }, { warmupMs: 0, durationMs, drainTimeoutMs: 5_000, maxRequests: 1_000_000, check: undefined, metricsUrl: undefined, model: 'simple' });
  } finally {
    await driver.close();
  }
}

test('the precise open loop sends at the requested rate, spread over its schedule', async (t) => {
  const server = await startFakeServer(t);
  const run = await runLoadtest(base(server.url, ['--rate', '400', '--duration', '1s', '--warmup', '0', '--connections', '8']));
  const step = run.report.steps[0]!;
  assert.equal(step.sent, 400);
  assert.equal(step.ok, 400);
  assert.equal(step.errorCount, 0, JSON.stringify(step.errors));
  const arrivals = server.arrivals();
  assert.equal(arrivals.length, 400);
  // Request i is due 2.5 ms after request i-1, on an absolute schedule: the typical gap between two
  // arrivals is that (a loop that sends in bursts shows gaps near 0), and the last arrives about
  // 997.5 ms after the first (the schedule neither stretched nor squeezed).
  const gaps = arrivals.slice(1).map((a, i) => a - arrivals[i]!).sort((a, b) => a - b);
  const medianGap = gaps[Math.floor(gaps.length / 2)]!;
  assert.ok(medianGap >= 2 && medianGap <= 3, `median gap ${medianGap.toFixed(3)} ms`);
  const span = arrivals.at(-1)! - arrivals[0]!;
  assert.ok(span >= 900 && span < 1500, `span ${span.toFixed(1)} ms`);
  // Answers were checked after the step from the bodies the driver kept: the first and one in 16.
  assert.equal(step.checked, 25);
  assert.equal(step.wrong, 0);
});

test('a stalled server: due requests wait for a free connection, count as late, are charged from their intended time, none dropped', async (t) => {
  const server = await startFakeServer(t, { stall: { everyMs: 1000, forMs: 300 } });
  const run = await runLoadtest(base(server.url, ['--rate', '200', '--duration', '2s', '--warmup', '0', '--connections', '4']));
  const step = run.report.steps[0]!;
  assert.ok(server.maxInflight() <= 4, `server saw ${server.maxInflight()} in flight on 4 connections`);
  assert.equal(step.sent, 400);
  assert.equal(step.ok, 400);
  assert.equal(server.received(), 400);
  // About 60 requests are due during each 300 ms stall; 4 go out, the rest wait well past 5 ms.
  assert.ok(step.late >= 50, `late ${step.late}`);
  assert.ok(step.maxSendLagMs >= 150, `max send lag ${step.maxSendLagMs} ms`);
  // Coordinated omission corrected: the tail shows the stall as the schedule saw it.
  assert.ok(step.latencyMs.p99 >= 150, `p99 ${step.latencyMs.p99} ms`);
  assert.ok(step.latencyMs.p90 >= 30, `p90 ${step.latencyMs.p90} ms`);
});

test('errors are reported by kind: HTTP status, refused connection, timeout', async (t) => {
  const failing = await startFakeServer(t, { statusEvery: { every: 4, status: 503 } });
  const r503 = await openStep(failing.url, 100, 1000);
  assert.equal(r503.errors['http 503'], 25);
  assert.equal(r503.ok, 75);
  assert.equal(r503.errorCount, 25);

  // A port nobody listens on: bound, then closed.
  const port = await new Promise<number>((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
  const refused = await openStep(`http://127.0.0.1:${port}`, 50, 400);
  assert.equal(refused.ok, 0);
  assert.deepEqual(refused.errors, { 'transport: ECONNREFUSED': 20 });

  const slow = await startFakeServer(t, { serviceMs: 400 });
  const timedOut = await openStep(slow.url, 20, 500, { timeoutMs: 100 });
  assert.equal(timedOut.ok, 0);
  assert.deepEqual(timedOut.errors, { timeout: 10 });
});

test('the response parser finds the end of a body split anywhere, chunked or by length, and keeps only sampled bodies', () => {
  const chunked = Buffer.from('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nInference-Header-Content-Length: 2\r\n\r\n3\r\n{}a\r\n0004\r\nbcde\r\n0\r\n\r\n', 'latin1');
  const p = new ResponseParser();
  p.reset(true);
  let r;
  for (let i = 0; i < chunked.length; i++) {
    r = p.push(chunked.subarray(i, i + 1));
    assert.equal(r === undefined, i < chunked.length - 1, `complete only at the last byte (at ${i})`);
  }
  assert.equal(r?.status, 200);
  assert.equal(r?.body?.toString(), '{}abcde');
  assert.equal(r?.inferHeaderLength, 2);
  p.reset(false);
  const r2 = p.push(Buffer.from('HTTP/1.1 503 Service Unavailable\r\ncontent-length: 5\r\nConnection: close\r\n\r\nerror', 'latin1'));
  assert.equal(r2?.status, 503);
  assert.equal(r2?.body, undefined);
  assert.equal(r2?.close, true);
  p.reset(false);
  assert.throws(() => p.push(Buffer.from('SSH-2.0-OpenSSH\r\n\r\n')), /not an HTTP\/1.x status line/);
});

test('the CPU reader reads a real process\'s /proc numbers, child processes included', async (t) => {
  // This process: /proc's utime + stime agree with Node's own getrusage within a couple of clock ticks.
  const until = performance.now() + 200;
  while (performance.now() < until) { /* burn CPU time to read */ }
  const own = process.cpuUsage();
  const procMs = processCpuMs(process.pid);
  assert.ok(procMs !== undefined);
  assert.ok(Math.abs(procMs - (own.user + own.system) / 1000) <= 40, `/proc ${procMs} ms vs getrusage ${(own.user + own.system) / 1000} ms`);

  // A grandchild that burns 300 ms of CPU (its own count, whatever the machine's load) is found and read.
  const script = `
    const { spawn } = require('node:child_process');
    const g = spawn(process.execPath, ['-e', "process.stdin.once('data', () => { const t0 = process.cpuUsage(); while (process.cpuUsage(t0).user + process.cpuUsage(t0).system < 300000); console.log('done'); process.exit(0); }); console.log('ready')"], { stdio: ['pipe', 'pipe', 'inherit'] });
    g.stdout.on('data', (d) => process.stdout.write(String(d).replace('ready', 'ready ' + g.pid)));
    process.stdin.on('data', (d) => g.stdin.write(d));
    g.on('exit', () => process.exit(0));`;
  const child = spawn(process.execPath, ['-e', script], { stdio: ['pipe', 'pipe', 'inherit'] });
  t.after(() => child.kill());
  let out = '';
  const next = (want: RegExp): Promise<RegExpExecArray> => new Promise((resolve) => {
    const on = (): void => {
      const m = want.exec(out);
      if (m) {
        child.stdout.off('data', onData);
        resolve(m);
      }
    };
    const onData = (d: Buffer): void => {
      out += d.toString();
      on();
    };
    child.stdout.on('data', onData);
    on();
  });
  const grandchild = Number((await next(/ready (\d+)/))[1]);
  assert.ok(processTree([child.pid!]).includes(grandchild), 'the grandchild is in the tree');
  const meter = new CpuMeter([child.pid!]);
  assert.ok(meter.reading);
  child.stdin.write('go\n');
  await next(/done/);
  const cpu = meter.result(100);
  assert.ok(cpu.processes >= 2, `read ${cpu.processes} processes`);
  assert.ok(cpu.cpuMs >= 280 && cpu.cpuMs < 2000, `read ${cpu.cpuMs} ms of CPU`);
  assert.equal(cpu.usPerRequest, (cpu.cpuMs * 1000) / 100);
});

test('--server-pid puts the server\'s CPU per answered request next to the step', async (t) => {
  // The fake server runs in this very process.
  const server = await startFakeServer(t);
  const run = await runLoadtest(base(server.url, ['--rate', '100', '--duration', '1s', '--warmup', '0', '--server-pid', String(process.pid)]));
  const cpu = run.report.steps[0]!.serverCpu;
  assert.ok(cpu, 'a CPU reading');
  assert.ok(cpu.processes >= 1);
  assert.ok(cpu.cpuMs >= 0);
  assert.ok(cpu.usPerRequest !== undefined && Math.abs(cpu.usPerRequest - (cpu.cpuMs * 1000) / 100) < 1e-6, `${cpu.usPerRequest} us for ${cpu.cpuMs} ms over 100 answers`);
  const without = await runLoadtest(base(server.url, ['--rate', '50', '--duration', '200ms', '--warmup', '0']));
  assert.equal(without.report.steps[0]!.serverCpu, undefined);
});
