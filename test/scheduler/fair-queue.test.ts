// Fair queuing across tenants in one model's queue (queue.ts), then through a real batcher on real
// ONNX Runtime: who is served in which order, and how the queue bound and the expected wait treat a
// tenant that floods.
import assert from 'node:assert/strict';
import { describe, test, type TestContext } from 'node:test';
import { RequestQueue, type QueueNode } from '../../src/scheduler/queue.ts';
import { DynamicBatcher } from '../../src/scheduler/batcher.ts';
import { ModelStatsRecorder } from '../../src/scheduler/stats.ts';
import { validateRequest } from '../../src/scheduler/validate.ts';
import { Metrics } from '../../src/telemetry/metrics.ts';
import type { ModelConfig } from '../../src/core/model.ts';
import type { InferResponse } from '../../src/core/inference.ts';
import { keepAlive, quietLogger, sampleConfig, seedsOfBatch, simpleRequest } from './fixtures.ts';
import { OrtTestExecutor } from './ort-executor.ts';

interface N extends QueueNode {
  readonly id: string;
}

function node(flow: string, id: string, rows = 1): N {
  return { list: -1, prev: undefined, next: undefined, flow, rows, id };
}

const ids = (q: Iterable<N>): string[] => [...q].map((n) => n.id);

/** Serves the queue head by head (as batches of one), returning the order. */
function serveAll(q: RequestQueue<N>): string[] {
  const out: string[] = [];
  for (let n = q.first(); n; n = q.first()) {
    q.take(n);
    out.push(n.id);
  }
  return out;
}

describe('fair queue', () => {
  test('one flow: priority, then arrival, exactly the plain queue order', () => {
    const q = new RequestQueue<N>(3);
    q.push(1, node('', 'b1'));
    q.push(0, node('', 'a1'));
    q.push(2, node('', 'c1'));
    q.push(0, node('', 'a2'));
    q.unshift(1, node('', 'b0'));
    assert.deepEqual(ids(q), ['a1', 'a2', 'b0', 'b1', 'c1']);
    assert.equal(q.sizeOf(0), 2);
    assert.equal(q.rows, 5);
  });

  test('a request whose batch runs again (put back at the head) is not charged to its tenant a second time', () => {
    const run = (retry: boolean): string[] => {
      const q = new RequestQueue<N>(1);
      for (let i = 0; i < 3; i++) q.push(0, node('a', `A${i}`, 4));
      for (let i = 0; i < 3; i++) q.push(0, node('b', `B${i}`, 4));
      const first = q.first()!;
      q.take(first);
      // Its worker failed: the request goes back to the head of its list and is served again.
      if (retry) q.unshift(0, first);
      return [first.id, ...serveAll(q)];
    };
    assert.deepEqual(run(false), ['A0', 'B0', 'A1', 'B1', 'A2', 'B2']);
    // Charged twice, A0's second service would push tenant a behind: B0, B1 before A1.
    assert.deepEqual(run(true), ['A0', 'A0', 'B0', 'A1', 'B1', 'A2', 'B2']);
  });

  test('two backlogged flows of equal weight alternate; 2:1 weights serve two rows to one', () => {
    const q = new RequestQueue<N>(1);
    for (let i = 0; i < 4; i++) q.push(0, node('flood', `F${i}`));
    for (let i = 0; i < 2; i++) q.push(0, node('steady', `S${i}`));
    assert.deepEqual(ids(q), ['F0', 'S0', 'F1', 'S1', 'F2', 'F3'], 'iteration is the service order');
    assert.deepEqual(serveAll(q), ['F0', 'S0', 'F1', 'S1', 'F2', 'F3'], 'and taking follows it');

    const weights: Record<string, number> = { gold: 2, bronze: 1 };
    const w = new RequestQueue<N>(1, (f) => weights[f] ?? 1);
    for (let i = 0; i < 6; i++) w.push(0, node('gold', `G${i}`));
    for (let i = 0; i < 3; i++) w.push(0, node('bronze', `B${i}`));
    assert.deepEqual(serveAll(w), ['G0', 'B0', 'G1', 'G2', 'B1', 'G3', 'G4', 'B2', 'G5']);
  });

  test('shares count rows, not requests', () => {
    const q = new RequestQueue<N>(1);
    q.push(0, node('big', 'L0', 4));
    q.push(0, node('big', 'L1', 4));
    for (let i = 0; i < 8; i++) q.push(0, node('small', `s${i}`));
    assert.deepEqual(serveAll(q), ['L0', 's0', 's1', 's2', 's3', 'L1', 's4', 's5', 's6', 's7']);
  });

  test('an idle flow banks no credit: a tenant that was alone does not owe its past to a newcomer', () => {
    const q = new RequestQueue<N>(1);
    for (let i = 0; i < 50; i++) q.push(0, node('early', `e${i}`));
    for (let i = 0; i < 40; i++) q.take(q.first()!);
    q.push(0, node('late', 'l0'));
    q.push(0, node('late', 'l1'));
    assert.deepEqual(serveAll(q).slice(0, 4), ['l0', 'e40', 'l1', 'e41'], 'the newcomer starts at the current virtual time: neither starved nor given 40 rows of credit');
  });

  test('priorities order requests within a tenant, never across tenants', () => {
    const q = new RequestQueue<N>(2);
    for (let i = 0; i < 3; i++) q.push(0, node('hi', `H${i}`));
    q.push(1, node('lo', 'L0'));
    q.push(1, node('lo', 'L1'));
    q.push(0, node('lo', 'Lurgent'));
    assert.deepEqual(serveAll(q), ['H0', 'Lurgent', 'H1', 'L0', 'H2', 'L1']);
  });

  test('removing the node just yielded while iterating is safe; remove and take report whether it was queued', () => {
    const q = new RequestQueue<N>(1);
    const all = ['a', 'b', 'c', 'd'].map((id, i) => node(i % 2 ? 'x' : 'y', id));
    for (const n of all) q.push(0, n);
    const seen: string[] = [];
    for (const n of q) {
      seen.push(n.id);
      q.remove(n);
    }
    assert.deepEqual(seen.sort(), ['a', 'b', 'c', 'd']);
    assert.equal(q.size, 0);
    assert.equal(q.remove(all[0]!), false);
    assert.equal(q.take(all[0]!), false);
  });

  test('rows ahead and the share of a bound count only what fair share serves first', () => {
    const q = new RequestQueue<N>(1);
    for (let i = 0; i < 100; i++) q.push(0, node('flood', `f${i}`));
    assert.equal(q.rowsAhead('flood', 1), 100, 'alone, a tenant waits for all it queued');
    assert.equal(q.rowsAhead('steady', 1), 1, 'a newcomer waits for one row of the flood, not a hundred');
    q.push(0, node('steady', 's0'));
    q.push(0, node('steady', 's1'));
    assert.equal(q.rowsAhead('steady', 1), 2 + 3, 'its own two rows, and as many of the flood');
    assert.equal(q.shareOf('steady', 100), 50);
    assert.equal(q.shareOf('third', 100), 33);
    assert.equal(q.shareOf('flood', 100), 50);
    assert.equal(q.flowSizeOf('flood', 0), 100);
  });
});

function rig(t: TestContext, config: ModelConfig, weightOf?: (tenant: string) => number): { batcher: DynamicBatcher; ex: OrtTestExecutor } {
  const ex = new OrtTestExecutor({ slots: 1 });
  t.after(() => ex.close());
  keepAlive(t);
  const batcher = new DynamicBatcher({ model: config.name, version: '1', config, executor: ex, metrics: new Metrics({ defaultMetrics: false }), stats: new ModelStatsRecorder(config.name, '1'), logger: quietLogger, ...(weightOf ? { weightOf } : {}) });
  ex.onDrain(() => {
    while (batcher.dispatchOne() === 'sent') {
      // keep sending while there is room
    }
  });
  return { batcher, ex };
}

/** A flood of 12 requests by tenant B (seeds 1..12), then 3 by tenant A (seeds 101..103), behind a held batch. */
async function floodThenSteady(t: TestContext, fair: boolean): Promise<number[]> {
  const config = await sampleConfig('simple', {}, { maxBatchSize: 2 });
  const { batcher, ex } = rig(t, config, fair ? () => 1 : undefined);
  ex.hold();
  const answers: Promise<InferResponse>[] = [];
  const send = (seed: number, tenant: string): void => {
    const r = simpleRequest(seed, 1, { tenant });
    answers.push(batcher.enqueue(r, validateRequest(config, r)));
  };
  for (let i = 1; i <= 12; i++) send(i, 'B');
  for (let i = 101; i <= 103; i++) send(i, 'A');
  ex.release();
  await Promise.all(answers);
  return ex.batches.flatMap((b) => seedsOfBatch(b.job.inputs));
}

test('through a real batcher: with fair queuing a steady tenant is served between the flood, not after it', async (t) => {
  const order = await floodThenSteady(t, true);
  const positions = [101, 102, 103].map((s) => order.indexOf(s));
  assert.ok(positions.every((p) => p >= 0 && p <= 7), `A's requests ran among the first 8 rows: ${order.join(',')}`);
  const unfair = await floodThenSteady(t, false);
  assert.deepEqual(unfair.slice(-3), [101, 102, 103], `without fair queuing A waits behind the whole flood: ${unfair.join(',')}`);
});

test('through a real batcher: a queue full of one tenant still admits another up to its share; the flooder is refused', async (t) => {
  const config = await sampleConfig('simple', { defaultQueuePolicy: { maxQueueSize: 4 } }, { maxBatchSize: 1 });
  const { batcher, ex } = rig(t, config, () => 1);
  ex.hold();
  const accepted: Promise<InferResponse>[] = [];
  const send = (seed: number, tenant: string): Promise<InferResponse> => {
    const r = simpleRequest(seed, 1, { tenant });
    return batcher.enqueue(r, validateRequest(config, r));
  };
  for (let i = 1; i <= 5; i++) accepted.push(send(i, 'B'));
  await assert.rejects(send(6, 'B'), /max_queue_size 4/, 'the flooder holds the whole bound');
  accepted.push(send(101, 'A'), send(102, 'A'));
  await assert.rejects(send(103, 'A'), /max_queue_size 4/, "past its share (2 of 4) A is refused too");
  ex.release();
  const answered = await Promise.all(accepted);
  assert.equal(answered.length, 7, 'everything accepted is answered');
});
