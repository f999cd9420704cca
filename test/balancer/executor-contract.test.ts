// The slot lease (src/core/execution.ts Executor), one suite for every executor: the pool over inline
// workers (ONNX Runtime on the event loop), over thread workers, over worker processes, and the
// scheduler tests' in-process executor. Plus what only thread workers do: a thread that dies fails its
// batch as BatchNotRun and is replaced.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { BatchNotRun, type Executor } from '../../src/core/execution.ts';
import { OrtTestExecutor } from '../scheduler/ort-executor.ts';
import { tempDir } from '../worker/helpers.ts';
import { ELEM, encodeModel, node, type ValueSpec } from '../../models/onnx-builder.ts';
import { UploadStore } from '../../src/repository/uploads.ts';

const io = (name: string): ValueSpec => ({ name, elemType: ELEM.INT32, dims: ['batch', 16] });
import { execute, int32s, peek, simpleJob, startPool } from './support.ts';

interface Subject {
  readonly name: string;
  /** An executor with exactly two slots, able to run `simple`; files uploaded with loads come from `uploads`. */
  start(t: TestContext, uploads: UploadStore): Promise<Executor>;
  /** Whether it runs uploaded files; one that does not must refuse a job naming them. */
  readonly takesUploads: boolean;
}

const pool = (isolation: string) => async (t: TestContext, uploads: UploadStore): Promise<Executor> =>
  (await startPool(t, ['--workers', '1', '--worker-isolation', isolation, '--worker-max-inflight', '2'], undefined, uploads)).pool;

const SUBJECTS: readonly Subject[] = [
  { name: 'WorkerPool, inline worker', start: pool('inline'), takesUploads: true },
  { name: 'WorkerPool, thread worker', start: pool('thread'), takesUploads: true },
  { name: 'WorkerPool, worker process', start: pool('process'), takesUploads: true },
  {
    name: 'OrtTestExecutor (scheduler tests)',
    takesUploads: false,
    start: (t) => {
      const e = new OrtTestExecutor({ slots: 2 });
      t.after(() => e.close());
      return Promise.resolve(e);
    },
  },
];

for (const subject of SUBJECTS) {
  void test(`Executor contract: ${subject.name}`, async (t) => {
    const uploads = new UploadStore({ budgetBytes: 1 << 20, parent: tempDir(t) });
    t.after(() => uploads.close());
    const executor = await subject.start(t, uploads);
    await execute(executor, simpleJob(1)); // the model is hot

    await t.test('a slot is reserved synchronously; with every slot taken the answer is busy', () => {
      const a = executor.tryAcquire(simpleJob(2));
      const b = executor.tryAcquire(simpleJob(2));
      assert.equal(a.kind, 'slot');
      assert.equal(b.kind, 'slot');
      assert.equal(peek(executor), 'busy');
      if (a.kind === 'slot') a.slot.release();
      assert.equal(peek(executor), 'slot', 'a released slot is free again at once');
      if (b.kind === 'slot') b.slot.release();
    });

    await t.test('the drain signal comes after a slot frees, never from inside release or run', async () => {
      let drains = 0;
      executor.onDrain(() => drains++);
      const got = executor.tryAcquire(simpleJob(1));
      assert.equal(got.kind, 'slot');
      if (got.kind !== 'slot') return;
      got.slot.release();
      assert.equal(drains, 0, 'not synchronously inside release()');
      await new Promise((resolve) => setImmediate(resolve));
      assert.ok(drains >= 1, 'signalled once the caller has returned');
      const before = drains;
      const again = executor.tryAcquire(simpleJob(3, 40));
      assert.equal(again.kind, 'slot');
      if (again.kind !== 'slot') return;
      const running = again.slot.run(simpleJob(3, 40));
      assert.equal(drains, before, 'not synchronously inside run()');
      const r = await running;
      await new Promise((resolve) => setImmediate(resolve));
      assert.ok(drains > before, 'signalled when the batch settled');
      assert.deepEqual(r.outputs[0]!.shape, [3, 16]);
      assert.equal(int32s(r.outputs[0]!.data)[16], 41, 'row 1 of OUTPUT0 = (40 + 1) + 0');
    });

    await t.test('a batch of a request\'s own tensors (not owned) is read, never moved or changed: a retry re-reads it', async () => {
      const job = { ...simpleJob(2, 9), inputsOwned: false };
      const before = job.inputs.map((x) => Uint8Array.from(x.data as Uint8Array));
      const first = await execute(executor, job);
      job.inputs.forEach((x, i) => assert.deepEqual(Uint8Array.from(x.data as Uint8Array), before[i], `input ${x.name} intact after the run`));
      const second = await execute(executor, job);
      assert.deepEqual(int32s(second.outputs[0]!.data), int32s(first.outputs[0]!.data));
    });

    await t.test('a job naming an upload\'s source runs those files or fails; never the repository file of that name', async () => {
      const mul = encodeModel({
        name: 'mul', doc: 'OUTPUT0 = INPUT0 * INPUT1', inputs: [io('INPUT0'), io('INPUT1')], outputs: [io('OUTPUT0'), io('OUTPUT1')],
        nodes: [node('Mul', ['INPUT0', 'INPUT1'], ['OUTPUT0']), node('Sub', ['INPUT0', 'INPUT1'], ['OUTPUT1'])],
      });
      const { sources } = await uploads.stage('simple', '{"name": "simple", "max_batch_size": 8}', new Map([['1', [{ path: 'model.onnx', data: mul }]]]));
      const source = sources.get('1')!;
      const job = { ...simpleJob(1, 3), source };
      if (subject.takesUploads) {
        await executor.load('simple', '1', source);
        assert.deepEqual(int32s((await execute(executor, job)).outputs[0]!.data), Array.from({ length: 16 }, (_, i) => 3 * i), 'INPUT0 * INPUT1');
      } else {
        await assert.rejects(executor.load('simple', '1', source), { code: 'SLUICE_UPLOAD_MISSING' });
        await assert.rejects(execute(executor, job), { code: 'SLUICE_UPLOAD_MISSING' });
      }
      assert.equal(int32s((await execute(executor, simpleJob(1, 3))).outputs[0]!.data)[1], 4, 'without a source, the repository file: 3 + 1');
      await executor.unload('simple', '1', source);
    });

    await t.test('a slot runs one batch: a second run() is refused, release() after run() changes nothing', async () => {
      const got = executor.tryAcquire(simpleJob(1));
      assert.equal(got.kind, 'slot');
      if (got.kind !== 'slot') return;
      const first = got.slot.run(simpleJob(1, 7));
      await assert.rejects(got.slot.run(simpleJob(1, 8)), /twice/);
      got.slot.release();
      assert.equal((await first).outputs.length, 2);
      await new Promise((resolve) => setImmediate(resolve));
      assert.equal(peek(executor), 'slot');
    });

    await t.test('model errors are the batch\'s own (a SluiceError), not BatchNotRun', async () => {
      const bad = { ...simpleJob(1), outputs: ['NOPE'] };
      const got = executor.tryAcquire(bad);
      assert.equal(got.kind, 'slot');
      if (got.kind !== 'slot') return;
      await assert.rejects(got.slot.run(bad), (e: unknown) => !(e instanceof BatchNotRun) && /NOPE/.test(String(e)));
    });
  });
}

void test('a thread worker whose ONNX Runtime thread dies: its batch comes back as BatchNotRun, the thread is replaced, the batch runs again', async (t) => {
  const marker = join(tempDir(t), 'crash');
  writeFileSync(marker, '');
  process.env['SLUICE_TEST_CRASH_MARKER'] = marker;
  t.after(() => delete process.env['SLUICE_TEST_CRASH_MARKER']);
  const { pool, metrics } = await startPool(t, ['--workers', '1', '--worker-isolation', 'thread'], new URL('./fixtures-crash-once-thread.ts', import.meta.url));
  const got = pool.tryAcquire(simpleJob(2, 5));
  assert.equal(got.kind, 'slot');
  if (got.kind !== 'slot') return;
  await assert.rejects(got.slot.run(simpleJob(2, 5)), (e: unknown) => e instanceof BatchNotRun && e.worker === 'w0' && /thread died/.test(e.message));
  assert.equal(pool.workers()[0]!.healthy, false, 'the worker is ejected');
  assert.equal(peek(pool), 'busy', 'a local worker being replaced is waited for');
  const retried = { count: 0 };
  const r = await execute(pool, simpleJob(2, 5), retried);
  assert.equal(r.worker, 'w0');
  assert.equal(int32s(r.outputs[0]!.data)[16 + 3], 5 + 1 + 3);
  assert.equal(pool.workers()[0]!.restarts, 1);
  assert.equal((await metrics.workerRestarts.get()).values.reduce((n, v) => n + v.value, 0), 1);
});
