// `sluice loadtest --header` against a sluice with keys: every protocol carries the key, and a run
// without it is refused, not silently measured as fast errors.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseOptions, UsageError } from '../../loadtest/options.ts';
import { runLoadtest } from '../../loadtest/run.ts';
import { startTestSluice } from '../helpers/sluice.ts';
import { keys, tempDir } from './fixture.ts';

test('--header parsing: Name: value pairs, names lower-cased; the tool\'s own headers are refused', () => {
  const o = parseOptions(['--model', 'simple', '--header', 'Authorization: Bearer abc', '--header', 'X-Team:  search ']);
  assert.deepEqual(o.headers, { authorization: 'Bearer abc', 'x-team': 'search' });
  assert.throws(() => parseOptions(['--model', 'simple', '--header', 'no colon']), (e: Error) => e instanceof UsageError && /expected 'Name: value'/.test(e.message));
  assert.throws(() => parseOptions(['--model', 'simple', '--header', 'Content-Type: text/plain']), /set by the tool/);
});

test('sluice loadtest --header drives a server that requires keys, over REST and gRPC', async (t) => {
  const { k } = keys('k');
  const file = join(tempDir(t), 'auth.yaml');
  writeFileSync(file, `tenants:\n  - name: bench\n    keys: [{ sha256: ${k.sha256}, scopes: [infer, metadata] }]\n`);
  const sluice = await startTestSluice(t, ['--auth-config', file]);
  const base = ['--url', `http://127.0.0.1:${sluice.ports.http}`, '--grpc-url', `127.0.0.1:${sluice.ports.grpc}`, '--no-metrics', '--model', 'simple', '--rate', '50', '--duration', '600ms', '--warmup', '200ms', '--quiet'];
  for (const protocol of ['json', 'binary', 'grpc']) {
    const run = await runLoadtest(parseOptions([...base, '--protocol', protocol, '--header', `Authorization: Bearer ${k.key}`]));
    const step = run.report.steps[0]!;
    assert.ok(step.ok > 0 && step.errorCount === 0, `${protocol}: ${step.ok} answered, errors ${JSON.stringify(step.errors)}`);
    assert.ok(step.checked > 0 && step.wrong === 0, `${protocol}: answers checked`);
  }
  await assert.rejects(runLoadtest(parseOptions([...base, '--protocol', 'json'])), /HTTP 401/, 'without the key the metadata is refused and the run stops');
});
