// One client's bad data fails only that client, end to end: bad requests mixed into concurrent good
// ones over REST; zero good requests fail (src/scheduler/bisect.ts).
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { tempDir } from '../access/fixture.ts';
import { SAMPLE_REPOSITORY, startTestSluice } from '../helpers/sluice.ts';
import { h2Client } from './client.ts';

const GOOD = 300;
const BAD = 15;

function body(seed: number, bad: boolean): string {
  // A word where simple_string's Cast expects a number makes ONNX Runtime fail the whole batch.
  const a = Array.from({ length: 16 }, (_, i) => (bad && i === 5 ? 'five' : String(seed + i)));
  return JSON.stringify({ inputs: [{ name: 'INPUT0', shape: [1, 16], datatype: 'BYTES', data: a }, { name: 'INPUT1', shape: [1, 16], datatype: 'BYTES', data: a.map(() => '2') }] });
}

void test('bad data mixed into concurrent traffic fails only the bad requests; every good one is answered right', async (t) => {
  // The sample model without its expected-wait admission: all 315 requests arrive at once, and on a
  // loaded machine (the bisections' extra runs included) a good request could be shed with 503 by
  // design; this test is about isolation, so every good request must reach the model.
  const repo = tempDir(t);
  mkdirSync(join(repo, 'simple_string', '1'), { recursive: true });
  copyFileSync(join(SAMPLE_REPOSITORY, 'simple_string', '1', 'model.onnx'), join(repo, 'simple_string', '1', 'model.onnx'));
  writeFileSync(join(repo, 'simple_string', 'config.pbtxt'), 'name: "simple_string"\nmax_batch_size: 32\ndynamic_batching { default_queue_policy { max_expected_wait_microseconds: 0 } }\n');
  const sluice = await startTestSluice(t, ['--model-repository', repo]);
  // One HTTP/2 session: every request is in flight at once, so they queue and batch together.
  const client = h2Client(`http://127.0.0.1:${sluice.ports.http}`);
  t.after(() => client.close());
  const plan = Array.from({ length: GOOD + BAD }, (_, i) => ({ seed: i * 100, bad: i % Math.floor((GOOD + BAD) / BAD) === 7 }));
  const results = await Promise.all(plan.map((p) => client.call('POST', '/v2/models/simple_string/infer', { body: body(p.seed, p.bad) })));
  let rejected = 0;
  results.forEach((res, i) => {
    const { seed, bad } = plan[i]!;
    if (!bad) {
      assert.equal(res.status, 200, `good request ${i}: ${res.text()}`);
      const sum = res.json().outputs.find((o: { name: string }) => o.name === 'OUTPUT0');
      assert.deepEqual(sum.data.map(Number), Array.from({ length: 16 }, (_, k) => seed + k + 2));
      return;
    }
    // A bad request batched with good ones is found and answered 400; one that ran alone cannot be
    // told from a broken model and keeps the inference error.
    assert.ok(res.status === 400 || res.status === 500, `bad request ${i}: ${res.status} ${res.text()}`);
    if (res.status === 400) {
      assert.match(res.json().error, /model 'simple_string' could not run this request's data/);
      rejected++;
    }
  });
  assert.equal(plan.filter((p) => p.bad).length, BAD);
  assert.ok(rejected > 0, 'at least one bad request was batched with good ones and singled out');
});
