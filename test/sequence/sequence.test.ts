// The sequence batcher against a whole sluice: Triton's sequence client examples (sync over REST and
// gRPC, and interleaved on one gRPC stream) on simple_sequence and simple_dyna_sequence, implicit state
// carried between requests, the bounds, idle timeout, and a worker killed mid-sequence.
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, copyFile, writeFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { SAMPLE_REPOSITORY, startTestSluice } from '../helpers/sluice.ts';
import { connectGrpc, type Reply } from '../grpc/client.ts';

const MODELS = ['simple_sequence', 'simple_dyna_sequence', 'sequence_accumulator', 'simple'];
const flags = ['--model-control-mode', 'explicit', ...MODELS.flatMap((m) => ['--load-model', m])];
/** Triton's client examples: values, and three sequences A, B (ints) and C (a string ID). */
const VALUES = [11, 7, 5, 3, 2, 0, 1];

interface Step {
  readonly id: number | string;
  readonly value: number;
  readonly start: boolean;
  readonly end: boolean;
}

function sequenceSteps(id: number | string, first: number, sign: 1 | -1): Step[] {
  const values = [first, ...VALUES.map((v) => sign * v)];
  return values.map((value, i) => ({ id, value, start: i === 0, end: i === values.length - 1 }));
}

async function rest(port: number, model: string, step: Step): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`http://127.0.0.1:${port}/v2/models/${model}/infer`, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ id: `${step.id}_${step.value}`, parameters: { sequence_id: step.id, sequence_start: step.start, sequence_end: step.end }, inputs: [{ name: 'INPUT', datatype: 'INT32', shape: [1, 1], data: [step.value] }] }),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

function restOutput(body: Record<string, unknown>): number {
  return ((body['outputs'] as { data: number[] }[])[0]!.data)[0]!;
}

function grpcRequest(model: string, step: Step, requestId: string): object {
  const raw = Buffer.alloc(4);
  raw.writeInt32LE(step.value);
  return {
    model_name: model, id: requestId,
    parameters: { sequence_id: typeof step.id === 'string' ? { string_param: step.id } : { int64_param: String(step.id) }, sequence_start: { bool_param: step.start }, sequence_end: { bool_param: step.end } },
    inputs: [{ name: 'INPUT', datatype: 'INT32', shape: [1, 1] }], outputs: [{ name: 'OUTPUT' }], raw_input_contents: [raw],
  };
}

const grpcOutput = (r: Reply): number => (r['raw_output_contents'] as Buffer[])[0]!.readInt32LE(0);

/** What Triton's examples expect: simple_sequence answers value + START; simple_dyna_sequence adds the ID at the end. */
function expected(steps: readonly Step[], dyna: boolean): number[] {
  return steps.map((s) => s.value + (s.start ? 1 : 0) + (dyna && s.end ? Number(s.id) : 0));
}

test("Triton's sync sequence examples over REST and gRPC: simple_sequence and simple_dyna_sequence", async (t) => {
  const s = await startTestSluice(t, flags);
  const grpc = connectGrpc(t, s.ports.grpc);
  const seqs = [sequenceSteps(1000, 0, 1), sequenceSteps(1001, 100, -1), sequenceSteps('8d1c0a5e-6f7b-4c1e-9a0b-3f2e1d0c9b8a', 20, -1)];
  for (const steps of seqs) {
    const got: number[] = [];
    for (const step of steps) {
      const r = await rest(s.ports.http, 'simple_sequence', step);
      assert.equal(r.status, 200, JSON.stringify(r.body));
      got.push(restOutput(r.body));
    }
    assert.deepEqual(got, expected(steps, false), `REST sequence ${steps[0]!.id}`);
  }
  // The -d variant: simple_dyna_sequence (oldest strategy, CORRID) for the two integer sequences.
  for (const steps of seqs.slice(0, 2)) {
    const got: number[] = [];
    for (const step of steps) got.push(grpcOutput(await grpc.call('ModelInfer', grpcRequest('simple_dyna_sequence', step, `${step.id}_${step.value}`))));
    assert.deepEqual(got, expected(steps, true), `gRPC dyna sequence ${steps[0]!.id}`);
  }
});

test("Triton's stream sequence example: three sequences interleaved on one ModelStreamInfer, ids echoed, each in order", async (t) => {
  const s = await startTestSluice(t, flags);
  const grpc = connectGrpc(t, s.ports.grpc);
  const seqs = [sequenceSteps(1000, 0, 1), sequenceSteps(1001, 100, -1), sequenceSteps('c-string-id', 20, -1)];
  const call = grpc.stream();
  const replies = new Map<string, number[]>();
  const done = new Promise<void>((resolve, reject) => {
    let n = 0;
    call.on('data', (r: Reply) => {
      if (r['error_message']) return reject(new Error(String(r['error_message'])));
      const resp = r['infer_response'] as Reply;
      const key = String(resp['id']).split('_')[0]!;
      replies.set(key, [...(replies.get(key) ?? []), grpcOutput(resp)]);
      if (++n === 24) resolve();
    });
    call.on('error', reject);
  });
  for (let i = 0; i < 8; i++) for (const steps of seqs) call.write(grpcRequest('simple_sequence', steps[i]!, `${steps[i]!.id}_${i}`));
  await done;
  call.end();
  for (const steps of seqs) assert.deepEqual(replies.get(String(steps[0]!.id)), expected(steps, false), `stream sequence ${steps[0]!.id}`);
});

test('implicit state: each request of a sequence continues its own running sum, interleaved sequences never mix', async (t) => {
  const s = await startTestSluice(t, flags);
  const a = [5, 3, -2, 10];
  const b = [100, 1, 1];
  const sums = { a: [] as number[], b: [] as number[] };
  for (let i = 0; i < 4; i++) {
    const ra = await rest(s.ports.http, 'sequence_accumulator', { id: 7, value: a[i]!, start: i === 0, end: i === 3 });
    sums.a.push(restOutput(ra.body));
    if (i < 3) sums.b.push(restOutput((await rest(s.ports.http, 'sequence_accumulator', { id: 'b', value: b[i]!, start: i === 0, end: i === 2 })).body));
  }
  assert.deepEqual(sums.a, [5, 8, 6, 16]);
  assert.deepEqual(sums.b, [100, 101, 102]);
  // A new sequence under a used ID starts from zero again.
  assert.equal(restOutput((await rest(s.ports.http, 'sequence_accumulator', { id: 7, value: 4, start: true, end: false })).body), 4);
});

test('config.json carries sequence_batching too (camelCase): the accumulator with its state, from a config.json', async (t) => {
  const repo = await mkdtemp(join(tmpdir(), 'sluice-seqjson-'));
  t.after(() => rm(repo, { recursive: true, force: true }));
  await mkdir(join(repo, 'acc_json', '1'), { recursive: true });
  await copyFile(join(SAMPLE_REPOSITORY, 'sequence_accumulator', '1', 'model.onnx'), join(repo, 'acc_json', '1', 'model.onnx'));
  await writeFile(join(repo, 'acc_json', 'config.json'), JSON.stringify({
    name: 'acc_json', maxBatchSize: 8,
    sequenceBatching: {
      oldest: { maxCandidateSequences: 2 }, maxSequenceIdleUs: 5_000_000,
      controlInputs: [{ name: 'START', controls: [{ kind: 'CONTROL_SEQUENCE_START', int32FalseTrue: [0, 1] }] }],
      states: [{ inputName: 'ACC_IN', outputName: 'ACC_OUT', datatype: 'INT32', dims: [1], initialState: { zeroData: true } }],
    },
    inputs: [{ name: 'INPUT', datatype: 'INT32', dims: [1] }], outputs: [{ name: 'OUTPUT', datatype: 'INT32', dims: [1] }],
  }));
  await mkdir(join(repo, 'bad_json', '1'), { recursive: true });
  await copyFile(join(SAMPLE_REPOSITORY, 'sequence_accumulator', '1', 'model.onnx'), join(repo, 'bad_json', '1', 'model.onnx'));
  await writeFile(join(repo, 'bad_json', 'config.json'), JSON.stringify({ name: 'bad_json', maxBatchSize: 8, sequenceBatching: { controlInputs: [{ name: 'NOPE', controls: [{ kind: 'START', int32FalseTrue: [0, 1] }] }] } }));
  const s = await startTestSluice(t, ['--model-repository', repo]);
  const sums: number[] = [];
  for (const [i, v] of [5, 3, -2].entries()) sums.push(restOutput((await rest(s.ports.http, 'acc_json', { id: 9, value: v, start: i === 0, end: i === 2 })).body));
  assert.deepEqual(sums, [5, 8, 6], 'the state carries from request to request');
  // The oldest strategy's bound: two sequences at once, a third is refused.
  for (const id of [1, 2]) assert.equal((await rest(s.ports.http, 'acc_json', { id, value: 1, start: true, end: false })).status, 200);
  assert.equal((await rest(s.ports.http, 'acc_json', { id: 3, value: 1, start: true, end: false })).status, 503, 'maxCandidateSequences 2');
  const index = await (await fetch(`http://127.0.0.1:${s.ports.http}/v2/repository/index`, { method: 'POST' })).json() as { name: string; state: string; reason: string }[];
  const bad = index.find((m) => m.name === 'bad_json');
  assert.equal(bad?.state, 'UNAVAILABLE');
  assert.match(bad?.reason ?? '', /config\.json at 'sequenceBatching': the model has no input 'NOPE'/);
});

test('bad sequence requests are 400 naming the problem; past the active-sequence bound a new sequence is 503 at once', async (t) => {
  const s = await startTestSluice(t, flags);
  const port = s.ports.http;
  const notStarted = await rest(port, 'simple_sequence', { id: 42, value: 1, start: false, end: false });
  assert.equal(notStarted.status, 400);
  assert.match(String(notStarted.body['error']), /sequence 42 to model 'simple_sequence' must specify the START flag/);
  const noId = await fetch(`http://127.0.0.1:${port}/v2/models/simple_sequence/infer`, { method: 'POST', body: JSON.stringify({ inputs: [{ name: 'INPUT', datatype: 'INT32', shape: [1, 1], data: [1] }] }) });
  assert.equal(noId.status, 400);
  assert.match(await noId.text(), /must specify a non-zero or non-empty correlation ID/);
  const twoRows = await fetch(`http://127.0.0.1:${port}/v2/models/simple_sequence/infer`, { method: 'POST', body: JSON.stringify({ parameters: { sequence_id: 5, sequence_start: true }, inputs: [{ name: 'INPUT', datatype: 'INT32', shape: [2, 1], data: [1, 2] }] }) });
  assert.equal(twoRows.status, 400);
  assert.match(await twoRows.text(), /batch-size 1/);
  const badFlag = await fetch(`http://127.0.0.1:${port}/v2/models/simple_sequence/infer`, { method: 'POST', body: JSON.stringify({ parameters: { sequence_id: 5, sequence_start: 'yes' }, inputs: [{ name: 'INPUT', datatype: 'INT32', shape: [1, 1], data: [1] }] }) });
  assert.equal(badFlag.status, 400);
  assert.match(await badFlag.text(), /invalid 'sequence_start' parameter/);
  const stringId = await rest(port, 'simple_dyna_sequence', { id: 'abc', value: 1, start: true, end: false });
  assert.equal(stringId.status, 400);
  assert.match(String(stringId.body['error']), /takes its correlation ID as UINT64 \(control 'CORRID'\): send an unsigned integer/);
  const stateless = await fetch(`http://127.0.0.1:${port}/v2/models/simple/infer`, { method: 'POST', body: JSON.stringify({ parameters: { sequence_id: 5, sequence_start: true }, inputs: ['INPUT0', 'INPUT1'].map((name) => ({ name, datatype: 'INT32', shape: [1, 16], data: new Array(16).fill(1) })) }) });
  assert.equal(stateless.status, 400);
  assert.match(await stateless.text(), /has no sequence_batching/);

  // simple_sequence is direct with max_batch_size 8: eight slots.
  for (let id = 1; id <= 8; id++) assert.equal((await rest(port, 'simple_sequence', { id, value: 1, start: true, end: false })).status, 200);
  const ninth = await rest(port, 'simple_sequence', { id: 9, value: 1, start: true, end: false });
  assert.equal(ninth.status, 503);
  assert.match(String(ninth.body['error']), /8 active sequences/);
  assert.equal((await rest(port, 'simple_sequence', { id: 3, value: 1, start: false, end: true })).status, 200);
  assert.equal((await rest(port, 'simple_sequence', { id: 9, value: 1, start: true, end: false })).status, 200, 'a freed slot takes a new sequence');
});

async function idleRepository(t: TestContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'sluice-seq-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await mkdir(join(dir, 'sequence_accumulator', '1'), { recursive: true });
  await copyFile(join(SAMPLE_REPOSITORY, 'sequence_accumulator', '1', 'model.onnx'), join(dir, 'sequence_accumulator', '1', 'model.onnx'));
  const { readFile } = await import('node:fs/promises');
  const config = (await readFile(join(SAMPLE_REPOSITORY, 'sequence_accumulator', 'config.pbtxt'), 'utf8')).replace('max_sequence_idle_microseconds: 5000000', 'max_sequence_idle_microseconds: 1000000');
  await writeFile(join(dir, 'sequence_accumulator', 'config.pbtxt'), config);
  return dir;
}

test('a sequence idle past max_sequence_idle_microseconds ends: its next request needs START, and it starts from zero', async (t) => {
  const repo = await idleRepository(t);
  const s = await startTestSluice(t, ['--model-repository', repo]);
  const port = s.ports.http;
  assert.equal(restOutput((await rest(port, 'sequence_accumulator', { id: 1, value: 5, start: true, end: false })).body), 5);
  assert.equal(restOutput((await rest(port, 'sequence_accumulator', { id: 1, value: 5, start: false, end: false })).body), 10, 'within the idle time it goes on');
  // Well past the idle time and the reaper's round (a quarter of it).
  await new Promise((r) => setTimeout(r, 1800));
  const late = await rest(port, 'sequence_accumulator', { id: 1, value: 5, start: false, end: false });
  assert.equal(late.status, 400);
  assert.match(String(late.body['error']), /must specify the START flag/);
  assert.equal(restOutput((await rest(port, 'sequence_accumulator', { id: 1, value: 2, start: true, end: false })).body), 2);
});

test('a worker process killed mid-sequence: the sequence goes on from its state on the restarted worker, and new sequences are served', async (t) => {
  const s = await startTestSluice(t, [...flags, '--worker-isolation', 'process']);
  const port = s.ports.http;
  assert.equal(restOutput((await rest(port, 'sequence_accumulator', { id: 11, value: 4, start: true, end: false })).body), 4);
  assert.equal(restOutput((await rest(port, 'sequence_accumulator', { id: 11, value: 6, start: false, end: false })).body), 10);
  const pid = s.workers()[0]?.pid;
  assert.ok(pid !== undefined && pid > 0, 'a worker process');
  process.kill(pid, 'SIGKILL');
  const after = await rest(port, 'sequence_accumulator', { id: 11, value: 1, start: false, end: false });
  assert.equal(after.status, 200, JSON.stringify(after.body));
  assert.equal(restOutput(after.body), 11, 'the state lives in the gateway: nothing was lost with the worker');
  assert.equal(restOutput((await rest(port, 'sequence_accumulator', { id: 12, value: 3, start: true, end: true })).body), 3);
  assert.notEqual(s.workers()[0]?.pid, pid, 'the worker was restarted');
});
