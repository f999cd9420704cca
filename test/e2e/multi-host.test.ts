// Several hosts, made by the test itself: network namespaces joined by veth pairs to a bridge, one
// worker host in each at its own address, a real DNS server (dnsmasq) on the bridge naming them, and a
// gateway in the test's own namespace discovering them. Under a steady load: a third host added to DNS
// starts getting batches, one removed from DNS stops getting them, one whose link is cut is ejected and
// its batches fail over; no request fails at any point.
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { test, type TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { request } from 'undici';
import { DISCOVERY_NAME, dnsmasqMissing, startDnsmasq } from '../helpers/dnsmasq.ts';
import { SAMPLE_REPOSITORY, startTestSluice } from '../helpers/sluice.ts';
import { simpleRequest } from '../http/client.ts';

const WORKER_MAIN = fileURLToPath(new URL('../../src/worker/main.ts', import.meta.url));
const TAG = `sl${process.pid % 100000}`;
const SUBNET = `10.231.${process.pid % 250}`;
const BRIDGE = `${TAG}b`;
const PORT = 9000;

function ip(...args: string[]): void {
  execFileSync('ip', args, { stdio: 'pipe' });
}

/** Why this machine cannot make network namespaces for the test (not root, no ip), or undefined. */
function netnsMissing(): string | undefined {
  if (dnsmasqMissing) return dnsmasqMissing;
  const probe = `${TAG}p`;
  try {
    ip('netns', 'add', probe);
    ip('netns', 'del', probe);
    return undefined;
  } catch (e) {
    return `cannot create network namespaces here (${(e as Error).message.split('\n')[0]})`;
  }
}

const address = (i: number): string => `${SUBNET}.${10 + i}`;
const workerUrl = (i: number): string => `http://${address(i)}:${PORT}`;

/** The bridge in the test's namespace, at SUBNET.1. */
function makeBridge(t: TestContext): void {
  ip('link', 'add', BRIDGE, 'type', 'bridge');
  t.after(() => ip('link', 'del', BRIDGE));
  ip('addr', 'add', `${SUBNET}.1/24`, 'dev', BRIDGE);
  ip('link', 'set', BRIDGE, 'up');
}

/** Namespace i with a veth to the bridge, at address(i); returns the host side's name (to cut the link). */
function makeHost(t: TestContext, i: number): { ns: string; hostSide: string } {
  const ns = `${TAG}w${i}`;
  const hostSide = `${TAG}h${i}`;
  const nsSide = `${TAG}n${i}`;
  ip('netns', 'add', ns);
  t.after(() => ip('netns', 'del', ns));
  ip('link', 'add', hostSide, 'type', 'veth', 'peer', 'name', nsSide);
  // The kernel frees a deleted namespace (and the veth in it) only once nothing refers to it: the pair
  // is deleted by name, so that nothing of the test outlives it.
  t.after(() => {
    try {
      ip('link', 'del', hostSide);
    } catch {
      // gone with its namespace already
    }
  });
  ip('link', 'set', nsSide, 'netns', ns);
  ip('link', 'set', hostSide, 'master', BRIDGE);
  ip('link', 'set', hostSide, 'up');
  ip('-n', ns, 'addr', 'add', `${address(i)}/24`, 'dev', nsSide);
  ip('-n', ns, 'link', 'set', nsSide, 'up');
  ip('-n', ns, 'link', 'set', 'lo', 'up');
  return { ns, hostSide };
}

/** `sluice worker` inside namespace `ns`, listening on its own address; resolves once it listens. */
async function startWorkerIn(t: TestContext, ns: string, i: number): Promise<ChildProcess> {
  const child = spawn('ip', ['netns', 'exec', ns, process.execPath, '--import', 'tsx', WORKER_MAIN, '--listen', `${address(i)}:${PORT}`, '--model-repository', SAMPLE_REPOSITORY,
    '--intra-op-threads', '1', '--id', `w${i}`, '--log-level', 'info'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  t.after(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      await exited;
    }
  });
  let out = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`worker w${i} did not listen within 30 s: ${out}`)), 30_000);
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('"worker listening"')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once('exit', (code) => reject(new Error(`worker w${i} exited (${code}) before listening: ${out}`)));
  });
  return child;
}

test('hosts in network namespaces found by DNS: one added gets batches, one removed and one cut lose no request', { skip: netnsMissing() ?? false, timeout: 180_000 }, async (t) => {
  makeBridge(t);
  const hosts = [1, 2, 3].map((i) => makeHost(t, i));
  await Promise.all([startWorkerIn(t, hosts[0]!.ns, 1), startWorkerIn(t, hosts[1]!.ns, 2)]);
  const dns = await startDnsmasq(t, [address(1), address(2)], `${SUBNET}.1`);
  const sluice = await startTestSluice(t, ['--workers', '0', '--worker-discovery', `dns://${dns.address}:${dns.port}/${DISCOVERY_NAME}:${PORT}`,
    '--worker-discovery-interval-ms', '200', '--model-control-mode', 'explicit', '--load-model', 'simple', '--log-level', 'error']);
  const completed = (i: number): number => sluice.workers().find((w) => w.id === workerUrl(i))?.completedBatches ?? 0;
  const present = (i: number): boolean => sluice.workers().some((w) => w.id === workerUrl(i));
  const healthy = (i: number): boolean => sluice.workers().some((w) => w.id === workerUrl(i) && w.healthy);

  // A steady closed loop of 8 clients for the whole test; every answer must be a right one.
  const body = JSON.stringify(simpleRequest());
  const failures: string[] = [];
  let answered = 0;
  let running = true;
  const client = async (): Promise<void> => {
    while (running) {
      try {
        const res = await request(`http://127.0.0.1:${sluice.ports.http}/v2/models/simple/infer`, { method: 'POST', body, headers: { 'content-type': 'application/json' } });
        const text = await res.body.text();
        if (res.statusCode !== 200) failures.push(`${res.statusCode} ${text.slice(0, 200)}`);
        else if ((JSON.parse(text) as { outputs: { name: string; data: number[] }[] }).outputs.find((o) => o.name === 'OUTPUT0')!.data[15] !== 16) failures.push(`wrong answer ${text.slice(0, 200)}`);
        else answered++;
      } catch (e) {
        failures.push(String(e));
      }
    }
  };
  const load = Promise.all(Array.from({ length: 8 }, client));
  const served = { w2: 0 };
  const waitFor = async (what: string, check: () => boolean, ms = 20_000): Promise<void> => {
    const deadline = Date.now() + ms;
    while (!check()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; workers: ${JSON.stringify(sluice.workers().map((w) => [w.id, w.healthy, w.downReason, w.completedBatches]))}`);
      await sleep(50);
    }
  };
  try {
    await waitFor('both hosts serving', () => completed(1) > 0 && completed(2) > 0);

    // A third host appears in DNS: it starts getting batches.
    await startWorkerIn(t, hosts[2]!.ns, 3);
    await dns.set([address(1), address(2), address(3)]);
    await waitFor('the third host serving', () => completed(3) > 10);

    // The second leaves DNS: it drains and is removed, and the others carry the load.
    served.w2 = completed(2);
    await dns.set([address(1), address(3)]);
    await waitFor('the second host removed', () => !present(2));
    const afterRemoval = answered;
    await waitFor('load served without it', () => answered > afterRemoval + 200);

    // The first host's link is cut (still in DNS): it is ejected, its batches fail over to the third.
    const before3 = completed(3);
    ip('link', 'set', hosts[0]!.hostSide, 'down');
    await waitFor('the cut host ejected', () => !healthy(1), 30_000);
    const afterCut = answered;
    await waitFor('load served after the cut', () => answered > afterCut + 200 && completed(3) > before3);
  } finally {
    running = false;
    await load;
  }
  assert.deepEqual(failures.slice(0, 5), [], `${failures.length} failed requests of ${answered + failures.length}`);
  assert.ok(served.w2 > 0, 'the second host served before it left DNS');
  t.diagnostic(`${answered} requests answered; batches: w1 ${completed(1)}, w2 ${served.w2} (before it left DNS), w3 ${completed(3)}`);
});
