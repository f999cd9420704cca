// The response cache's two switches: tritonserver's --cache-config for the gateway, and each model's
// response_cache { enable } (config.pbtxt) / responseCache (config.json).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ConfigError, loadConfig } from '../../src/config/load.ts';
import { isSluiceError } from '../../src/core/errors.ts';
import type { OnnxMetadata } from '../../src/repository/onnx-metadata.ts';
import { settleSignature } from '../../src/repository/autocomplete.ts';
import type { ConfigDraft } from '../../src/repository/draft.ts';
import { readJsonConfig } from '../../src/repository/json-config.ts';
import { normalizeConfig } from '../../src/repository/normalize.ts';
import { readPbtxtConfig } from '../../src/repository/pbtxt-config.ts';

function sizeOf(argv: readonly string[], env: Record<string, string> = {}): number {
  return loadConfig({ argv: [...argv], env }).responseCache.sizeBytes;
}

void test('--cache-config local,size=BYTES, as tritonserver spells it; no flag, no cache', () => {
  assert.equal(sizeOf([]), 0);
  assert.equal(sizeOf(['--cache-config', 'local,size=1048576']), 1048576);
  assert.equal(sizeOf(['--cache-config=local,size=1048576']), 1048576);
  assert.equal(sizeOf(['--cache-config', 'local,size=64mb']), 64 * 1024 * 1024, 'the units of sluice\'s other sizes');
  assert.equal(sizeOf(['--cache-config', 'local,size=4k']), 4096);
  assert.equal(sizeOf(['--cache-config', 'local,size=1024', '--cache-config', 'local,size=2048']), 2048, 'repeated: the last size wins');
  assert.equal(sizeOf([], { SLUICE_CACHE_CONFIG: 'local,size=8192' }), 8192);
  assert.deepEqual(loadConfig({ argv: ['--cache-config', 'local,size=1mb'], env: {} }).responseCache.settings, ['local', 'size=1mb']);
});

void test('--cache-config: what it refuses, naming the entry', () => {
  const cases: [string, RegExp][] = [
    ['redis,host=127.0.0.1', /'redis' is not a cache sluice has \(only 'local'/],
    ['local', /give the local cache its size, e\.g\. --cache-config local,size=1048576/],
    ['local,size=lots', /local,size: 'lots' is not a size/],
    ['local,size=0', /at least 1 byte \(leave --cache-config out for no cache\)/],
    ['local,size=-5', /'-5' is not a size/],
    ['local,ttl=60', /local,ttl=60: the local cache has one setting, size=BYTES/],
  ];
  for (const [value, message] of cases) {
    assert.throws(() => loadConfig({ argv: ['--cache-config', value], env: {} }), (e: unknown) => e instanceof ConfigError && message.test(e.message), `${value} -> ${String(message)}`);
  }
});

const SIMPLE: OnnxMetadata = {
  irVersion: 8,
  opsets: [{ domain: '', version: 17 }],
  inputs: ['INPUT0', 'INPUT1'].map((name) => ({ name, elemType: 6, datatype: 'INT32' as const, shape: [-1, 16] })),
  outputs: ['OUTPUT0', 'OUTPUT1'].map((name) => ({ name, elemType: 6, datatype: 'INT32' as const, shape: [-1, 16] })),
};

function enabled(draft: ConfigDraft): boolean | undefined {
  return normalizeConfig('m', draft, settleSignature(draft, SIMPLE, '1')).responseCache?.enable;
}

function rejects(fn: () => unknown, message: RegExp): void {
  assert.throws(fn, (e: unknown) => isSluiceError(e) && e.code === 'SLUICE_INVALID_MODEL_CONFIG' && message.test(e.message), String(message));
}

void test('config.pbtxt: response_cache { enable } (Triton\'s field), off when absent', () => {
  assert.equal(enabled(readPbtxtConfig('max_batch_size: 8\nresponse_cache { enable: true }')), true);
  assert.equal(enabled(readPbtxtConfig('max_batch_size: 8\nresponse_cache: { enable: false }')), false);
  assert.equal(enabled(readPbtxtConfig('max_batch_size: 8\nresponse_cache {}')), false);
  assert.equal(enabled(readPbtxtConfig('max_batch_size: 8')), false);
  assert.deepEqual(readPbtxtConfig('response_cache { enable: true turbo: 1 }').unknownFields, ['response_cache.turbo']);
  rejects(() => readPbtxtConfig('response_cache { enable: maybe }'), /at 'response_cache\.enable': expected true or false/);
  rejects(() => readPbtxtConfig('response_cache: true'), /at 'response_cache': expected a message/);
});

void test('config.json: responseCache { enable }, off when absent', () => {
  assert.equal(enabled(readJsonConfig('{"maxBatchSize": 8, "responseCache": {"enable": true}}')), true);
  assert.equal(enabled(readJsonConfig('{"maxBatchSize": 8, "responseCache": {}}')), false);
  assert.equal(enabled(readJsonConfig('{"maxBatchSize": 8}')), false);
  assert.deepEqual(readJsonConfig('{"responseCache": {"enable": true, "ttl": 5}}').unknownFields, ['responseCache.ttl']);
  rejects(() => readJsonConfig('{"responseCache": {"enable": "yes"}}'), /at 'responseCache\.enable': expected true or false/);
  rejects(() => readJsonConfig('{"responseCache": true}'), /at 'responseCache': expected an object/);
});
