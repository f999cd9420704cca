// The front doors' certificates rotate without a restart: REST (HTTPS) and gRPC read --*-tls-cert and
// --*-tls-key again when the files change, serve the new certificate from the next handshake on, and
// keep the one in use when the new files do not make a usable pair.
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { copyFileSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import tls from 'node:tls';
import { makeTestPki } from '../helpers/certs.ts';
import { startTestSluice } from '../helpers/sluice.ts';
import { tempDir } from '../worker/helpers.ts';
import { connectGrpc } from '../grpc/client.ts';
import { credentials as grpcCredentials } from '@grpc/grpc-js';

/** The fingerprint of the certificate a new TLS connection to `port` is shown, or why it failed. */
function served(port: number, ca: Buffer, alpn: string): Promise<string> {
  return new Promise((resolve) => {
    const socket = tls.connect({ host: '127.0.0.1', port, ca, ALPNProtocols: [alpn] }, () => {
      resolve(socket.getPeerCertificate().fingerprint256);
      socket.destroy();
    });
    socket.on('error', (e: NodeJS.ErrnoException) => resolve(`failed: ${e.code ?? e.message}`));
  });
}

const fingerprint = (pem: Buffer): string => new X509Certificate(pem).fingerprint256;

async function until(what: string, check: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 400; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.fail(`not within 20 s: ${what}`);
}

test('REST and gRPC serve a renewed certificate from the next handshake; a broken pair keeps the one in use', { timeout: 120_000 }, async (t) => {
  const dir = tempDir(t);
  for (const sub of ['a', 'b']) mkdirSync(join(dir, sub));
  // Two unrelated CAs, each with a certificate for 127.0.0.1: the old one and the renewed one.
  const first = makeTestPki(join(dir, 'a'));
  const second = first && makeTestPki(join(dir, 'b'));
  if (!first || !second) {
    t.skip('openssl is missing: no test certificates');
    return;
  }
  const cert = join(dir, 'server.crt');
  const key = join(dir, 'server.key');
  copyFileSync(first.serverCert, cert);
  copyFileSync(first.serverKey, key);
  const s = await startTestSluice(t, ['--http-tls-cert', cert, '--http-tls-key', key, '--grpc-tls-cert', cert, '--grpc-tls-key', key]);
  const caA = readFileSync(first.caCert);
  const caB = readFileSync(second.caCert);
  const fpA = fingerprint(readFileSync(first.serverCert));
  const fpB = fingerprint(readFileSync(second.serverCert));
  assert.equal(await served(s.ports.http, caA, 'h2'), fpA);
  assert.equal(await served(s.ports.grpc, caA, 'h2'), fpA);
  // A gRPC channel opened now keeps its connection across the rotation.
  const before = connectGrpc(t, s.ports.grpc, {}, grpcCredentials.createSsl(caA));
  assert.deepEqual(await before.call('ServerLive', {}), { live: true });

  // A key that does not fit the certificate: refused, the pair in use stays.
  copyFileSync(second.serverKey, key);
  await new Promise((r) => setTimeout(r, 1_500)); // nothing to wait for: the point is that nothing changes (a poll of the file)
  assert.equal(await served(s.ports.http, caA, 'h2'), fpA, 'REST keeps the usable pair');
  assert.equal(await served(s.ports.grpc, caA, 'h2'), fpA, 'gRPC keeps the usable pair');

  // The renewed pair: served from the next handshake on.
  copyFileSync(second.serverCert, cert);
  await until('REST serves the new certificate', async () => (await served(s.ports.http, caB, 'h2')) === fpB);
  await until('gRPC serves the new certificate', async () => (await served(s.ports.grpc, caB, 'h2')) === fpB);
  assert.match(await served(s.ports.http, caA, 'http/1.1'), /^failed/, 'a client trusting only the old CA no longer connects');
  const after = connectGrpc(t, s.ports.grpc, {}, grpcCredentials.createSsl(caB));
  assert.deepEqual(await after.call('ServerLive', {}), { live: true });
  assert.deepEqual(await before.call('ServerLive', {}), { live: true }, 'the connection made before the rotation still serves');
});
