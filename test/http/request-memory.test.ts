// The gateway-wide bound on bytes held by accepted requests, through both front doors.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { status } from '@grpc/grpc-js';
import { connectGrpc, expectStatus } from '../grpc/client.ts';
import { startTestSluice } from '../helpers/sluice.ts';
import { h1Client, simpleRequest } from './client.ts';

test('a request past --max-request-memory is 503 / RESOURCE_EXHAUSTED naming the bound; smaller ones are served; the gauges show it', async (t) => {
  const sluice = await startTestSluice(t, ['--max-request-memory', '2kb']);
  const http = h1Client(`http://127.0.0.1:${sluice.ports.http}`);
  t.after(() => http.close());
  // mlp takes 784 FP32 values a row: 3136 bytes, more than the whole 2048-byte bound.
  const mlp = JSON.stringify({ inputs: [{ name: 'INPUT0', datatype: 'FP32', shape: [1, 784], data: new Array<number>(784).fill(0.5) }] });
  const refused = await http.call('POST', '/v2/models/mlp/infer', { body: mlp, headers: { 'content-type': 'application/json' } });
  assert.equal(refused.status, 503);
  assert.match(refused.json().error as string, /request for model 'mlp' needs 3136 bytes while accepted requests hold 0 of 2048 \(--max-request-memory\)/);
  const ok = await http.call('POST', '/v2/models/simple/infer', { body: JSON.stringify(simpleRequest()), headers: { 'content-type': 'application/json' } });
  assert.equal(ok.status, 200, ok.text());

  const grpc = connectGrpc(t, sluice.ports.grpc);
  const raw = Buffer.alloc(784 * 4);
  await expectStatus(grpc.call('ModelInfer', { model_name: 'mlp', inputs: [{ name: 'INPUT0', datatype: 'FP32', shape: [1, 784] }], raw_input_contents: [raw] }), status.RESOURCE_EXHAUSTED, '--max-request-memory');

  const text = await sluice.metrics.registry.metrics();
  assert.match(text, /^sluice_request_memory_limit_bytes 2048$/m);
  assert.match(text, /^sluice_request_memory_bytes 0$/m, 'nothing held once everything is answered');
  assert.match(text, /^sluice_requests_total\{model="mlp",protocol="http",status="queue_full"\} 1$/m);
  assert.match(text, /^sluice_requests_total\{model="mlp",protocol="grpc",status="queue_full"\} 1$/m);
});
