// Worker discovery by DNS against a real DNS server (dnsmasq on a loopback port, answering from a hosts
// file it re-reads on SIGHUP) and real worker hosts on loopback addresses 127.0.0.2-4, one port for all,
// as the pods behind a headless Service: workers join once healthy, a vanished one drains (its batch
// in flight finishes) and is removed, a name without records drains every worker, a DNS that cannot be
// asked changes nothing.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseDiscovery } from '../../src/config/worker-discovery.ts';
import { loadConfig, ConfigError } from '../../src/config/load.ts';
import { int32s, peek, runBatches, simpleJob, startPool, startRemoteWorker, waitFor, execute } from './support.ts';
import { makeTestPki } from '../helpers/certs.ts';
import { DISCOVERY_NAME, dnsmasqMissing, freePort, startDnsmasq } from '../helpers/dnsmasq.ts';
import { SAMPLE_REPOSITORY, spawnWorker, tempDir } from '../worker/helpers.ts';

const NAME = DISCOVERY_NAME;

void test('discovery URLs: dns://[SERVER[:PORT]]/NAME:PORT, each mistake named', () => {
  assert.deepEqual(parseDiscovery('dns:///sluice-worker.sluice.svc.cluster.local:9000'), { server: undefined, name: 'sluice-worker.sluice.svc.cluster.local', port: 9000 });
  assert.deepEqual(parseDiscovery('dns://127.0.0.1:5353/workers.test:9000'), { server: '127.0.0.1:5353', name: 'workers.test', port: 9000 });
  assert.deepEqual(parseDiscovery('dns://[::1]:53/w:1'), { server: '[::1]:53', name: 'w', port: 1 });
  assert.throws(() => parseDiscovery('http://workers:9000'), /is not dns:\/\/\[SERVER\[:PORT\]\]\/NAME:PORT/);
  assert.throws(() => parseDiscovery('dns:///workers'), /is not dns:/);
  assert.throws(() => parseDiscovery('dns:///workers:70000'), /port 70000 is not 1-65535/);
  assert.throws(() => parseDiscovery('dns:///bad_name!:9000'), /is not dns:|is not a DNS name/);
  assert.throws(() => parseDiscovery('dns://resolver.example/workers:9000'), /DNS server 'resolver.example' must be an IP address/);
  assert.throws(() => loadConfig({ argv: ['--worker-discovery', 'dns:///w'], env: {} }), (e: unknown) => e instanceof ConfigError && /--worker-discovery: 'dns:\/\/\/w' is not/.test(e.message));
  // Discovery alone is enough for --workers 0.
  assert.equal(loadConfig({ argv: ['--workers', '0', '--worker-discovery', 'dns:///w:9000'], env: {} }).workers.discovery, 'dns:///w:9000');
});

void test('dns:// discovery: workers join and drain as the name\'s records change; a DNS outage changes nothing', { skip: dnsmasqMissing ?? false, timeout: 90_000 }, async (t) => {
  const port = await freePort('127.0.0.2');
  const [w2, w3] = await Promise.all([startRemoteWorker(t, 'w2', `127.0.0.2:${port}`), startRemoteWorker(t, 'w3', `127.0.0.3:${port}`)]);
  const dns = await startDnsmasq(t, ['127.0.0.2', '127.0.0.3']);
  const { pool } = await startPool(t, ['--workers', '0', '--worker-discovery', `dns://127.0.0.1:${dns.port}/${NAME}:${port}`, '--worker-discovery-interval-ms', '100']);
  const url = (host: string): string => `http://${host}:${port}`;
  const ids = (): string[] => pool.workers().map((w) => w.id).sort();
  const healthyIds = (): string[] => pool.workers().filter((w) => w.healthy).map((w) => w.id).sort();

  // Found at start, probed before the pool is handed out: both serve at once.
  assert.deepEqual(healthyIds(), [url('127.0.0.2'), url('127.0.0.3')]);
  assert.deepEqual(new Set(await runBatches(pool, 40, 4)), new Set([url('127.0.0.2'), url('127.0.0.3')]));

  // 127.0.0.3 leaves the name while batches run on it (its process paused, so they stay in flight):
  // it takes nothing new, the batches finish there, then it is removed.
  w3.child.kill('SIGSTOP');
  const running = Array.from({ length: 6 }, (_, i) => execute(pool, simpleJob(2, 100 + i)));
  await waitFor('a batch in flight on 127.0.0.3', () => (pool.workers().find((w) => w.id === url('127.0.0.3'))?.inflightBatches ?? 0) > 0, 5_000);
  await dns.set(['127.0.0.2']);
  await waitFor('127.0.0.3 draining', () => pool.workers().find((w) => w.id === url('127.0.0.3'))?.downReason === 'no longer discovered; draining', 5_000);
  assert.ok(ids().includes(url('127.0.0.3')), 'kept while its batches run');
  assert.deepEqual(healthyIds(), [url('127.0.0.2')]);
  w3.child.kill('SIGCONT');
  const results = await Promise.all(running);
  results.forEach((r, i) => assert.equal(int32s(r.outputs[0]!.data)[0], 100 + i, `batch ${i} answered right`));
  assert.ok(results.some((r) => r.worker === url('127.0.0.3')), 'the batches in flight on the drained worker finished there');
  await waitFor('127.0.0.3 removed', () => !ids().includes(url('127.0.0.3')), 5_000);
  assert.deepEqual(new Set(await runBatches(pool, 20, 4)), new Set([url('127.0.0.2')]));

  // A new pod: it joins once its health probe answers.
  await startRemoteWorker(t, 'w4', `127.0.0.4:${port}`);
  await dns.set(['127.0.0.2', '127.0.0.4']);
  await waitFor('127.0.0.4 joined', () => healthyIds().includes(url('127.0.0.4')), 5_000);
  assert.ok((await runBatches(pool, 40, 4)).includes(url('127.0.0.4')));

  // No records (NXDOMAIN): every worker drains, and the pool says so instead of waiting.
  await dns.set([]);
  await waitFor('every worker drained', () => pool.workers().length === 0, 5_000);
  assert.equal(peek(pool), 'unavailable');
  await dns.set(['127.0.0.2']);
  await waitFor('127.0.0.2 back', () => healthyIds().includes(url('127.0.0.2')), 5_000);

  // The DNS server gone: resolution fails, the workers known stay and serve.
  await dns.stop();
  await new Promise((resolve) => setTimeout(resolve, 600));
  assert.deepEqual(healthyIds(), [url('127.0.0.2')]);
  assert.deepEqual(new Set(await runBatches(pool, 10, 2)), new Set([url('127.0.0.2')]));
  assert.equal(w2.child.exitCode, null);
});

void test('dns:// discovery over TLS: a host dialled by its address is verified against the discovered name', { skip: dnsmasqMissing ?? false, timeout: 60_000 }, async (t) => {
  const pki = makeTestPki(tempDir(t));
  if (!pki) {
    t.skip('openssl is not installed');
    return;
  }
  const port = await freePort('127.0.0.2');
  // Its certificate names workers.sluice.test and no address: only a client that checks the name accepts it.
  await spawnWorker(t, ['--listen', `127.0.0.2:${port}`, '--model-repository', SAMPLE_REPOSITORY, '--intra-op-threads', '1', '--tls-cert', pki.namedCert, '--tls-key', pki.namedKey]);
  const dns = await startDnsmasq(t, ['127.0.0.2']);
  const { pool } = await startPool(t, ['--workers', '0', '--worker-discovery', `dns://127.0.0.1:${dns.port}/${NAME}:${port}`, '--worker-tls-ca', pki.caCert]);
  assert.deepEqual(pool.workers().map((w) => [w.id, w.healthy, w.downReason]), [[`https://127.0.0.2:${port}`, true, '']]);
  const r = await execute(pool, simpleJob(1, 7));
  assert.equal(int32s(r.outputs[0]!.data)[0], 7);
});
