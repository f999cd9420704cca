// The Picker contract, run against every policy (one suite, as hono runs one suite over its routers),
// then what each policy promises on its own.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { LeastLoadedPicker } from '../../src/balancer/least-loaded.ts';
import { modelKey, type PickJob, type Picker, type WorkerView } from '../../src/balancer/picker.ts';
import { POLICY_NAMES, createPicker } from '../../src/balancer/policies.ts';
import { RoundRobinPicker } from '../../src/balancer/round-robin.ts';

const JOB: PickJob = { model: 'simple', version: '1', rows: 8 };
const HOT = new Set([modelKey('simple', '1')]);
const COLD = new Set<string>();

function view(id: string, over: Partial<WorkerView> = {}): WorkerView {
  return Object.freeze({
    id,
    healthy: true,
    freeSlots: 2,
    inflightBatches: 0,
    othersBatches: 0,
    inflightRows: 0,
    secondsPerRow: undefined,
    secondsPerBatch: undefined,
    hotModels: COLD,
    ...over,
  });
}

/** Mutable worker state the pool would keep: each pick reserves a slot, as WorkerPool does. */
class FakeWorkers {
  readonly #state: { id: string; max: number; inflight: number; rows: number; healthy: boolean; hot: ReadonlySet<string> }[];
  constructor(ids: readonly string[], max = 2) {
    this.#state = ids.map((id) => ({ id, max, inflight: 0, rows: 0, healthy: true, hot: COLD }));
  }
  views(): WorkerView[] {
    return this.#state.map((s) => view(s.id, { healthy: s.healthy, freeSlots: s.max - s.inflight, inflightBatches: s.inflight, inflightRows: s.rows, hotModels: s.hot }));
  }
  reserve(id: string, rows: number): void {
    const s = this.#state.find((x) => x.id === id)!;
    s.inflight++;
    s.rows += rows;
  }
  release(id: string, rows: number): void {
    const s = this.#state.find((x) => x.id === id)!;
    s.inflight--;
    s.rows -= rows;
  }
  set(id: string, over: { healthy?: boolean; hot?: ReadonlySet<string> }): void {
    Object.assign(this.#state.find((x) => x.id === id)!, over);
  }
  /** Picks and reserves; returns the id picked, or undefined. */
  pickAndReserve(picker: Picker, job = JOB): string | undefined {
    const picked = picker.pick(this.views(), job);
    if (picked) this.reserve(picked.id, job.rows);
    return picked?.id;
  }
}

function pickerContract(name: string, make: () => Picker): void {
  void describe(`Picker contract: ${name}`, () => {
    void test('an empty candidate list yields undefined', () => {
      assert.equal(make().pick([], JOB), undefined);
    });

    void test('never picks an unhealthy worker or one without a free slot', () => {
      const picker = make();
      const candidates = [view('a', { healthy: false }), view('b', { freeSlots: 0, inflightBatches: 2 }), view('c'), view('d', { healthy: false, hotModels: HOT })];
      for (let i = 0; i < 20; i++) assert.equal(picker.pick(candidates, JOB)?.id, 'c');
    });

    void test('yields undefined when no candidate can take a batch', () => {
      const picker = make();
      assert.equal(picker.pick([view('a', { healthy: false }), view('b', { freeSlots: 0, inflightBatches: 2 })], JOB), undefined);
    });

    void test('returns one of the candidate objects themselves and leaves them untouched', () => {
      const picker = make();
      const candidates = [view('a'), view('b', { hotModels: HOT })];
      const before = JSON.stringify(candidates);
      const picked = picker.pick(candidates, JOB);
      assert.ok(picked !== undefined && candidates.includes(picked));
      assert.equal(JSON.stringify(candidates), before);
    });

    void test('fills every slot of every worker before it yields undefined', () => {
      const picker = make();
      const workers = new FakeWorkers(['a', 'b', 'c'], 2);
      const picked = Array.from({ length: 6 }, () => workers.pickAndReserve(picker));
      assert.deepEqual([...picked].sort(), ['a', 'a', 'b', 'b', 'c', 'c']);
      assert.equal(workers.pickAndReserve(picker), undefined);
      workers.release('b', JOB.rows);
      assert.equal(workers.pickAndReserve(picker), 'b', 'the one freed slot is the only choice');
    });

    void test('keeps working when the candidate list shrinks and grows between picks', () => {
      const picker = make();
      const three = [view('a'), view('b'), view('c')];
      for (let i = 0; i < 5; i++) assert.ok(picker.pick(three, JOB));
      assert.equal(picker.pick([view('z')], JOB)?.id, 'z');
      assert.ok(three.includes(picker.pick(three, JOB)!));
    });

    void test('a worker that comes back healthy is picked again', () => {
      const picker = make();
      const workers = new FakeWorkers(['a', 'b'], 1);
      workers.set('a', { healthy: false });
      assert.equal(workers.pickAndReserve(picker), 'b');
      assert.equal(workers.pickAndReserve(picker), undefined);
      workers.set('a', { healthy: true });
      assert.equal(workers.pickAndReserve(picker), 'a');
    });
  });
}

for (const name of POLICY_NAMES) pickerContract(name, () => createPicker(name));

void test('createPicker names the choices for an unknown policy', () => {
  assert.throws(() => createPicker('random'), /unknown balancer policy 'random': use least-loaded or round-robin/);
  assert.ok(createPicker('least-loaded') instanceof LeastLoadedPicker);
  assert.ok(createPicker('round-robin') instanceof RoundRobinPicker);
});

void describe('least-loaded', () => {
  void test('prefers a worker holding the model hot over idle cold ones', () => {
    const picked = new LeastLoadedPicker().pick([view('a'), view('b', { hotModels: HOT, inflightBatches: 1, freeSlots: 1, inflightRows: 8 }), view('c')], JOB);
    assert.equal(picked?.id, 'b');
  });

  void test('spills to a cold worker only when every hot worker is out of slots', () => {
    const picker = new LeastLoadedPicker();
    const workers = new FakeWorkers(['a', 'b', 'c'], 2);
    workers.set('b', { hot: HOT });
    assert.equal(workers.pickAndReserve(picker), 'b');
    assert.equal(workers.pickAndReserve(picker), 'b');
    assert.equal(workers.pickAndReserve(picker), 'a', 'b is saturated: the first cold worker gets the model');
  });

  void test('sends the batch where the measured outstanding work is smallest', () => {
    const picker = new LeastLoadedPicker();
    // b is four times slower per row; with one batch each in flight, a still finishes first.
    const a = view('a', { hotModels: HOT, inflightBatches: 1, freeSlots: 1, inflightRows: 16, secondsPerRow: 1e-4, secondsPerBatch: 1e-3 });
    const b = view('b', { hotModels: HOT, inflightBatches: 0, freeSlots: 2, inflightRows: 0, secondsPerRow: 4e-3, secondsPerBatch: 1e-3 });
    assert.equal(picker.pick([a, b], JOB)?.id, 'a');
    // With enough queued on a, the slow but idle b wins.
    const busyA = { ...a, inflightRows: 1000 };
    assert.equal(picker.pick([busyA, b], JOB)?.id, 'b');
  });

  void test('an unmeasured worker is costed like the measured average, so its queue still counts', () => {
    const picker = new LeastLoadedPicker();
    const measured = view('a', { secondsPerRow: 1e-3, secondsPerBatch: 1e-3, inflightRows: 8, inflightBatches: 1, freeSlots: 1 });
    const fresh = view('b');
    assert.equal(picker.pick([measured, fresh], JOB)?.id, 'b', 'idle and unmeasured beats busy');
    const freshBusy = view('b', { inflightRows: 64, inflightBatches: 1, freeSlots: 1 });
    assert.equal(picker.pick([measured, freshBusy], JOB)?.id, 'a');
  });

  void test('batches that other gateways keep on a worker count against it as its own do', () => {
    const picker = new LeastLoadedPicker();
    const costs = { hotModels: HOT, secondsPerRow: 1e-4, secondsPerBatch: 1e-3 };
    // Equal own load: a is the earlier candidate, until its host reports three batches of other gateways.
    assert.equal(picker.pick([view('a', costs), view('b', costs)], JOB)?.id, 'a');
    assert.equal(picker.pick([view('a', { ...costs, othersBatches: 3 }), view('b', costs)], JOB)?.id, 'b');
    // Our own batch in flight on b weighs less than three of others' on a.
    assert.equal(picker.pick([view('a', { ...costs, othersBatches: 3 }), view('b', { ...costs, inflightBatches: 1, freeSlots: 1, inflightRows: 4 })], JOB)?.id, 'b');
  });

  void test('ties go to the earlier candidate, deterministically', () => {
    const picker = new LeastLoadedPicker();
    for (let i = 0; i < 10; i++) assert.equal(picker.pick([view('x'), view('y'), view('z')], JOB)?.id, 'x');
  });
});

void describe('round-robin', () => {
  void test('rotates evenly, blind to hot models and measured costs', () => {
    const picker = new RoundRobinPicker();
    const candidates = [view('a', { hotModels: HOT, secondsPerRow: 1e-5, secondsPerBatch: 1e-5 }), view('b', { secondsPerRow: 1, secondsPerBatch: 1 }), view('c')];
    const picked = Array.from({ length: 9 }, () => picker.pick(candidates, JOB)?.id);
    assert.deepEqual(picked, ['a', 'b', 'c', 'a', 'b', 'c', 'a', 'b', 'c']);
  });

  void test('skips a worker that cannot take a batch without losing its place', () => {
    const picker = new RoundRobinPicker();
    const full = [view('a'), view('b', { freeSlots: 0, inflightBatches: 2 }), view('c')];
    assert.deepEqual(Array.from({ length: 4 }, () => picker.pick(full, JOB)?.id), ['a', 'c', 'a', 'c']);
  });
});
