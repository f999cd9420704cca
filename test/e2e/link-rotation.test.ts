// The sealed worker link's secrets rotate without a restart (docs/worker-protocol.md, Rotating the
// link's secrets): a worker host and a gateway read their token and TLS files again when they change.
// A token rotated in three steps (hosts accept new and old, gateways present new, hosts drop old)
// fails no request; a host takes a new CA at its next handshakes; a gateway presents a rotated client
// certificate on new connections.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { test, type TestContext } from 'node:test';
import tls from 'node:tls';
import { Agent, request } from 'undici';
import { startSluice, type Sluice } from '../../src/main.ts';
import { createLogger } from '../../src/telemetry/logger.ts';
import { makeTestPki } from '../helpers/certs.ts';
import { testConfig } from '../helpers/sluice.ts';
import { SAMPLE_REPOSITORY, spawnWorker, tempDir } from '../worker/helpers.ts';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls `check` every 50 ms until it holds (at most 20 s); fails naming `what`. */
async function until(what: string, check: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 400; i++) {
    if (await check()) return;
    await sleep(50);
  }
  assert.fail(`not within 20 s: ${what}`);
}

/** A gateway whose log lines the test reads (to wait for its rotation instead of for time). */
async function gateway(t: TestContext, flags: readonly string[]): Promise<{ sluice: Sluice; rotations: () => number }> {
  const lines: string[] = [];
  const sink = new Writable({ write(chunk: Buffer, _enc, done) { lines.push(...chunk.toString('utf8').split('\n').filter((l) => l !== '')); done(); } });
  const config = testConfig(['--workers', '0', '--model-control-mode', 'explicit', '--load-model', 'simple', '--log-level', 'info', ...flags]);
  const sluice = await startSluice(config, { logger: createLogger('info', sink) });
  t.after(() => sluice.close());
  return { sluice, rotations: () => lines.filter((l) => l.includes('worker link credentials rotated')).length };
}

async function inferOk(port: number, k: number, agent?: Agent): Promise<string | undefined> {
  const body = { inputs: [{ name: 'INPUT0', shape: [1, 16], datatype: 'INT32', data: Array.from({ length: 16 }, (_, i) => i + k) }, { name: 'INPUT1', shape: [1, 16], datatype: 'INT32', data: new Array<number>(16).fill(1) }] };
  try {
    const r = await request(`http://127.0.0.1:${port}/v2/models/simple/infer`, { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json' }, ...(agent ? { dispatcher: agent } : {}) });
    const json = (await r.body.json()) as { outputs?: { name: string; data: number[] }[]; error?: string };
    if (r.statusCode !== 200) return `${r.statusCode} ${json.error ?? ''}`;
    const sum = json.outputs?.find((o) => o.name === 'OUTPUT0')?.data;
    return JSON.stringify(sum) === JSON.stringify(Array.from({ length: 16 }, (_, i) => i + k + 1)) ? undefined : 'wrong answer';
  } catch (e) {
    return (e as Error).message;
  }
}

test('a worker token rotated on hosts and gateway while requests flow: none fails, and the old token is refused after', { timeout: 120_000 }, async (t) => {
  const dir = tempDir(t);
  const hostFile = join(dir, 'host-token');
  const gatewayFile = join(dir, 'gateway-token');
  writeFileSync(hostFile, 'token-one\n');
  writeFileSync(gatewayFile, 'token-one\n');
  const host = await spawnWorker(t, ['--listen', '127.0.0.1:0', '--model-repository', SAMPLE_REPOSITORY, '--intra-op-threads', '1', '--token-file', hostFile]);
  const { sluice, rotations } = await gateway(t, ['--worker', `http://${host.address}`, '--worker-token-file', gatewayFile]);
  const health = async (token: string): Promise<number> => {
    const r = await request(`http://${host.address}/health`, { headers: { authorization: `Bearer ${token}` } });
    await r.body.dump();
    return r.statusCode;
  };

  const agent = new Agent({ connections: 8 });
  t.after(() => agent.close());
  const failures: string[] = [];
  let answered = 0;
  let stopped = false;
  // Bounded: eight loops of at most 5,000 requests each.
  const loops = Array.from({ length: 8 }, async (_, loop) => {
    for (let i = 0; i < 5_000 && !stopped; i++) {
      const failure = await inferOk(sluice.ports.http, loop * 10_000 + i, agent);
      if (failure) failures.push(failure);
      else answered++;
    }
  });

  // 1. Hosts accept the new token beside the old one.
  writeFileSync(hostFile, 'token-two\ntoken-one\n');
  await until('the host accepts the new token', async () => (await health('token-two')) === 200);
  assert.equal(await health('token-one'), 200, 'and still the old one');
  // 2. The gateway presents the new token.
  writeFileSync(gatewayFile, 'token-two\n');
  await until('the gateway rotated its token', () => Promise.resolve(rotations() >= 1));
  // 3. Hosts drop the old token.
  writeFileSync(hostFile, 'token-two\n');
  await until('the host refuses the old token', async () => (await health('token-one')) === 401);
  const before = answered;
  await until('requests are answered after the old token was dropped', () => Promise.resolve(answered > before + 50));
  stopped = true;
  await Promise.all(loops);
  assert.deepEqual(failures.slice(0, 5), [], `${failures.length} of ${answered + failures.length} requests failed during the rotation`);

  // A rotation to a file that holds no token is refused: the host keeps the token it has.
  writeFileSync(hostFile, '\n');
  await sleep(1_500); // nothing to wait for: the point is that nothing changes (two polls of the file)
  assert.equal(await health('token-two'), 200, 'an empty token file is not taken');
  assert.equal(await inferOk(sluice.ports.http, 7), undefined);
});

/** A bare HTTPS request to a host's /health with a client certificate; the status, or the TLS error. */
function tlsHealth(address: string, ca: string, cert: string, key: string): Promise<string> {
  const [host, port] = [address.slice(0, address.lastIndexOf(':')), Number(address.slice(address.lastIndexOf(':') + 1))];
  return new Promise((resolve) => {
    let data = '';
    let error = '';
    const socket = tls.connect({ host, port, ca: readFileSync(ca), cert: readFileSync(cert), key: readFileSync(key), servername: undefined }, () => socket.write('GET /health HTTP/1.1\r\nhost: worker\r\nconnection: close\r\n\r\n'));
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => (data += d));
    socket.on('error', (e: NodeJS.ErrnoException) => (error = e.code ?? e.message));
    socket.on('close', () => resolve(data.startsWith('HTTP/1.1 ') ? data.slice(9, 12) : `refused (${error || 'closed'})`));
  });
}

test('TLS rotation: a host takes a new client CA at its next handshakes, a gateway presents a rotated client certificate', { timeout: 120_000 }, async (t) => {
  const dir = tempDir(t);
  const pki = makeTestPki(dir);
  if (!pki) {
    t.skip('openssl is missing: no test certificates');
    return;
  }
  const hostCa = join(dir, 'host-client-ca.pem');
  const gwCert = join(dir, 'gw.crt');
  const gwKey = join(dir, 'gw.key');
  writeFileSync(hostCa, readFileSync(pki.caCert));
  writeFileSync(gwCert, readFileSync(pki.clientCert));
  writeFileSync(gwKey, readFileSync(pki.clientKey));
  const host = await spawnWorker(t, ['--listen', '127.0.0.1:0', '--model-repository', SAMPLE_REPOSITORY, '--intra-op-threads', '1', '--tls-cert', pki.serverCert, '--tls-key', pki.serverKey, '--tls-ca', hostCa]);
  const { sluice, rotations } = await gateway(t, ['--worker', `https://${host.address}`, '--worker-tls-ca', pki.caCert, '--worker-tls-cert', gwCert, '--worker-tls-key', gwKey]);
  assert.equal(await inferOk(sluice.ports.http, 1), undefined);
  assert.match(await tlsHealth(host.address, pki.caCert, pki.strangerCert, pki.strangerKey), /refused/, 'the stranger CA is not trusted yet');

  // 1. The host trusts both CAs.
  writeFileSync(hostCa, Buffer.concat([readFileSync(pki.caCert), readFileSync(pki.strangerCaCert)]));
  await until('the host takes the CA bundle', async () => (await tlsHealth(host.address, pki.caCert, pki.strangerCert, pki.strangerKey)) === '200');
  // 2. The gateway's client certificate is rotated to the new CA's.
  writeFileSync(gwCert, readFileSync(pki.strangerCert));
  writeFileSync(gwKey, readFileSync(pki.strangerKey));
  await until('the gateway rotated its client certificate', () => Promise.resolve(rotations() >= 1));
  assert.equal(await inferOk(sluice.ports.http, 2), undefined);
  // 3. The host trusts only the new CA: the old certificate is refused at the handshake, idle connections are closed.
  writeFileSync(hostCa, readFileSync(pki.strangerCaCert));
  await until('the host refuses the old CA', async () => /refused/.test(await tlsHealth(host.address, pki.caCert, pki.clientCert, pki.clientKey)));
  for (let i = 0; i < 20; i++) assert.equal(await inferOk(sluice.ports.http, 10 + i), undefined, 'the gateway reconnects with its new certificate');
});
