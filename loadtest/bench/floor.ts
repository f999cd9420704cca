import { searchSlo } from '../search.ts';
import { runStep } from '../step.ts';
import type { StepResult, StepSpec } from '../types.ts';
import { mdTable, n0, n2, ratio, verdict, type Section } from './markdown.ts';
import { measureSideBySide, OPEN_LOOP_CONNECTIONS, openTarget, type BenchTiming, type Measured, type ModelWorkload, type Target } from './measure.ts';
import { neighbourComparison } from './neighbour.ts';
import { overloadComparison } from './overload.ts';
import { SATURATION_CONNECTIONS, type BenchEnv } from './sections.ts';
import { stageBreakdown, TRACE_RATE, TraceReader } from './stages.ts';

/** Offered rates of the side-by-side rows: light load, the issue's 1,000, and twice that. */
export const FLOOR_RATES = [250, 1000, 2000] as const;
export const FLOOR_SLO_P99_MS = 10;
/** The generator's own P99 against a bare echo must stay well under the objective it judges. */
export const GENERATOR_TAIL_P99_MS = 1.5;
/** Where both searches start; each brackets by doubling or halving from here, then bisects. */
export const FLOOR_SEARCH_START = 500;

const open = (rate: number): StepSpec => ({ mode: 'open', rate });

/**
 * The contenders. sluice is not scraped here: its metrics endpoint's work would count in its CPU per
 * request, and the naive server and the echo have none.
 */
function targets(env: BenchEnv): Record<'sluice' | 'naive' | 'echo' | 'sluiceBinary' | 'echoBinary' | 'sluiceGrpc' | 'echoGrpc', Target> {
  return {
    sluice: { name: 'sluice', protocol: 'json', url: env.sluice.http, check: true, pids: env.pids.sluice },
    naive: { name: 'naive server', protocol: 'json', url: env.naive, check: true, pids: env.pids.naive },
    echo: { name: 'bare Fastify echo', protocol: 'json', url: env.echoHttp, check: false, pids: env.pids.echoHttp },
    sluiceBinary: { name: 'sluice', protocol: 'binary', url: env.sluice.http, check: true, pids: env.pids.sluice },
    echoBinary: { name: 'bare Fastify echo', protocol: 'binary', url: env.echoHttp, check: false, pids: env.pids.echoHttp },
    sluiceGrpc: { name: 'sluice', protocol: 'grpc', grpcUrl: env.sluice.grpc, check: true, pids: env.pids.sluice },
    echoGrpc: { name: 'bare grpc-js echo', protocol: 'grpc', grpcUrl: env.echoGrpc, check: false, pids: env.pids.echoGrpc },
  };
}

const cpuCell = (m: Measured): string => n0(m.cpuUsPerRequest);
const lateCell = (m: Measured): string => n0(Math.max(...m.runs.map((r) => r.late)));

function rateRows(ms: readonly Measured[]): string[][] {
  return ms.map((m) => [n0(m.spec.mode === 'open' ? m.spec.rate : undefined), m.target.name, n0(m.qps), n2(m.p50), n2(m.p99), lateCell(m), cpuCell(m)]);
}

const errorsNote = (ms: readonly Measured[]): string => {
  const bad = ms.filter((m) => m.errors > 0 || m.wrong > 0);
  return bad.length === 0 ? 'No errors; every sampled answer checked right.' : `Errors: ${bad.map((m) => `${m.target.name} ${m.spec.mode === 'open' ? `at ${m.spec.rate}/s` : `at ${m.spec.concurrency} connections`}: ${m.errors} (${m.wrong} wrong answers)`).join('; ')}.`;
};

/** The highest open-loop rate with P99 <= the SLO, by the same bracketing and bisection for every server. */
async function highestRate(target: Target, w: ModelWorkload, t: BenchTiming, maxSteps: number): Promise<{ best: number | undefined; fail: number | undefined; converged: boolean; rows: string[][] }> {
  const { driver, check } = await openTarget(target, 'mlp', w);
  try {
    const steps: StepResult[] = [];
    const settings = { warmupMs: t.warmupMs, durationMs: t.durationMs, drainTimeoutMs: 30_000, maxRequests: 50_000_000, check, metricsUrl: undefined, model: 'mlp', serverPids: target.pids ?? [] };
    const { search } = await searchSlo(async (rate) => {
      const s = await runStep(driver, open(rate), settings);
      steps.push(s);
      t.log(`  ${target.name} ${s.label}: ${s.qps.toFixed(0)} req/s, p99 ${s.latencyMs.p99.toFixed(2)} ms, late ${s.late}`);
      return s;
    }, { sloP99Ms: FLOOR_SLO_P99_MS, startRate: FLOOR_SEARCH_START, minRate: 1, maxRate: 1_000_000, maxSteps, tolerance: 0.05, maxErrorRate: 0.001, minAchievedFraction: 0.9 });
    const rows = search.steps.map((s, i) => {
      const st = steps[i]!;
      return [target.name, n0(s.rate), n0(st.qps), n2(st.latencyMs.p50), n2(st.latencyMs.p99), String(st.late), n0(st.serverCpu?.usPerRequest), s.pass ? 'pass' : 'fail'];
    });
    return { best: search.bestRate, fail: search.failRate, converged: search.converged, rows };
  } finally {
    await driver.close();
  }
}

const bestText = (name: string, r: { best: number | undefined; fail: number | undefined; converged: boolean }): string =>
  `${name}: ${r.best === undefined ? 'no rate passed' : `**${n0(r.best)} req/s**`}${r.fail !== undefined ? ` (fails at ${n0(r.fail)})` : ''}${r.converged ? '' : ', not converged within the step budget'}`;

/**
 * (g) The latency floor: sluice, the naive server and a bare echo side by side on mlp, open loop, over
 * REST JSON, REST binary and gRPC, each sluice row broken down by stage from sluice's own traces. The
 * echo row is the generator's own tail: what the tool adds when the server adds almost nothing. Then a
 * neighbour sending 60 MB bodies, the highest rate each server holds P99 <= 10 ms at, sluice at twice
 * the naive server's, CPU per request at saturation, and overload at 3x capacity.
 */
export async function latencyFloor(env: BenchEnv, t: BenchTiming, searchSteps: number): Promise<Section> {
  const w = await env.workload('mlp');
  const tg = targets(env);
  const traces = new TraceReader(env.sluice.traceFile, Number(process.hrtime.bigint()));
  const rows = (...contenders: Target[]): { target: Target; spec: StepSpec }[] => FLOOR_RATES.flatMap((rate) => contenders.map((target) => ({ target, spec: open(rate) })));
  const json = await measureSideBySide('mlp', w, rows(tg.sluice, tg.naive, tg.echo), t);
  const at = (rate: number, name: string, ms: readonly Measured[]): Measured | undefined => ms.find((m) => m.spec.mode === 'open' && m.spec.rate === rate && m.target.name === name);
  // The naive server speaks REST JSON only: binary and gRPC rows are sluice and the echo.
  const binary = await measureSideBySide('mlp', w, rows(tg.sluiceBinary, tg.echoBinary), t);
  const grpc = await measureSideBySide('mlp', w, rows(tg.sluiceGrpc, tg.echoGrpc), t);
  t.log('  a neighbour sending 60 MB bodies');
  const neighbour = await neighbourComparison(tg.sluice, w, t);

  t.log('  searching the highest rate with P99 <= 10 ms: sluice, then the naive server');
  const sluiceBest = await highestRate(tg.sluice, w, t, searchSteps);
  const naiveBest = await highestRate(tg.naive, w, t, searchSteps);
  const twice = naiveBest.best !== undefined ? 2 * naiveBest.best : undefined;
  const [atTwice] = twice !== undefined ? await measureSideBySide('mlp', w, [{ target: tg.sluice, spec: open(twice) }], t) : [];

  const saturated = await measureSideBySide('mlp', w, [tg.sluice, tg.naive, tg.echo].map((target) => ({ target, spec: { mode: 'closed', concurrency: SATURATION_CONNECTIONS } as const })), t);
  const [satS, satN, satE] = saturated;
  t.log('  overload at 3x capacity');
  const overload = await overloadComparison({ url: env.overload.http, metrics: env.overload.metrics, pids: env.pids.overload }, saturated[0]!, w, t);
  // Read last: sluice writes its traces every 100, and the searches and saturation runs since the
  // tables pushed the tables' traces out of its buffer.
  await traces.readNew();
  const stages = (ms: readonly Measured[]): string => stageBreakdown(traces, 'mlp', ms.filter((m) => m.target.name === 'sluice'));

  const s250 = at(250, 'sluice', json);
  const n250 = at(250, 'naive server', json);
  const s1000 = at(1000, 'sluice', json);
  const n1000 = at(1000, 'naive server', json);
  const e1000 = at(1000, 'bare Fastify echo', json);
  const e2000 = at(2000, 'bare Fastify echo', json);
  const p50Ratio = s250 && n250 ? s250.p50 / n250.p50 : undefined;
  const rateRatio = sluiceBest.best !== undefined && naiveBest.best !== undefined ? sluiceBest.best / naiveBest.best : undefined;
  const echoTail = e1000 && e2000 ? Math.max(e1000.p99, e2000.p99) : undefined;
  const cpuVsNaive = satS?.cpuUsPerRequest !== undefined && satN?.cpuUsPerRequest !== undefined ? satS.cpuUsPerRequest / satN.cpuUsPerRequest : undefined;
  const cpuVsEcho = satS?.cpuUsPerRequest !== undefined && satE?.cpuUsPerRequest !== undefined ? satS.cpuUsPerRequest / satE.cpuUsPerRequest : undefined;
  const head = ['offered req/s', 'server', 'achieved req/s', 'P50 ms', 'P99 ms', 'late sends (max)', 'server CPU us/req'];

  return {
    title: `(g) The latency floor: sluice vs the naive server vs a bare echo (mlp, open loop; REST over ${OPEN_LOOP_CONNECTIONS} connections, gRPC)`,
    body: [
      `Open loop from \`sluice loadtest\`'s driver process (raw keep-alive sockets, one request in flight per connection, sends at their intended times, latency from the intended time); medians of ${t.repeats} interleaved run(s). Server CPU: user + system time of the server's processes (sluice's workers included) from /proc over the measured window, per answered request. sluice is not scraped in this section, so that its metrics endpoint does not count in its CPU.`,
      '',
      '**REST JSON**',
      '',
      mdTable(head, rateRows(json)),
      '',
      verdict('P50 at 250 req/s: sluice <= 1.15x the naive server', p50Ratio === undefined ? undefined : p50Ratio <= 1.15, `${ratio(p50Ratio)}: ${n2(s250?.p50)} vs ${n2(n250?.p50)} ms`),
      verdict('P99 at 1,000 req/s: sluice <= the naive server', s1000 && n1000 ? s1000.p99 <= n1000.p99 : undefined, `${n2(s1000?.p99)} vs ${n2(n1000?.p99)} ms`),
      verdict(`the generator's own tail: the echo's P99 at 1,000 and 2,000 req/s < ${GENERATOR_TAIL_P99_MS} ms`, echoTail === undefined ? undefined : echoTail < GENERATOR_TAIL_P99_MS, `${n2(e1000?.p99)} and ${n2(e2000?.p99)} ms`),
      errorsNote(json),
      '',
      `Where sluice's time goes, per stage (medians in us over the traced requests of every run of a rate: sluice traces one request in ${TRACE_RATE}, with process.hrtime stamps that the bench shares, so a trace counts for the run whose measured window holds its start; the server total runs from the request's headers to the response handed to the socket):`,
      '',
      stages(json),
      '',
      '**REST binary** (binary tensor extension; the naive server speaks JSON only, so sluice and the echo)',
      '',
      mdTable(head, rateRows(binary)),
      '',
      "sluice's stages (us), as under REST JSON:",
      '',
      stages(binary),
      '',
      errorsNote(binary),
      '',
      '**gRPC** (ModelInfer with raw tensor contents; sluice and the bare grpc-js echo. This open loop is grpc-js on one channel in the bench process, not the REST driver process: compare sluice with the grpc-js echo, not with the REST rows)',
      '',
      mdTable(head, rateRows(grpc)),
      '',
      "sluice's stages (us), as under REST JSON:",
      '',
      stages(grpc),
      '',
      errorsNote(grpc),
      '',
      neighbour,
      '',
      `**Highest rate with P99 <= ${FLOOR_SLO_P99_MS} ms** (REST JSON; both searches start at ${FLOOR_SEARCH_START} req/s, double or halve to a bracket, then bisect to 5%; one run per step)`,
      '',
      mdTable(['server', 'offered req/s', 'achieved req/s', 'P50 ms', 'P99 ms', 'late sends', 'server CPU us/req', 'verdict'], [...sluiceBest.rows, ...naiveBest.rows]),
      '',
      `${bestText('sluice', sluiceBest)}; ${bestText('naive server', naiveBest)}.`,
      verdict('highest passing rate: sluice >= 3x the naive server', rateRatio === undefined ? undefined : rateRatio >= 3, ratio(rateRatio)),
      verdict(`at twice the naive server's highest passing rate (${n0(twice)} req/s): sluice's P99 <= 5 ms`, atTwice ? atTwice.p99 <= 5 : undefined, atTwice ? `${n2(atTwice.p99)} ms at ${n0(atTwice.qps)} req/s achieved` : 'not measured'),
      '',
      `**CPU per request at saturation** (closed loop, ${SATURATION_CONNECTIONS} connections, autocannon)`,
      '',
      mdTable(['server', 'req/s', 'P50 ms', 'P99 ms', 'server CPU us/req'], saturated.map((m) => [m.target.name, n0(m.qps), n2(m.p50), n2(m.p99), cpuCell(m)])),
      '',
      verdict('server CPU per request: sluice <= 1/6 of the naive server', cpuVsNaive === undefined ? undefined : cpuVsNaive <= 1 / 6, `${ratio(cpuVsNaive)} of it`),
      verdict('server CPU per request: sluice <= 2x the bare echo', cpuVsEcho === undefined ? undefined : cpuVsEcho <= 2, `${ratio(cpuVsEcho)} of it`),
      errorsNote(saturated),
      '',
      overload,
    ].join('\n'),
  };
}
