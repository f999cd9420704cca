import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import tls from 'node:tls';
import { startTestSluice } from '../helpers/sluice.ts';
import { h1Client, h2Client } from './client.ts';
import { endpointSuite } from './endpoint-suite.ts';

/** A throwaway self-signed certificate for 127.0.0.1, or undefined when openssl is not installed. */
function selfSigned(dir: string): { cert: string; key: string } | undefined {
  const cert = join(dir, 'cert.pem');
  const key = join(dir, 'key.pem');
  try {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost'], { stdio: 'pipe' });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  return { cert, key };
}

function alpn(port: number, ca: Buffer, protocols: string[]): Promise<string | false> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, ca, ALPNProtocols: protocols }, () => {
      resolve(socket.alpnProtocol ?? false);
      socket.destroy();
    });
    socket.on('error', reject);
  });
}

test('REST over TLS: ALPN picks h2 or http/1.1 on one port, every endpoint works on both', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-tls-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const files = selfSigned(dir);
  if (!files) {
    console.error('SKIPPING the TLS tests: openssl is not installed, so no test certificate can be made');
    t.skip('openssl is missing');
    return;
  }
  const sluice = await startTestSluice(t, ['--http-tls-cert', files.cert, '--http-tls-key', files.key, '--log-level', 'error']);
  const port = sluice.ports.http;
  const ca = readFileSync(files.cert);

  await t.test('ALPN negotiates h2 and http/1.1', async () => {
    assert.equal(await alpn(port, ca, ['h2', 'http/1.1']), 'h2');
    assert.equal(await alpn(port, ca, ['http/1.1']), 'http/1.1');
  });

  const origin = `https://127.0.0.1:${port}`;
  const h2 = h2Client(origin, { ca, name: 'TLS h2' });
  for (const client of [h1Client(origin, { ca, name: 'TLS HTTP/1.1' }), h2]) {
    t.after(() => client.close());
    await t.test(client.name, (t2) => endpointSuite(t2, client));
  }
  assert.equal(h2.session.alpnProtocol, 'h2');
});
