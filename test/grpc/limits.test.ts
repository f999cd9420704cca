// Bounds on what one gRPC connection may hold: its concurrent streams.
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import { test } from 'node:test';
import { GRPC_MAX_CONCURRENT_STREAMS } from '../../src/frontdoor/grpc/server.ts';
import { startTestSluice } from '../helpers/sluice.ts';

void test('the gRPC port advertises a bound on concurrent streams per connection and serves past a flood of idle ones', async (t) => {
  const sluice = await startTestSluice(t);
  const session = http2.connect(`http://127.0.0.1:${sluice.ports.grpc}`);
  t.after(() => session.destroy());
  session.on('error', () => undefined);
  const settings = await new Promise<http2.Settings>((resolve) => session.once('remoteSettings', resolve));
  assert.equal(settings.maxConcurrentStreams, GRPC_MAX_CONCURRENT_STREAMS);
  // Headers only, never a message, as the flood did. A conforming client (nghttp2, under node:http2
  // here and under grpc-core) holds the streams past the bound until others close; the gateway keeps
  // answering on the same connection meanwhile.
  const streams = Array.from({ length: GRPC_MAX_CONCURRENT_STREAMS + 20 }, () => session.request({
    ':method': 'POST', ':path': '/inference.GRPCInferenceService/ModelInfer', 'content-type': 'application/grpc', te: 'trailers',
  }, { endStream: false }));
  for (const s of streams) s.on('error', () => undefined);
  await new Promise((resolve) => setTimeout(resolve, 200));
  for (const s of streams) s.close();
  // The server is still healthy for a well-behaved client.
  const ready = session.request({ ':method': 'POST', ':path': '/inference.GRPCInferenceService/ServerReady', 'content-type': 'application/grpc', te: 'trailers' });
  ready.end(Buffer.from([0, 0, 0, 0, 0]));
  const status = await new Promise<string | undefined>((resolve) => ready.on('trailers', (h) => resolve(h['grpc-status'] as string | undefined)));
  assert.equal(status, '0');
});
