// HTTP/1.1 keep-alive at drain: clients sending on reused connections when sluice begins to shut down
// must get an answer for every request they wrote (200 or 503), never a connection closed under a
// written request. A refused connect after the port closed is unambiguous (nothing was sent) and is
// counted apart.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Agent, request } from 'undici';
import { startTestSluice } from '../helpers/sluice.ts';
import { simpleRequest } from './client.ts';

const LOOPS = 16;

test('a drain under keep-alive load answers every request written on a reused connection', async (t) => {
  const sluice = await startTestSluice(t, ['--drain-timeout-ms', '5000']);
  const agent = new Agent({ connections: LOOPS, pipelining: 1, keepAliveTimeout: 60_000 });
  t.after(() => agent.close());
  const url = `http://127.0.0.1:${sluice.ports.http}/v2/models/simple/infer`;
  const body = JSON.stringify(simpleRequest());
  const counts = { ok: 0, refusedWhileDraining: 0, refusedConnect: 0, lost: [] as string[] };
  let closing: Promise<void> | undefined;
  const loop = async (): Promise<void> => {
    // A client goes on until the server tells it to stop: a 503, or no port to connect to.
    for (let i = 0; i < 100_000; i++) {
      try {
        const res = await request(url, { method: 'POST', body, headers: { 'content-type': 'application/json' }, dispatcher: agent, reset: false });
        await res.body.dump();
        if (res.statusCode === 200) counts.ok++;
        else if (res.statusCode === 503) {
          counts.refusedWhileDraining++;
          return;
        } else counts.lost.push(`HTTP ${res.statusCode}`);
      } catch (e) {
        const code = (e as { code?: string }).code ?? String(e);
        if (code === 'ECONNREFUSED') counts.refusedConnect++;
        else counts.lost.push(`${code}: ${(e as Error).message}`);
        return;
      }
      if (i === 200 && closing === undefined) closing = sluice.close();
    }
  };
  await Promise.all(Array.from({ length: LOOPS }, loop));
  await closing;
  assert.ok(counts.ok > LOOPS * 100, `load ran on reused connections (${counts.ok} answers)`);
  assert.deepEqual(counts.lost, [], 'no request written into a connection that was then closed under it');
  assert.ok(counts.refusedWhileDraining + counts.refusedConnect === LOOPS, `every loop was told to stop: ${JSON.stringify(counts)}`);
});
