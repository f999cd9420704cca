// Decoupled models on the built-in repeat backend: Triton's custom-repeat example over gRPC
// ModelStreamInfer (answers in order, each flagged not final, an empty final answer only when asked),
// the instance held for WAIT, errors on the stream that leave it open, refusals on the unary
// endpoints, and REST infer as server-sent events.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startTestSluice } from '../helpers/sluice.ts';
import { connectGrpc, type Reply } from '../grpc/client.ts';

const flags = ['--model-control-mode', 'explicit', '--load-model', 'repeat_int32', '--load-model', 'simple'];

function u32(values: readonly number[], signed = false): Buffer {
  const b = Buffer.alloc(values.length * 4);
  values.forEach((v, i) => (signed ? b.writeInt32LE(v, i * 4) : b.writeUInt32LE(v, i * 4)));
  return b;
}

function repeatRequest(id: string, ins: readonly number[], delays: readonly number[], wait: number, parameters: object = {}): object {
  return {
    model_name: 'repeat_int32', id, parameters,
    inputs: [{ name: 'IN', datatype: 'INT32', shape: [ins.length] }, { name: 'DELAY', datatype: 'UINT32', shape: [delays.length] }, { name: 'WAIT', datatype: 'UINT32', shape: [1] }],
    raw_input_contents: [u32(ins, true), u32(delays), u32([wait])],
  };
}

interface Answer {
  readonly id: string;
  readonly out?: number;
  readonly idx?: number;
  readonly final: boolean;
  readonly error: string;
  readonly at: number;
}

function answers(call: ReturnType<ReturnType<typeof connectGrpc>['stream']>, until: (got: Answer[]) => boolean): Promise<Answer[]> {
  const got: Answer[] = [];
  return new Promise((resolve, reject) => {
    call.on('data', (r: Reply) => {
      const resp = r['infer_response'] as Reply;
      const raw = (resp['raw_output_contents'] as Buffer[] | undefined) ?? [];
      const names = ((resp['outputs'] as Reply[] | undefined) ?? []).map((o) => String(o['name']));
      const value = (name: string): number | undefined => (names.includes(name) ? raw[names.indexOf(name)]!.readInt32LE(0) : undefined);
      got.push({ id: String(resp['id']), out: value('OUT'), idx: value('IDX'), final: (resp['parameters'] as Reply | undefined)?.['triton_final_response']?.['bool_param'] === true, error: String(r['error_message'] ?? ''), at: performance.now() });
      if (until(got)) resolve(got);
    });
    call.on('error', reject);
  });
}

test("Triton's custom repeat example: ten answers in order on one stream, none final, and an empty final one only when asked", async (t) => {
  const s = await startTestSluice(t, flags);
  const grpc = connectGrpc(t, s.ports.grpc);
  const ins = Array.from({ length: 10 }, (_, i) => 100 + i);
  const call = grpc.stream();
  const sent = performance.now();
  const done = answers(call, (got) => got.length === 10);
  call.write(repeatRequest('', ins, ins.map(() => 20), 50));
  const got = await done;
  assert.deepEqual(got.map((a) => a.out), ins);
  assert.deepEqual(got.map((a) => a.idx), ins.map((_, i) => i));
  assert.ok(got.every((a) => !a.final && a.error === ''));
  assert.ok(got[0]!.at - sent < got[9]!.at - sent - 100, 'answers go out as they are ready, not all at the end');
  // With triton_enable_empty_final_response the request ends with a flag-only answer.
  const more = answers(call, (g) => g.length === 3);
  call.write(repeatRequest('flagged', [1, 2], [0, 0], 0, { triton_enable_empty_final_response: { bool_param: true } }));
  const flagged = await more;
  assert.deepEqual(flagged.map((a) => [a.out, a.final]), [[1, false], [2, false], [undefined, true]]);
  assert.equal(flagged[2]!.id, 'flagged');
  call.end();
});

test('the instance is held WAIT ms: a second request starts then, and its answers interleave with the first', async (t) => {
  const s = await startTestSluice(t, flags);
  const grpc = connectGrpc(t, s.ports.grpc);
  const call = grpc.stream();
  const done = answers(call, (got) => got.length === 6);
  call.write(repeatRequest('a', [1, 2, 3], [60, 60, 60], 30));
  call.write(repeatRequest('b', [4, 5, 6], [60, 60, 60], 30));
  const got = await done;
  call.end();
  const order = got.map((a) => a.id).join('');
  assert.notEqual(order, 'aaabbb', `answers interleave (${order})`);
  assert.deepEqual(got.filter((a) => a.id === 'a').map((a) => a.out), [1, 2, 3]);
  assert.deepEqual(got.filter((a) => a.id === 'b').map((a) => a.out), [4, 5, 6]);
  // b's first answer is at least WAIT + its first DELAY after a's start, so after a's first answer.
  assert.ok(got.findIndex((a) => a.id === 'b') > got.findIndex((a) => a.id === 'a'));
});

test('errors on the stream name the problem and leave it open; unary endpoints refuse a decoupled model; an empty IN answers nothing', async (t) => {
  const s = await startTestSluice(t, flags);
  const grpc = connectGrpc(t, s.ports.grpc);
  const call = grpc.stream();
  const done = answers(call, (got) => got.length === 3);
  call.write(repeatRequest('bad', [1], [1, 2], 0));
  call.write(repeatRequest('empty', [], [], 0, { triton_enable_empty_final_response: { bool_param: true } }));
  call.write(repeatRequest('good', [9], [0], 0));
  const got = await done;
  call.end();
  const bad = got.find((a) => a.id === 'bad')!;
  assert.match(bad.error, /DELAY/);
  assert.match(bad.error, /shape of IN/);
  assert.deepEqual(got.filter((a) => a.id === 'empty').map((a) => [a.out, a.final]), [[undefined, true]]);
  assert.equal(got.find((a) => a.id === 'good')?.out, 9);

  await assert.rejects(grpc.call('ModelInfer', repeatRequest('u', [1], [0], 0)), (e: Error & { code?: number }) => e.code === 12 && /doesn't support models with decoupled transaction policy/.test(e.message));
  const body = JSON.stringify({ inputs: [{ name: 'IN', datatype: 'INT32', shape: [1], data: [1] }, { name: 'DELAY', datatype: 'UINT32', shape: [1], data: [0] }, { name: 'WAIT', datatype: 'UINT32', shape: [1], data: [0] }] });
  const rest = await fetch(`http://127.0.0.1:${s.ports.http}/v2/models/repeat_int32/infer`, { method: 'POST', body });
  assert.equal(rest.status, 501);
  assert.match(await rest.text(), /text\/event-stream/);
});

function sse(text: string): Record<string, unknown>[] {
  return text.split('\n\n').filter((e) => e.startsWith('data: ')).map((e) => JSON.parse(e.slice(6)) as Record<string, unknown>);
}

test('REST infer with Accept: text/event-stream streams a decoupled model\'s answers, and a plain model\'s one answer', async (t) => {
  const s = await startTestSluice(t, flags);
  const url = `http://127.0.0.1:${s.ports.http}/v2/models`;
  const body = JSON.stringify({ id: 'r', inputs: [{ name: 'IN', datatype: 'INT32', shape: [3], data: [7, 8, 9] }, { name: 'DELAY', datatype: 'UINT32', shape: [3], data: [5, 5, 5] }, { name: 'WAIT', datatype: 'UINT32', shape: [1], data: [0] }] });
  const res = await fetch(`${url}/repeat_int32/infer`, { method: 'POST', body, headers: { accept: 'text/event-stream' } });
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^text\/event-stream/);
  const events = sse(await res.text());
  assert.deepEqual(events.map((e) => ((e['outputs'] as { name: string; data: number[] }[]).find((o) => o.name === 'OUT'))?.data[0]), [7, 8, 9, undefined]);
  assert.deepEqual(events.map((e) => (e['parameters'] as { triton_final_response: boolean }).triton_final_response), [false, false, false, true]);
  assert.ok(events.every((e) => e['id'] === 'r'));
  const plain = await fetch(`${url}/simple/infer`, { method: 'POST', headers: { accept: 'text/event-stream' }, body: JSON.stringify({ inputs: ['INPUT0', 'INPUT1'].map((name) => ({ name, datatype: 'INT32', shape: [1, 16], data: new Array(16).fill(2) })) }) });
  const one = sse(await plain.text());
  assert.equal(one.length, 1);
  assert.equal((one[0]!['parameters'] as { triton_final_response: boolean }).triton_final_response, true);
  assert.deepEqual((one[0]!['outputs'] as { data: number[] }[])[0]!.data, new Array(16).fill(4));
  const bad = await fetch(`${url}/repeat_int32/infer`, { method: 'POST', headers: { accept: 'text/event-stream' }, body: JSON.stringify({ inputs: [{ name: 'IN', datatype: 'INT32', shape: [1], data: [1] }, { name: 'DELAY', datatype: 'UINT32', shape: [2], data: [0, 0] }, { name: 'WAIT', datatype: 'UINT32', shape: [1], data: [0] }] }) });
  assert.equal(bad.status, 400, 'an error before the first answer is an ordinary error response');
});

test('a REST client that leaves a stream stops its answers at the next one, and is counted cancelled', async (t) => {
  const s = await startTestSluice(t, flags);
  const abort = new AbortController();
  const body = JSON.stringify({ inputs: [{ name: 'IN', datatype: 'INT32', shape: [50], data: new Array(50).fill(1) }, { name: 'DELAY', datatype: 'UINT32', shape: [50], data: new Array(50).fill(40) }, { name: 'WAIT', datatype: 'UINT32', shape: [1], data: [0] }] });
  const res = await fetch(`http://127.0.0.1:${s.ports.http}/v2/models/repeat_int32/infer`, { method: 'POST', body, headers: { accept: 'text/event-stream' }, signal: abort.signal });
  const reader = res.body!.getReader();
  await reader.read();
  abort.abort();
  const metricsUrl = `http://127.0.0.1:${s.ports.metrics}/metrics`;
  const deadline = Date.now() + 3000;
  let text = '';
  while (Date.now() < deadline && !/sluice_requests_total\{model="repeat_int32",protocol="http",status="cancelled"\} 1/.test(text)) {
    await new Promise((r) => setTimeout(r, 50));
    text = await (await fetch(metricsUrl)).text();
  }
  assert.match(text, /sluice_requests_total\{model="repeat_int32",protocol="http",status="cancelled"\} 1/);
  // Its work stopped at the next answer (a failure in the statistics), not after the 49 left (2 s).
  let stats = { success: { count: -1 }, fail: { count: -1 } };
  const until = Date.now() + 1000;
  while (Date.now() < until && stats.fail.count !== 1) {
    const res = await (await fetch(`http://127.0.0.1:${s.ports.http}/v2/models/repeat_int32/stats`)).json() as { model_stats: { inference_stats: typeof stats }[] };
    stats = res.model_stats[0]!.inference_stats;
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.deepEqual([stats.success.count, stats.fail.count], [0, 1]);
});
