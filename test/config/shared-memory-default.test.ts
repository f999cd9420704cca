import assert from 'node:assert/strict';
import { test } from 'node:test';
import { loadConfig } from '../../src/config/load.ts';

test('--shared-memory auto: on for a loopback host or with an auth config, off for a network port without keys', () => {
  const sm = (argv: string[]): string => loadConfig({ argv, env: {} }).sharedMemory;
  assert.equal(sm([]), 'none', 'the default host 0.0.0.0 without keys');
  assert.equal(sm(['--host', '127.0.0.1']), 'system');
  assert.equal(sm(['--host', '::1']), 'system');
  assert.equal(sm(['--host', 'localhost']), 'system');
  assert.equal(sm(['--host', '10.1.2.3']), 'none');
  assert.equal(sm(['--auth-config', '/etc/sluice/auth.yaml']), 'system', 'registering needs the control scope then');
  assert.equal(sm(['--shared-memory', 'system']), 'system', 'asked for explicitly');
  assert.equal(sm(['--host', '127.0.0.1', '--shared-memory', 'none']), 'none');
});
