// Rolling updates under load lose no accepted request. A worker host replaced as a StatefulSet pod is
// (SIGTERM, it drains, a new host comes up at the same address): its accepted batches finish, batches
// it refuses while draining go to the other host, and the new host takes batches once healthy. A gateway
// replaced as a Deployment's pod is (taken out of the load balancer's rotation and drained at once,
// with no preStop pause, so requests are still in flight on it; a new gateway joins the rotation):
// every request it had accepted is answered; one that reaches it after the drain began is refused with
// 503 SLUICE_SHUTTING_DOWN before any work, which a load balancer retries on another endpoint (as
// Envoy's retry_on 503 does, and as the test's balancer does once); and the new gateway serves.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Agent, request } from 'undici';
import { SAMPLE_REPOSITORY, startTestSluice } from '../helpers/sluice.ts';
import { spawnWorker } from '../worker/helpers.ts';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const LOOPS = 16;

function simpleBody(k: number): string {
  return JSON.stringify({
    id: `r${k}`,
    inputs: [
      { name: 'INPUT0', shape: [1, 16], datatype: 'INT32', data: Array.from({ length: 16 }, (_, i) => i * k) },
      { name: 'INPUT1', shape: [1, 16], datatype: 'INT32', data: Array.from({ length: 16 }, () => k) },
    ],
  });
}

/** Closed loops of simple requests against whichever gateway `pick` names; every answer is checked. */
interface Load {
  stop(): Promise<void>;
  sent(): number;
  failures: string[];
  /** Requests answered right, by gateway, with when each answer came (performance.now()). */
  answered: Map<string, number[]>;
  /** Requests refused with 503 SLUICE_SHUTTING_DOWN (then retried once through the rotation). */
  refused: number;
}

function load(pick: (k: number) => string, agent: Agent): Load {
  const out: Load = { stop: () => Promise.resolve(), sent: () => next, failures: [], answered: new Map(), refused: 0 };
  let next = 0;
  let stopped = false;
  const one = async (k: number, retry = true): Promise<void> => {
    const base = pick(k);
    try {
      const r = await request(`${base}/v2/models/simple/infer`, { method: 'POST', body: simpleBody(k), headers: { 'content-type': 'application/json' }, dispatcher: agent });
      const json = (await r.body.json()) as { id?: string; outputs?: { name: string; data: number[] }[]; error?: string; code?: string };
      const sum = json.outputs?.find((o) => o.name === 'OUTPUT0')?.data;
      if (r.statusCode === 503 && json.code === 'SLUICE_SHUTTING_DOWN' && retry) {
        out.refused++;
        await one(k, false);
      } else if (r.statusCode !== 200) out.failures.push(`request ${k} to ${base}: ${r.statusCode} ${json.error ?? ''}`);
      else if (json.id !== `r${k}` || JSON.stringify(sum) !== JSON.stringify(Array.from({ length: 16 }, (_, i) => i * k + k))) out.failures.push(`request ${k}: wrong answer`);
      else out.answered.set(base, [...(out.answered.get(base) ?? []), performance.now()]);
    } catch (e) {
      out.failures.push(`request ${k} to ${base}: ${(e as Error).message}`);
    }
  };
  // Bounded: at most 20,000 requests whatever happens.
  const loops = Array.from({ length: LOOPS }, async () => {
    while (!stopped && next < 20_000) await one(next++);
  });
  out.stop = async () => {
    stopped = true;
    await Promise.all(loops);
  };
  return out;
}

test('a worker host replaced under load: no request fails, the new host at the same address takes batches', { timeout: 120_000 }, async (t) => {
  const hostArgs = ['--model-repository', SAMPLE_REPOSITORY, '--load-model', 'simple', '--intra-op-threads', '1'];
  const first = await spawnWorker(t, ['--listen', '127.0.0.1:0', ...hostArgs]);
  const other = await spawnWorker(t, ['--listen', '127.0.0.1:0', ...hostArgs]);
  const urls = [first.address, other.address].map((a) => `http://${a}`);
  const sluice = await startTestSluice(t, ['--workers', '0', ...urls.flatMap((u) => ['--worker', u]), '--model-control-mode', 'explicit', '--load-model', 'simple']);
  const agent = new Agent({ connections: LOOPS });
  t.after(() => agent.close());
  const gateway = `http://127.0.0.1:${sluice.ports.http}`;
  const running = load(() => gateway, agent);
  await sleep(500);
  const batchesOf = (url: string): number => sluice.workers().find((w) => w.id === url || w.address === url || w.address === url.slice(7))?.completedBatches ?? -1;
  assert.ok(batchesOf(urls[0]!) > 0, `the first host served before its update (${JSON.stringify(sluice.workers())})`);
  // The pod's update: SIGTERM, the host drains and exits; its replacement listens on the same address.
  first.child.kill('SIGTERM');
  assert.equal(await first.exited, 0, 'the old host drained and exited cleanly');
  await sleep(300);
  const replacement = await spawnWorker(t, ['--listen', first.address, ...hostArgs]);
  assert.equal(replacement.address, first.address);
  const before = batchesOf(urls[0]!);
  let after = before;
  for (let i = 0; i < 100 && after <= before + 5; i++) {
    await sleep(100);
    after = batchesOf(urls[0]!);
  }
  await running.stop();
  assert.deepEqual(running.failures.slice(0, 5), [], `no request failed (${running.failures.length} of ${running.sent()})`);
  assert.ok(after > before + 5, `the new host took batches (${before} -> ${after})`);
  assert.equal(running.refused, 0, 'the gateway never answered shutting-down');
  t.diagnostic(`${running.sent()} requests, 0 failed; batches on the replaced address ${before} -> ${after}`);
});

test('a gateway replaced under load: taken out of rotation and drained with requests in flight, every request is answered, and the new gateway serves', { timeout: 120_000 }, async (t) => {
  const flags = ['--drain-timeout-ms', '10000'];
  const old = await startTestSluice(t, flags);
  const stays = await startTestSluice(t, flags);
  const url = (s: { ports: { http: number } }): string => `http://127.0.0.1:${s.ports.http}`;
  // The load balancer's endpoints: round robin over the gateways in rotation.
  let rotation = [url(old), url(stays)];
  const agent = new Agent({ connections: LOOPS * 2, keepAliveTimeout: 60_000 });
  t.after(() => agent.close());
  const running = load((k) => rotation[k % rotation.length]!, agent);
  await sleep(500);
  assert.ok((running.answered.get(url(old))?.length ?? 0) > 0, 'the old gateway served before its update');
  // Endpoint removal and SIGTERM at once (no preStop pause): requests already sent to the old gateway
  // are in flight while it drains.
  rotation = [url(stays)];
  const drainStarted = performance.now();
  await old.close();
  const replacement = await startTestSluice(t, flags);
  rotation = [url(stays), url(replacement)];
  await sleep(700);
  await running.stop();
  assert.deepEqual(running.failures.slice(0, 5), [], `no request failed (${running.failures.length} of ${running.sent()})`);
  const duringDrain = (running.answered.get(url(old)) ?? []).filter((at) => at >= drainStarted).length;
  assert.ok(duringDrain > 0, 'requests were in flight on the old gateway when its drain began, and were answered');
  assert.ok((running.answered.get(url(replacement))?.length ?? 0) > 0, 'the new gateway served');
  t.diagnostic(`${running.sent()} requests, 0 failed; the old gateway answered ${duringDrain} after its drain began and refused ${running.refused} (retried elsewhere); the new gateway answered ${running.answered.get(url(replacement))?.length}`);
});
