// Every gRPC method of the service has an access rule: a method added to the proto without one would
// fail every call with an internal error under an auth config.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { METHOD_SCOPES } from '../../src/frontdoor/grpc/access.ts';
import { loadInferenceService } from '../../src/frontdoor/grpc/proto.ts';

test('every GRPCInferenceService method has a scope rule, and health alone is open', () => {
  const methods = Object.keys(loadInferenceService());
  assert.ok(methods.length >= 20, `the service has its methods (${methods.length})`);
  for (const m of methods) assert.ok(Object.hasOwn(METHOD_SCOPES, m), `${m} has an access rule`);
  const open = Object.entries(METHOD_SCOPES).filter(([, scope]) => scope === undefined).map(([m]) => m).sort();
  assert.deepEqual(open, ['ModelReady', 'ServerLive', 'ServerReady']);
  for (const m of Object.keys(METHOD_SCOPES)) assert.ok(methods.includes(m), `${m} is a method of the service`);
});
