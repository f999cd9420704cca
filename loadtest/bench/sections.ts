import type { LoadProtocol, StepSpec } from '../types.ts';
import { mdTable, n0, n2, ratio, verdict, type Section } from './markdown.ts';
import { measureSideBySide, type BenchTiming, type Measured, type ModelWorkload, type Target } from './measure.ts';

/** The servers of one benchmark run and the model workloads they share. */
export interface BenchEnv {
  /**
   * sluice with the sample repository (dynamic batching on), the only server that traces (stages.ts's
   * traceFlags): its trace files are traceFile.0, traceFile.1, ...
   */
  readonly sluice: { readonly http: string; readonly grpc: string; readonly metrics: string; readonly traceFile: string };
  /** The same gateway on a repository copy whose mlp has max_batch_size 1: batching off. */
  readonly unbatched: { readonly http: string; readonly metrics: string };
  /** The same gateway on a repository copy whose mlp has a queue budget: the overload test's server. */
  readonly overload: { readonly http: string; readonly metrics: string };
  readonly naive: string;
  /** The naive server answering without running the model: what parsing the JSON alone allows. */
  readonly naiveWithoutInference: string;
  readonly echoHttp: string;
  readonly echoGrpc: string;
  /** Process ids of the servers (sluice's workers are found as its children), for CPU per request. */
  readonly pids: { readonly sluice: readonly number[]; readonly overload: readonly number[]; readonly naive: readonly number[]; readonly echoHttp: readonly number[]; readonly echoGrpc: readonly number[] };
  workload(model: string): Promise<ModelWorkload>;
}

/** Connections of the throughput comparisons (the issue's 256 for batching; 64 elsewhere). */
export const SATURATION_CONNECTIONS = 256;
export const PROTOCOL_CONCURRENCY = 64;

const closed = (concurrency: number): StepSpec => ({ mode: 'closed', concurrency });

function sluiceTarget(env: BenchEnv, protocol: LoadProtocol, name = `sluice ${protocol}`): Target {
  return { name, protocol, url: env.sluice.http, grpcUrl: env.sluice.grpc, metricsUrl: env.sluice.metrics, check: true };
}

const errorsNote = (ms: readonly Measured[]): string => {
  const bad = ms.filter((m) => m.errors > 0 || m.wrong > 0);
  return bad.length === 0 ? 'No errors; every sampled answer checked right.' : `Errors: ${bad.map((m) => `${m.target.name}: ${m.errors} (${m.wrong} wrong answers)`).join('; ')}.`;
};

/** (a) Requests/s on mlp with JSON bodies at 256 connections: batching on, batching off, naive server. */
export async function batchingThroughput(env: BenchEnv, t: BenchTiming): Promise<{ section: Section; on: Measured; off: Measured }> {
  const w = await env.workload('mlp');
  const spec = closed(SATURATION_CONNECTIONS);
  const [on, off, naive, parseOnly] = await measureSideBySide('mlp', w, [
    { target: sluiceTarget(env, 'json', 'sluice, batching on'), spec },
    { target: { name: 'sluice, max batch size 1', protocol: 'json', url: env.unbatched.http, metricsUrl: env.unbatched.metrics, check: true }, spec },
    { target: { name: 'naive Fastify + onnxruntime-node (worker thread)', protocol: 'json', url: env.naive, check: true }, spec },
    { target: { name: 'the naive server without inference (JSON in and out only)', protocol: 'json', url: env.naiveWithoutInference, check: false }, spec },
  ], t);
  const rows = [on!, off!, naive!, parseOnly!].map((m) => [m.target.name, n0(m.qps), n2(m.p50), n2(m.p99), n2(m.medianRun.server?.meanBatchSize), ratio(m.qps / naive!.qps)]);
  const r = on!.qps / naive!.qps;
  const ceiling = parseOnly!.qps / naive!.qps;
  return {
    on: on!,
    off: off!,
    section: {
      title: '(a) Dynamic batching vs batching off vs a naive server (mlp, REST JSON, 256 connections)',
      body: [
        mdTable(['server', 'req/s', 'P50 ms', 'P99 ms', 'mean batch', 'vs naive'], rows),
        '',
        verdict('batching >= 4x the naive server\'s requests/s', r >= 4, ratio(r)),
        `Batching on vs max batch size 1: ${ratio(on!.qps / off!.qps)}. ${errorsNote([on!, off!, naive!])}`,
        '',
        `The last row is the naive server with the model skipped: Fastify parses each JSON body into a Float32Array and answers with a stored reply of the right size (its answers are not checked). It reaches ${ratio(ceiling)} of the naive server, so running the model is only about ${Math.round(100 * (1 - 1 / ceiling))}% of the naive server's time per request; the rest is HTTP and JSON work that batching does not remove. For 4x, sluice's whole cost per request (HTTP, JSON, batching, the worker hop and its share of a batch) would have to fit in ${n2(ceiling / 4)} of the naive server's HTTP and JSON work alone. sluice reaches ${ratio(on!.qps / parseOnly!.qps)} of this row (see performance.md).`,
      ].join('\n'),
    },
  };
}

/**
 * Repeats of (b) at least: the two configurations take the same code path at one client, so the
 * difference sought (10%) is smaller than this kind of machine's run-to-run spread of a P50, and three
 * repeats let one noisy run decide the median. One-connection runs are cheap.
 */
export const ONE_CLIENT_MIN_REPEATS = 7;

/** (b) P50 at one client: batching must not tax an idle server (the batcher is work-conserving). */
export async function oneClientLatency(env: BenchEnv, t: BenchTiming): Promise<Section> {
  const w = await env.workload('mlp');
  const timing = { ...t, repeats: Math.max(t.repeats, ONE_CLIENT_MIN_REPEATS) };
  const [on, off] = await measureSideBySide('mlp', w, [
    { target: sluiceTarget(env, 'json', 'sluice, batching on'), spec: closed(1) },
    { target: { name: 'sluice, max batch size 1', protocol: 'json', url: env.unbatched.http, metricsUrl: env.unbatched.metrics, check: true }, spec: closed(1) },
  ], timing);
  const r = on!.p50 / off!.p50;
  return {
    title: '(b) P50 at one client, batching on vs off (mlp, REST JSON, 1 connection)',
    body: [
      `Medians of ${timing.repeats} interleaved runs each (this comparison always takes at least ${ONE_CLIENT_MIN_REPEATS}: the gap sought is smaller than one run's noise).`,
      '',
      mdTable(['server', 'req/s', 'P50 ms', 'P99 ms', 'mean batch'], [on!, off!].map((m) => [m.target.name, n0(m.qps), n2(m.p50), n2(m.p99), n2(m.medianRun.server?.meanBatchSize)])),
      '',
      verdict('P50 with batching within 10% of batching off', r <= 1.1, `${ratio(r)} of batching off`),
      errorsNote([on!, off!]),
    ].join('\n'),
  };
}

/**
 * Clients of (c). One worker holds up to two batches of 32 rows (the default in-flight limit and the
 * cnn's max batch size), 64 rows in all: at 64 connections every waiting request leaves with the next
 * dispatch and the queue runs dry, so the worker is fed but not saturated. Twice that keeps a full
 * batch waiting at every dispatch, which is what saturation means; the 64-connection row stays for
 * comparison.
 */
export const BUSY_CONNECTIONS = [PROTOCOL_CONCURRENCY, 2 * PROTOCOL_CONCURRENCY] as const;

function medianOf(values: readonly number[]): number | undefined {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted.length > 0 ? sorted[Math.floor((sorted.length - 1) / 2)] : undefined;
}

/** (c) Worker busy fraction at saturation on the compute-bound cnn with binary inputs. */
export async function workerBusy(env: BenchEnv, t: BenchTiming): Promise<Section> {
  const w = await env.workload('cnn');
  const ms = await measureSideBySide('cnn', w, BUSY_CONNECTIONS.map((c) => ({ target: sluiceTarget(env, 'binary'), spec: closed(c) })), t);
  const busyOf = (m: Measured): number | undefined => medianOf(m.runs.map((r) => r.server?.busyFraction).filter((b): b is number => b !== undefined));
  const rows = ms.map((m, i) => {
    const s = m.medianRun.server;
    return [String(BUSY_CONNECTIONS[i]), n0(m.qps), n2(m.p50), n2(m.p99), n2(s?.meanBatchSize), n2(s?.queueDepthMean), n2(s?.meanComputeMs), s?.workers === undefined ? '–' : String(s.workers), n2(busyOf(m))];
  });
  const saturated = ms[ms.length - 1]!;
  const med = busyOf(saturated);
  return {
    title: '(c) Worker busy fraction at saturation (cnn, REST binary)',
    body: [
      mdTable(['connections', 'req/s', 'P50 ms', 'P99 ms', 'mean batch', 'mean queue depth', 'compute ms/batch', 'workers', 'busy fraction'], rows),
      '',
      'Busy fraction: the delta of sluice_batch_compute_duration_seconds_sum over the step, divided by wall time and by the number of workers up (median of the runs).',
      `Saturation: a worker holds two batches of up to 32 rows in flight, 64 rows; at ${BUSY_CONNECTIONS[0]} connections the queue runs dry at every dispatch (batches below 32 rows), at ${BUSY_CONNECTIONS[1]} a full batch always waits. The goal is judged at ${BUSY_CONNECTIONS[1]}.`,
      verdict('busy fraction >= 0.9', med === undefined ? undefined : med >= 0.9, n2(med)),
      errorsNote(ms),
    ].join('\n'),
  };
}

/** (d) REST JSON vs REST binary vs gRPC on the same model and concurrency. */
export async function protocols(env: BenchEnv, t: BenchTiming): Promise<Section> {
  const rows: string[][] = [];
  const all: Measured[] = [];
  for (const model of ['simple', 'mlp']) {
    const w = await env.workload(model);
    const ms = await measureSideBySide(model, w, (['json', 'binary', 'grpc'] as const).map((p) => ({ target: sluiceTarget(env, p), spec: closed(PROTOCOL_CONCURRENCY) })), t);
    all.push(...ms);
    for (const m of ms) rows.push([model, m.target.protocol, n0(m.qps), n2(m.p50), n2(m.p99), n2(m.medianRun.server?.meanBatchSize), ratio(m.qps / ms[0]!.qps)]);
  }
  return {
    title: `(d) REST JSON vs REST binary vs gRPC (${PROTOCOL_CONCURRENCY} in flight)`,
    body: [mdTable(['model', 'protocol', 'req/s', 'P50 ms', 'P99 ms', 'mean batch', 'vs JSON'], rows), '', errorsNote(all)].join('\n'),
  };
}

/** (e) sluice against bare servers that echo the same payload: the cost of the whole pipeline. */
export async function overhead(env: BenchEnv, t: BenchTiming): Promise<Section> {
  const w = await env.workload('simple');
  const spec = closed(PROTOCOL_CONCURRENCY);
  const [sj, ej, sg, eg] = await measureSideBySide('simple', w, [
    { target: sluiceTarget(env, 'json'), spec },
    { target: { name: 'bare Fastify JSON echo', protocol: 'json', url: env.echoHttp, check: false }, spec },
    { target: sluiceTarget(env, 'grpc', 'sluice gRPC ModelInfer'), spec },
    { target: { name: 'bare grpc-js unary echo', protocol: 'grpc', grpcUrl: env.echoGrpc, check: false }, spec },
  ], t);
  const rj = sj!.qps / ej!.qps;
  const rg = sg!.qps / eg!.qps;
  return {
    title: `(e) sluice vs bare Fastify and bare grpc-js on the same payload (simple, ${PROTOCOL_CONCURRENCY} in flight)`,
    body: [
      mdTable(['pair', 'sluice req/s', 'echo req/s', 'sluice / echo', 'sluice P99 ms', 'echo P99 ms'], [
        ['REST JSON', n0(sj!.qps), n0(ej!.qps), ratio(rj), n2(sj!.p99), n2(ej!.p99)],
        ['gRPC ModelInfer (raw contents)', n0(sg!.qps), n0(eg!.qps), ratio(rg), n2(sg!.p99), n2(eg!.p99)],
      ]),
      '',
      verdict('sluice gRPC >= 0.7 of the grpc-js echo server\'s calls/s', rg >= 0.7, ratio(rg)),
      errorsNote([sj!, sg!]),
    ].join('\n'),
  };
}
