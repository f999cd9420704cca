// The response cache end to end: a whole sluice, REST and gRPC sharing one cache, the model config and
// statistics answers of both front doors in Triton's field names, and the Prometheus families.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { SAMPLE_REPOSITORY, startTestSluice } from '../helpers/sluice.ts';
import { connectGrpc, int32Bytes, outputOf, range16 } from '../grpc/client.ts';
import { tempRepository } from '../grpc/repo.ts';
import { binaryBody, h1Client, splitResponse, type HttpClient } from './client.ts';

const CACHED_CONFIG = `${readFileSync(join(SAMPLE_REPOSITORY, 'simple', 'config.pbtxt'), 'utf8').replace('name: "simple"', 'name: "cached"')}\nresponse_cache { enable: true }\n`;

/** A binary REST infer of `model` with INPUT0 = a, INPUT1 = b (one row); the answer's outputs as raw bytes. */
async function restInfer(http: HttpClient, model: string, a: readonly number[], b: readonly number[]): Promise<{ json: Record<string, unknown>; binary: Buffer }> {
  const header = {
    inputs: [
      { name: 'INPUT0', datatype: 'INT32', shape: [1, 16], parameters: { binary_data_size: 64 } },
      { name: 'INPUT1', datatype: 'INT32', shape: [1, 16], parameters: { binary_data_size: 64 } },
    ],
    parameters: { binary_data_output: true },
  };
  const { body, headers } = binaryBody(header, [int32Bytes(a), int32Bytes(b)]);
  const res = await http.call('POST', `/v2/models/${model}/infer`, { body, headers });
  assert.equal(res.status, 200, res.text());
  return splitResponse(res);
}

interface RestStats {
  execution_count: number;
  inference_count: number;
  inference_stats: Record<string, { count: number; ns: number }>;
}

async function restStats(http: HttpClient, model: string): Promise<RestStats> {
  const res = await http.call('GET', `/v2/models/${model}/stats`);
  assert.equal(res.status, 200, res.text());
  return (res.json() as { model_stats: RestStats[] }).model_stats[0]!;
}

async function scrape(port: number): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${port}/metrics`);
  assert.equal(res.status, 200);
  return res.text();
}

function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

void test('REST and gRPC share one response cache; hits run nothing and answer the same bytes', { timeout: 60_000 }, async (t) => {
  const repo = tempRepository(t, ['simple'], { cached: CACHED_CONFIG });
  const sluice = await startTestSluice(t, ['--model-repository', repo, '--cache-config', 'local,size=1mb']);
  const http = h1Client(`http://127.0.0.1:${sluice.ports.http}`);
  t.after(() => http.close());
  const grpc = connectGrpc(t, sluice.ports.grpc);
  const a = range16(100);
  const b = range16(-3);

  await t.test('the model config answers report response_cache as Triton does', async () => {
    assert.deepEqual((await http.call('GET', '/v2/models/cached/config')).json().response_cache, { enable: true });
    assert.deepEqual((await http.call('GET', '/v2/models/simple/config')).json().response_cache, { enable: false });
    const { config } = await grpc.call('ModelConfig', { name: 'cached' });
    assert.deepEqual(config.response_cache, { enable: true });
  });

  await t.test('REST twice: the second is a hit with identical bytes; execution_count stays', async () => {
    const first = await restInfer(http, 'cached', a, b);
    const after1 = await restStats(http, 'cached');
    const second = await restInfer(http, 'cached', a, b);
    assert.ok(second.binary.equals(first.binary), 'identical output bytes');
    assert.deepEqual(second.json['outputs'], first.json['outputs']);
    assert.equal(first.binary.readInt32LE(0), a[0]! + b[0]!);
    const after2 = await restStats(http, 'cached');
    assert.equal(after1.execution_count, 1);
    assert.equal(after2.execution_count, 1, 'the hit ran no batch');
    assert.equal(after2.inference_count, 1, 'nor counted an inference');
    assert.deepEqual([after2.inference_stats['cache_hit']!.count, after2.inference_stats['cache_miss']!.count, after2.inference_stats['success']!.count], [1, 1, 2]);
    assert.ok(after2.inference_stats['cache_hit']!.ns > 0 && after2.inference_stats['cache_miss']!.ns > 0);
  });

  await t.test('gRPC with the same inputs hits the entry REST stored', async () => {
    const reply = await grpc.call('ModelInfer', {
      model_name: 'cached',
      inputs: [{ name: 'INPUT0', datatype: 'INT32', shape: [1, 16] }, { name: 'INPUT1', datatype: 'INT32', shape: [1, 16] }],
      raw_input_contents: [int32Bytes(a), int32Bytes(b)],
    });
    const rest = await restInfer(http, 'cached', a, b);
    assert.ok(Buffer.concat([outputOf(reply, 'OUTPUT0').raw, outputOf(reply, 'OUTPUT1').raw]).equals(rest.binary));
    const { model_stats } = await grpc.call('ModelStatistics', { name: 'cached' });
    const s = model_stats[0];
    // proto-loader renders uint64 as strings.
    assert.equal(s.execution_count, '1');
    assert.deepEqual([s.inference_stats.cache_hit.count, s.inference_stats.cache_miss.count], ['3', '1']);
  });

  await t.test('a different input is a miss, and a model without response_cache never uses the cache', async () => {
    await restInfer(http, 'cached', a, range16(7));
    const s = await restStats(http, 'cached');
    assert.equal(s.execution_count, 2);
    assert.deepEqual([s.inference_stats['cache_hit']!.count, s.inference_stats['cache_miss']!.count], [3, 2]);
    await restInfer(http, 'simple', a, b);
    await restInfer(http, 'simple', a, b);
    const plain = await restStats(http, 'simple');
    assert.equal(plain.execution_count, 2);
    assert.deepEqual([plain.inference_stats['cache_hit']!.count, plain.inference_stats['cache_miss']!.count], [0, 0]);
  });

  await t.test('/metrics: lookups by result, entries, bytes used and the budget', async () => {
    const text = await scrape(sluice.ports.metrics);
    assert.equal(sample(text, 'sluice_response_cache_lookups_total{model="cached",result="hit"}'), 3);
    assert.equal(sample(text, 'sluice_response_cache_lookups_total{model="cached",result="miss"}'), 2);
    assert.equal(sample(text, 'sluice_response_cache_lookups_total{model="simple",result="miss"}'), undefined);
    assert.equal(sample(text, 'sluice_response_cache_lookup_duration_seconds_count{model="cached",result="hit"}'), 3);
    assert.equal(sample(text, 'sluice_response_cache_entries'), 2);
    assert.equal(sample(text, 'sluice_response_cache_limit_bytes'), 1024 * 1024);
    assert.equal(sample(text, 'sluice_response_cache_evictions_total'), 0);
    const used = sample(text, 'sluice_response_cache_used_bytes');
    assert.ok(used !== undefined && used > 2 * 128 && used < 1024 * 1024, `used bytes ${used}`);
    assert.equal(sample(text, 'sluice_batches_total{model="cached"}'), 2, 'the executor ran two batches for five requests');
  });
});

void test('without --cache-config a model that enables response_cache runs every request', { timeout: 60_000 }, async (t) => {
  const repo = tempRepository(t, [], { cached: CACHED_CONFIG });
  const sluice = await startTestSluice(t, ['--model-repository', repo]);
  const http = h1Client(`http://127.0.0.1:${sluice.ports.http}`);
  t.after(() => http.close());
  const first = await restInfer(http, 'cached', range16(1), range16(2));
  const second = await restInfer(http, 'cached', range16(1), range16(2));
  assert.ok(second.binary.equals(first.binary));
  const s = await restStats(http, 'cached');
  assert.equal(s.execution_count, 2);
  assert.deepEqual([s.inference_stats['cache_hit']!.count, s.inference_stats['cache_miss']!.count], [0, 0]);
  assert.deepEqual((await http.call('GET', '/v2/models/cached/config')).json().response_cache, { enable: true }, 'the model still says what its config asks');
  const text = await scrape(sluice.ports.metrics);
  assert.equal(sample(text, 'sluice_response_cache_limit_bytes'), 0);
  assert.equal(sample(text, 'sluice_response_cache_lookups_total{model="cached",result="miss"}'), undefined);
});
