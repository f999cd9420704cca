// Clients cannot flood the log: the same client-caused error in a loop writes a few lines per code,
// below error level, and the next line written counts the ones left out (telemetry/log-budget.ts).
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { startSluice } from '../../src/main.ts';
import { DEFAULT_LOG_BUDGET } from '../../src/telemetry/log-budget.ts';
import { createLogger } from '../../src/telemetry/logger.ts';
import { testConfig } from '../helpers/sluice.ts';
import { h1Client } from './client.ts';

void test('200 requests for an unimplemented feature write at most the budget of warn lines, none at error', async (t) => {
  const lines: { level: number; code?: string; suppressed?: number }[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString('utf8').split('\n')) if (l.trim() !== '') lines.push(JSON.parse(l) as { level: number });
      done();
    },
  });
  const config = testConfig(['--log-level', 'warn']);
  const sluice = await startSluice(config, { logger: createLogger('warn', sink) });
  t.after(() => sluice.close());
  const client = h1Client(`http://127.0.0.1:${sluice.ports.http}`);
  t.after(() => client.close());
  // CUDA shared memory: a feature sluice does not have, asked for again and again.
  const body = JSON.stringify({ raw_handle: { b64: 'AA==' }, device_id: 0, byte_size: 16 });
  for (let i = 0; i < 200; i++) {
    const res = await client.call('POST', '/v2/cudasharedmemory/region/r0/register', { body });
    assert.equal(res.status, 501);
  }
  const mine = lines.filter((l) => l.code === 'SLUICE_UNIMPLEMENTED');
  assert.ok(mine.length >= 1 && mine.length <= DEFAULT_LOG_BUDGET.perWindow, `${mine.length} lines for 200 requests`);
  assert.ok(mine.every((l) => l.level === 40), 'a feature the client asked for is not a server error');
  assert.equal(lines.filter((l) => l.level >= 50).length, 0, 'nothing at error level');
});
