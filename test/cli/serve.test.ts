import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';
import { SAMPLE_REPOSITORY } from '../helpers/sluice.ts';

const BIN = fileURLToPath(new URL('../../bin/sluice.mjs', import.meta.url));

function run(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('every subcommand documents itself with --help', () => {
  const top = run(['--help']);
  assert.equal(top.status, 0);
  for (const cmd of ['serve', 'worker', 'loadtest']) assert.match(top.stdout, new RegExp(`sluice ${cmd}`));
  const serve = run(['serve', '--help']);
  assert.equal(serve.status, 0);
  for (const flag of ['--model-repository', '--http-port', '--grpc-port', '--metrics-port', '--model-control-mode', '--load-model', '--workers', '--worker ', 'SLUICE_HTTP_PORT']) assert.ok(serve.stdout.includes(flag), `serve --help lacks ${flag}`);
  assert.match(serve.stdout, /--log-verbose/);
  const worker = run(['worker', '--help']);
  assert.equal(worker.status, 0);
  assert.match(worker.stdout, /--listen/);
  const loadtest = run(['loadtest', '--help']);
  assert.equal(loadtest.status, 0);
  assert.match(loadtest.stdout, /--rate/);
});

test('invalid configuration stops start-up with the setting named', () => {
  const r = run(['serve', '--http-port', 'eighty']);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /--http-port: 'eighty' is not an integer/);
  const u = run(['frobnicate']);
  assert.equal(u.status, 2);
  assert.match(u.stderr, /unknown command 'frobnicate'/);
});

interface Started {
  child: ChildProcess;
  http: number;
}

async function startServe(repository: string, args: string[]): Promise<Started> {
  const child = spawn(process.execPath, [BIN, 'serve', '--host', '127.0.0.1', '--http-port', '0', '--grpc-port', '0', '--metrics-port', '0', '--model-repository', repository, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout });
  const deadline = setTimeout(() => child.kill('SIGKILL'), 60_000);
  for await (const line of lines) {
    let entry: { msg?: string; http?: number };
    try {
      entry = JSON.parse(line) as typeof entry;
    } catch {
      continue;
    }
    if (entry.msg === 'sluice is serving' && entry.http) {
      clearTimeout(deadline);
      lines.on('line', () => undefined); // keep draining stdout so the child never blocks on a full pipe
      return { child, http: entry.http };
    }
  }
  throw new Error('sluice serve exited before it was serving');
}

const simpleBody = (k: number): string =>
  JSON.stringify({
    id: `drain-${k}`,
    inputs: [
      { name: 'INPUT0', shape: [1, 16], datatype: 'INT32', data: Array.from({ length: 16 }, (_, i) => i + k) },
      { name: 'INPUT1', shape: [1, 16], datatype: 'INT32', data: Array.from({ length: 16 }, () => 1) },
    ],
  });

test('SIGTERM drains: requests already accepted are answered, then the process exits 0', async (t) => {
  // A long queue delay and a preferred size never reached keep every request waiting in the scheduler
  // when the signal arrives, so all of them were accepted before the drain began.
  const repo = mkdtempSync(join(tmpdir(), 'sluice-drain-'));
  t.after(() => rmSync(repo, { recursive: true, force: true }));
  mkdirSync(join(repo, 'slow_simple', '1'), { recursive: true });
  copyFileSync(join(SAMPLE_REPOSITORY, 'simple', '1', 'model.onnx'), join(repo, 'slow_simple', '1', 'model.onnx'));
  writeFileSync(join(repo, 'slow_simple', 'config.json'), JSON.stringify({ maxBatchSize: 64, dynamicBatching: { preferredBatchSizes: [64], maxQueueDelayUs: 1_500_000 } }));
  const { child, http } = await startServe(repo, ['--workers', '1']);
  t.after(() => child.kill('SIGKILL'));
  const base = `http://127.0.0.1:${http}`;
  const ready = await request(`${base}/v2/health/ready`);
  assert.equal(ready.statusCode, 200);
  await ready.body.dump();
  const inflight = Array.from({ length: 40 }, (_, k) =>
    request(`${base}/v2/models/slow_simple/infer`, { method: 'POST', body: simpleBody(k), headers: { 'content-type': 'application/json' } }).then(async (r) => ({ status: r.statusCode, body: (await r.body.json()) as { id: string; outputs: { name: string; data: number[] }[] } })),
  );
  await new Promise((r) => setTimeout(r, 500));
  child.kill('SIGTERM');
  const exited = once(child, 'exit');
  const answers = await Promise.all(inflight);
  for (const [k, a] of answers.entries()) {
    assert.equal(a.status, 200, `request ${k} got ${a.status}`);
    assert.equal(a.body.id, `drain-${k}`);
    assert.deepEqual(a.body.outputs.find((o) => o.name === 'OUTPUT0')!.data, Array.from({ length: 16 }, (_, i) => i + k + 1));
  }
  const [code, signal] = (await exited) as [number | null, string | null];
  assert.equal(signal, null);
  assert.equal(code, 0);
});
