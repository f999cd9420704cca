import { test } from 'node:test';
import { startTestSluice } from '../helpers/sluice.ts';
import { h1Client, h2Client } from './client.ts';
import { endpointSuite } from './endpoint-suite.ts';

test('REST endpoints over HTTP/1.1 and h2c on one port', async (t) => {
  const sluice = await startTestSluice(t, ['--log-level', 'error']);
  const origin = `http://127.0.0.1:${sluice.ports.http}`;
  for (const client of [h1Client(origin), h2Client(origin)]) {
    t.after(() => client.close());
    await t.test(client.name, (t2) => endpointSuite(t2, client));
  }
});
