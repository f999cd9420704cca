import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ConfigError, loadConfig } from '../../src/config/load.ts';

test('defaults follow tritonserver ports and are frozen', () => {
  const c = loadConfig({ argv: [], env: {} });
  assert.equal(c.http.port, 8000);
  assert.equal(c.grpc.port, 8001);
  assert.equal(c.metrics.port, 8002);
  assert.equal(c.modelRepository, './models');
  assert.equal(c.modelControlMode, 'none');
  assert.ok(Object.isFrozen(c) && Object.isFrozen(c.workers));
});

test('flags win over environment, environment over the config file', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-config-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'sluice.json');
  writeFileSync(file, JSON.stringify({ http: { port: 7000 }, grpc: { port: 7001 }, serverName: 'from-file', workers: { count: 3 } }));
  const c = loadConfig({ argv: ['--config', file, '--http-port', '9000'], env: { SLUICE_HTTP_PORT: '9100', SLUICE_GRPC_PORT: '9101' } });
  assert.equal(c.http.port, 9000);
  assert.equal(c.grpc.port, 9101);
  assert.equal(c.serverName, 'from-file');
  assert.equal(c.workers.count, 3);
});

test('repeatable flags and comma-separated environment lists', () => {
  const c = loadConfig({ argv: ['--load-model', 'simple', '--load-model', 'mlp', '--model-control-mode', 'explicit'], env: { SLUICE_GPUS: '0,1' } });
  assert.deepEqual(c.loadModels, ['simple', 'mlp']);
  assert.deepEqual(c.workers.gpus, [0, 1]);
  assert.deepEqual(loadConfig({ argv: ['--gpus', '2,3', '--workers=-1'], env: {} }).workers.gpus, [2, 3]);
  assert.equal(c.modelControlMode, 'explicit');
});

test('HTTP timeouts are settings like any other', () => {
  const c = loadConfig({ argv: ['--http-request-timeout-ms', '5000'], env: { SLUICE_HTTP_KEEP_ALIVE_TIMEOUT_MS: '2500' } });
  assert.equal(c.http.requestTimeoutMs, 5000);
  assert.equal(c.http.keepAliveTimeoutMs, 2500);
  assert.throws(() => loadConfig({ argv: ['--http-request-timeout-ms', '10'], env: {} }), /--http-request-timeout-ms: 10 is below the minimum 1000/);
});

test('log-verbose maps to debug; sizes take units', () => {
  const c = loadConfig({ argv: ['--log-verbose', '1', '--http-body-limit', '8mb'], env: {} });
  assert.equal(c.logLevel, 'debug');
  assert.equal(c.http.bodyLimitBytes, 8 * 1024 * 1024);
});

const invalid: [string, string[], Record<string, string>, RegExp][] = [
  ['port out of range', ['--http-port', '70000'], {}, /--http-port: 70000 is above the maximum 65535/],
  ['port not a number', ['--grpc-port', 'abc'], {}, /--grpc-port: 'abc' is not an integer/],
  ['env names the variable', [], { SLUICE_METRICS_PORT: '-5' }, /SLUICE_METRICS_PORT: -5 is below the minimum 0/],
  ['bad choice', ['--model-control-mode', 'sometimes'], {}, /--model-control-mode: 'sometimes' is not one of none, explicit, poll/],
  ['unknown flag', ['--no-such-flag', '1'], {}, /no-such-flag/],
  ['clashing ports', ['--http-port', '9000', '--grpc-port', '9000'], {}, /must differ/],
  ['tls half given', ['--http-tls-cert', 'cert.pem'], {}, /--http-tls-cert and --http-tls-key must be given together/],
  ['bad worker url', ['--worker', 'not a url'], {}, /--worker: 'not a url' is not a URL/],
  ['no workers at all', ['--workers', '0'], {}, /--workers 0 needs at least one --worker URL/],
  ['bad size', ['--http-body-limit', 'lots'], {}, /--http-body-limit: 'lots' is not a size/],
  ['bad log-verbose', ['--log-verbose', 'x'], {}, /--log-verbose: 'x' is not a non-negative integer/],
];
for (const [name, argv, env, message] of invalid) {
  test(`invalid configuration fails with the setting named: ${name}`, () => {
    assert.throws(() => loadConfig({ argv, env }), (e: unknown) => e instanceof ConfigError && message.test(e.message));
  });
}

test('a config file that is not JSON names the file', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-config-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'bad.json');
  writeFileSync(file, '{ not json');
  assert.throws(() => loadConfig({ argv: ['--config', file], env: {} }), (e: unknown) => e instanceof ConfigError && e.message.includes(file));
});
