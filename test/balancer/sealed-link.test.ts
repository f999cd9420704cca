// The gateway's side of the sealed worker link: --worker-token-file and --worker-tls-*, end to end
// through real worker processes (docs/worker-protocol.md, Authentication of the link).
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import tls from 'node:tls';
import { request } from 'undici';
import { TransportError } from '../../src/balancer/link.ts';
import { DEFAULT_TIMEOUTS } from '../../src/balancer/startup.ts';
import { WorkerClient } from '../../src/balancer/worker-client.ts';
import { ConfigError, loadConfig } from '../../src/config/load.ts';
import { makeTestPki, type TestPki } from '../helpers/certs.ts';
import { startTestSluice } from '../helpers/sluice.ts';
import { SAMPLE_REPOSITORY, spawnWorker } from '../worker/helpers.ts';
import { execute, simpleJob, startPool } from './support.ts';

function tempDir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-link-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function writeToken(dir: string, name: string, token: string): string {
  const file = join(dir, name);
  writeFileSync(file, `${token}\n`);
  return file;
}

/** A remote worker process on 127.0.0.1:0 with the given link flags; resolves with its host:port. */
async function startWorker(t: TestContext, flags: readonly string[]): Promise<string> {
  const w = await spawnWorker(t, ['--listen', '127.0.0.1:0', '--model-repository', SAMPLE_REPOSITORY, '--intra-op-threads', '1', ...flags]);
  return w.address;
}

/** One REST inference on `simple` through a whole gateway; asserts the right answer. */
async function inferThroughGateway(t: TestContext, flags: readonly string[]): Promise<void> {
  const sluice = await startTestSluice(t, ['--workers', '0', '--model-control-mode', 'explicit', '--load-model', 'simple', ...flags]);
  const input0 = Array.from({ length: 16 }, (_, i) => i * 3);
  const res = await request(`http://127.0.0.1:${sluice.ports.http}/v2/models/simple/infer`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ inputs: [
      { name: 'INPUT0', shape: [1, 16], datatype: 'INT32', data: input0 },
      { name: 'INPUT1', shape: [1, 16], datatype: 'INT32', data: input0.map(() => 2) },
    ] }),
  });
  const json = (await res.body.json()) as { outputs?: { name: string; data: number[] }[]; error?: string };
  assert.equal(res.statusCode, 200, json.error);
  assert.deepEqual(json.outputs!.find((o) => o.name === 'OUTPUT0')!.data, input0.map((x) => x + 2));
  const [worker] = sluice.workers();
  assert.equal(worker?.kind, 'remote');
  assert.ok(worker.completedBatches >= 1, 'the remote worker ran the batch');
}

void test('the link settings are checked at load: a missing or empty token file, half a key pair, TLS beside http://', (t) => {
  const dir = tempDir(t);
  const token = writeToken(dir, 'token', 'tok');
  const empty = writeToken(dir, 'empty', '   ');
  const load = (argv: string[], env: Record<string, string> = {}): ReturnType<typeof loadConfig> => loadConfig({ argv: ['--workers', '0', ...argv], env });
  const w = ['--worker', 'https://10.0.0.5:9000'];
  assert.equal(load([...w, '--worker-token-file', token]).workers.link.tokenFile, token);
  assert.equal(load(w, { SLUICE_WORKER_TOKEN_FILE: token }).workers.link.tokenFile, token);
  const file = join(dir, 'sluice.json');
  writeFileSync(file, JSON.stringify({ workers: { remote: ['https://10.0.0.5:9000'], link: { tokenFile: token, tlsCaFile: token } } }));
  assert.deepEqual(load(['--config', file]).workers.link, { tokenFile: token, tlsCaFile: token, tlsCertFile: '', tlsKeyFile: '' });
  assert.deepEqual(load(['--worker', 'http://10.0.0.5:9000']).workers.link, { tokenFile: '', tlsCaFile: '', tlsCertFile: '', tlsKeyFile: '' });

  const refused: [string[], RegExp][] = [
    [['--worker-token-file', join(dir, 'missing')], /--worker-token-file: cannot read token file .*missing: ENOENT/],
    [['--worker-token-file', empty], /--worker-token-file: token file .*empty is empty/],
    [['--worker-tls-cert', token], /--worker-tls-cert and --worker-tls-key must be given together/],
    [['--worker-tls-key', token], /--worker-tls-cert and --worker-tls-key must be given together/],
    [['--worker-tls-ca', join(dir, 'nope.pem')], /--worker-tls-ca: cannot read .*nope\.pem: ENOENT/],
  ];
  for (const [argv, message] of refused) assert.throws(() => load([...w, ...argv]), (e: unknown) => e instanceof ConfigError && message.test(e.message), argv.join(' '));
  assert.throws(() => load(['--worker', 'http://10.0.0.5:9000', '--worker-tls-ca', token]), /'http:\/\/10\.0\.0\.5:9000' is cleartext http: but --worker-tls-\* is set; use https:\/\//);
  assert.throws(() => load(['--worker', 'ftp://10.0.0.5:9000']), /must use http:, https: or unix:/);
  assert.throws(() => load(w, { SLUICE_WORKER_TOKEN_FILE: empty }), /--worker-token-file: .* is empty/);
});

void test('a gateway with the worker token serves inference through a worker host that requires it', async (t) => {
  const dir = tempDir(t);
  const tokenFile = writeToken(dir, 'token', 'e2e-shared-secret');
  const address = await startWorker(t, ['--token-file', tokenFile]);
  await inferThroughGateway(t, ['--worker', `http://${address}`, '--worker-token-file', tokenFile]);
});

void test('a gateway without the token, or with another, never gets the worker into rotation; its own local workers stay open', async (t) => {
  const dir = tempDir(t);
  const tokenFile = writeToken(dir, 'token', 'the-right-one');
  const wrongFile = writeToken(dir, 'wrong', 'the-wrong-one');
  const url = `http://${await startWorker(t, ['--token-file', tokenFile])}`;

  const { pool: bare } = await startPool(t, ['--workers', '0', '--worker', url]);
  const [refused] = bare.workers();
  assert.equal(refused?.healthy, false);
  assert.match(refused.downReason, /worker host refused the link \(HTTP 401\): no Authorization header/);
  const { pool: wrong } = await startPool(t, ['--workers', '0', '--worker', url, '--worker-token-file', wrongFile]);
  assert.match(wrong.workers()[0]!.downReason, /refused the link \(HTTP 401\): the bearer token presented is not this worker host's token/);
  assert.ok(!wrong.workers()[0]!.downReason.includes('the-wrong-one') && !wrong.workers()[0]!.downReason.includes('the-right-one'));
  // A batch refused for the link's sake (say the host's token was rotated under a running gateway) is a
  // link failure the pool fails over from, never a 401 handed to the client whose request it was.
  const client = new WorkerClient(url, url, 1, DEFAULT_TIMEOUTS, { token: 'the-wrong-one' });
  t.after(() => client.close());
  await assert.rejects(client.infer(simpleJob(1)), (e: unknown) => e instanceof TransportError && /HTTP 401/.test(e.message));
  const sealed = new WorkerClient(url, url, 1, DEFAULT_TIMEOUTS, { token: 'the-right-one' });
  t.after(() => sealed.close());
  assert.equal((await sealed.infer(simpleJob(1))).outputs.length, 2);

  // The gateway's SLUICE_WORKER_TOKEN_FILE is for remote hosts: a forked local worker does not inherit it.
  process.env['SLUICE_WORKER_TOKEN_FILE'] = tokenFile;
  t.after(() => delete process.env['SLUICE_WORKER_TOKEN_FILE']);
  const { pool } = await startPool(t, ['--workers', '1', '--worker', url, '--worker-token-file', tokenFile]);
  assert.deepEqual(pool.workers().map((w) => [w.kind, w.healthy, w.downReason]), [['local', true, ''], ['remote', true, '']]);
  const done = new Set<string>();
  for (let i = 0; i < 8; i++) done.add((await execute(pool, simpleJob(2, i))).worker);
  assert.ok(done.size >= 1);
});

/** Sends a bare HTTP request over TLS with `opts`; resolves with what came back (empty when the handshake refused us). */
function rawRequest(port: number, opts: tls.ConnectionOptions): Promise<{ data: string; error: string | undefined }> {
  return new Promise((resolve) => {
    let data = '';
    let error: string | undefined;
    const socket = tls.connect({ host: '127.0.0.1', port, ...opts }, () => socket.write('GET /health HTTP/1.1\r\nhost: worker\r\nconnection: close\r\n\r\n'));
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => (data += d));
    socket.on('error', (e: NodeJS.ErrnoException) => (error = e.code ?? e.message));
    socket.on('close', () => resolve({ data, error }));
  });
}

function pkiOrSkip(t: TestContext): TestPki | undefined {
  const pki = makeTestPki(tempDir(t));
  if (!pki) {
    console.error('SKIPPING the mutual TLS tests of the worker link: openssl is not installed, so no test certificate can be made');
    t.skip('openssl is missing');
  }
  return pki;
}

void test('mutual TLS: a gateway with the right client certificate serves; peers without one, or with another CA\'s, are refused at the handshake', async (t) => {
  const pki = pkiOrSkip(t);
  if (!pki) return;
  const address = await startWorker(t, ['--tls-cert', pki.serverCert, '--tls-key', pki.serverKey, '--tls-ca', pki.caCert]);
  const url = `https://${address}`;
  const port = Number(address.slice(address.lastIndexOf(':') + 1));
  await inferThroughGateway(t, ['--worker', url, '--worker-tls-ca', pki.caCert, '--worker-tls-cert', pki.clientCert, '--worker-tls-key', pki.clientKey]);

  const ca = readFileSync(pki.caCert);
  const good = await rawRequest(port, { ca, cert: readFileSync(pki.clientCert), key: readFileSync(pki.clientKey) });
  assert.match(good.data, /^HTTP\/1\.1 200/, 'the right certificate gets an answer');
  const none = await rawRequest(port, { ca });
  assert.equal(none.data, '', 'no HTTP answer without a client certificate');
  assert.match(none.error ?? 'closed', /CERTIFICATE_REQUIRED|ECONNRESET|closed/);
  const stranger = await rawRequest(port, { ca, cert: readFileSync(pki.strangerCert), key: readFileSync(pki.strangerKey) });
  assert.equal(stranger.data, '', 'no HTTP answer with a certificate of another CA');

  // The gateway's own view: such a link never comes up, and says why.
  const { pool: noCert } = await startPool(t, ['--workers', '0', '--worker', url, '--worker-tls-ca', pki.caCert]);
  assert.equal(noCert.workers()[0]!.healthy, false);
  assert.match(noCert.workers()[0]!.downReason, /health probe failed/);
  const { pool: otherCa } = await startPool(t, ['--workers', '0', '--worker', url, '--worker-tls-ca', pki.caCert, '--worker-tls-cert', pki.strangerCert, '--worker-tls-key', pki.strangerKey]);
  assert.equal(otherCa.workers()[0]!.healthy, false);
  // And a gateway that does not trust the host's CA refuses the host in turn.
  const { pool: untrusting } = await startPool(t, ['--workers', '0', '--worker', url, '--worker-tls-ca', pki.strangerCaCert, '--worker-tls-cert', pki.clientCert, '--worker-tls-key', pki.clientKey]);
  assert.match(untrusting.workers()[0]!.downReason, /SELF_SIGNED_CERT_IN_CHAIN|unable to verify|certificate/i);
});

void test('README and docs/worker-protocol.md document every flag of the link, on both sides', () => {
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
  const protocol = readFileSync(new URL('../../docs/worker-protocol.md', import.meta.url), 'utf8');
  for (const flag of ['--worker-token-file', '--worker-tls-ca', '--worker-tls-cert', '--worker-tls-key', 'SLUICE_WORKER_TOKEN_FILE', 'SLUICE_WORKER_TLS_CA']) {
    assert.ok(readme.includes(flag), `README.md lacks ${flag}`);
    assert.ok(protocol.includes(flag), `docs/worker-protocol.md lacks ${flag}`);
  }
  for (const flag of ['--token-file', '--tls-cert', '--tls-key', '--tls-ca']) assert.ok(protocol.includes(`\`${flag} FILE`) || protocol.includes(`\`${flag}\``), `docs/worker-protocol.md lacks ${flag}`);
  for (const path of ['workers.link.tokenFile', 'workers.link.tlsCaFile', 'workers.link.tlsCertFile']) assert.ok(protocol.includes(path), `docs/worker-protocol.md lacks ${path}`);
});
