import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { runLoadtestCli } from '../../loadtest/cli.ts';
import type { RunReport } from '../../loadtest/types.ts';
import { startFakeServer } from './fake-server.ts';

const BIN = fileURLToPath(new URL('../../bin/sluice.mjs', import.meta.url));

/** Runs `sluice loadtest ...` as users do (asynchronously: an in-test server must keep answering). */
function sluiceLoadtest(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, 'loadtest', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

test('sluice loadtest --help documents every flag the issue asks for', async () => {
  const r = await sluiceLoadtest(['--help']);
  assert.equal(r.code, 0);
  for (const flag of ['--url', '--grpc-url', '--model', '--protocol', '--concurrency', '--rate', '--duration', '--warmup', '--slo-p99', '--json', '--report', '--metrics-url', '--input', '--progress']) {
    assert.match(r.stdout, new RegExp(`^\\s+${flag}\\b`, 'm'), flag);
  }
  assert.match(r.stdout, /json \| binary \| h2c \| grpc/);
});

test('bad usage exits 2 naming the flag; an unreachable target exits 1 saying so', async () => {
  const bad = await sluiceLoadtest(['--model', 'simple', '--protocol', 'smtp']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--protocol 'smtp'/);
  const missing = await sluiceLoadtest(['--concurrency', '4']);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /--model is required/);
  // Port 1 on loopback: nothing listens there.
  const down = await sluiceLoadtest(['--model', 'simple', '--url', 'http://127.0.0.1:1', '--duration', '1s']);
  assert.equal(down.code, 1);
  assert.match(down.stderr, /cannot reach http:\/\/127\.0\.0\.1:1/);
});

test('a run with --progress and --input FILE prints progress lines and a table; wrong answers make it exit 1', async (t) => {
  const server = await startFakeServer(t, { wrongEvery: 10, rightFirst: 1 });
  const dir = await mkdtemp(join(tmpdir(), 'sluice-loadtest-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const input = join(dir, 'req.json');
  await writeFile(input, JSON.stringify({ inputs: [{ name: 'INPUT0', shape: [1, 4], datatype: 'FP32', data: [[0.5, -1, 2, 3]] }] }));
  const json = join(dir, 'out.json');
  const r = await sluiceLoadtest(['--url', server.url, '--model', 'double', '--input', input, '--no-metrics', '--rate', '50', '--duration', '2s', '--warmup', '0', '--check-every', '1', '--progress', '--json', json]);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /r=50\/s \[#+\.*\] \d\/2s\s+\d+ req\/s\s+p99 [\d.]+ ms/);
  assert.match(r.stderr, /wrong answer\(s\) among the checked responses; first: input set 0: output 'OUTPUT0'\[0\] = 2, expected 1/);
  assert.match(r.stdout, /^step\s+proto\s+req\/s\s+p50/m);
  const doc = JSON.parse(await readFile(json, 'utf8')) as RunReport;
  assert.equal(doc.settings['check'], 'reference');
  assert.equal(doc.steps[0]!.wrong, server.wrongSent());
  assert.equal(doc.steps[0]!.errors['wrong answer'], server.wrongSent());
  assert.ok(server.wrongSent() >= 9);
});

test('in-process: runLoadtestCli returns 0 for a clean run', async (t) => {
  const server = await startFakeServer(t);
  const code = await runLoadtestCli(['--url', server.url, '--model', 'simple', '--no-metrics', '--quiet', '--concurrency', '2', '--duration', '300ms', '--warmup', '0']);
  assert.equal(code, 0);
});
