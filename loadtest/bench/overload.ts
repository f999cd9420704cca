/**
 * Overload at three times capacity, on a sluice whose mlp has a queue budget (sluice's
 * max_expected_wait_microseconds in dynamic_batching's default_queue_policy, read by
 * src/repository/pbtxt-config.ts). A request whose expected wait passes the budget is refused on
 * arrival with 503 (SLUICE_EXPECTED_WAIT_TOO_LONG), so that the ones accepted keep their latency: the
 * answered requests' tail and the refusals' speed are what an operator relies on.
 */
import type { StepResult } from '../types.ts';
import { mdTable, n0, n2, verdict } from './markdown.ts';
import { measureSideBySide, median, type BenchTiming, type Measured, type ModelWorkload, type Target } from './measure.ts';
import { SATURATION_CONNECTIONS } from './sections.ts';

/** The overload server's queue budget: the answered requests' P99 is judged against twice it. */
export const QUEUE_BUDGET_US = 20_000;
/** The overload server's mlp config (the model file is the sample repository's). */
export const QUEUE_BUDGET_CONFIG = `name: "mlp"\nmax_batch_size: 32\ndynamic_batching { default_queue_policy { max_expected_wait_microseconds: ${QUEUE_BUDGET_US} } }\n`;
export const OVERLOAD_FACTOR = 3;
/** The open loop's bound on requests in flight, set above the connections so that they, not it, bound the load. */
const OVERLOAD_MAX_OUTSTANDING = 4096;
const REFUSAL_P99_MS = 5;

const SHED = 'http 503';

/** Medians over the runs of what the refusals did. */
function refusals(m: Measured): { perSecond: number; total: number; p50: number | undefined; p99: number | undefined; other: Record<string, number> } {
  const p = (f: (r: StepResult) => number | undefined): number | undefined => {
    const v = m.runs.map(f).filter((x): x is number => x !== undefined);
    return v.length > 0 ? median(v) : undefined;
  };
  const other: Record<string, number> = {};
  for (const r of m.runs) for (const [k, v] of Object.entries(r.errors)) if (k !== SHED) other[k] = (other[k] ?? 0) + v;
  return {
    perSecond: p((r) => (r.seconds > 0 ? (r.errors[SHED] ?? 0) / r.seconds : undefined)) ?? 0,
    total: m.runs.reduce((n, r) => n + (r.errors[SHED] ?? 0), 0),
    p50: p((r) => r.refusedLatencyMs?.p50),
    p99: p((r) => r.refusedLatencyMs?.p99),
    other,
  };
}

/**
 * The budget server at three times `capacity`'s achieved rate, open loop over as many connections.
 * Capacity is a closed loop at 256 connections on the same gateway and model without the budget (the
 * caller's saturation row): against the budget, the closed loop's connections resend each 503 at once,
 * so what it answers measures a storm of refusals, not capacity.
 */
export async function overloadComparison(budget: { url: string; metrics: string; pids: readonly number[] }, capacity: Measured, w: ModelWorkload, t: BenchTiming): Promise<string> {
  const target: Target = { name: `sluice, queue budget ${QUEUE_BUDGET_US / 1000} ms`, protocol: 'json', url: budget.url, check: true, pids: budget.pids, metricsUrl: budget.metrics, connections: SATURATION_CONNECTIONS, maxOutstanding: OVERLOAD_MAX_OUTSTANDING };
  const rate = OVERLOAD_FACTOR * capacity.qps;
  t.log(`  capacity ${capacity.qps.toFixed(0)} req/s: overload at ${rate.toFixed(0)} req/s`);
  const [over] = await measureSideBySide(w.meta.name, w, [{ target, spec: { mode: 'open', rate } }], t);
  const row = (label: string, offered: string, m: Measured): string[] => {
    const r = refusals(m);
    const server = m.medianRun.server;
    return [label, offered, n0(m.qps), n2(m.p50), n2(m.p99), n2(server?.serverP99Ms), n0(r.total), n0(r.perSecond), n2(r.p50), n2(r.p99), n2(server?.serverShedP99Ms), n0(Math.max(...m.runs.map((x) => x.late))), n0(m.cpuUsPerRequest)];
  };
  const shed = refusals(over!);
  const serverView = over!.medianRun.server;
  const answered = over!.runs.some((r) => r.ok > 0);
  const budgetMs = (2 * QUEUE_BUDGET_US) / 1000;
  const other = Object.entries(shed.other).map(([k, v]) => `${k}: ${n0(v)}`).join(', ');
  return [
    `**Overload at ${OVERLOAD_FACTOR}x capacity** (a second sluice whose mlp sets \`max_expected_wait_microseconds: ${QUEUE_BUDGET_US}\` in \`dynamic_batching { default_queue_policy { ... } }\`; REST JSON, open loop over ${SATURATION_CONNECTIONS} connections with up to ${OVERLOAD_MAX_OUTSTANDING} requests in flight, latency from each request's intended send time. Capacity: the saturation row above, a closed loop at ${SATURATION_CONNECTIONS} connections on the same gateway and model without the budget; against the budget, a closed loop resends each 503 at once, and what it answers measures a storm of refusals rather than capacity)`,
    '',
    mdTable(['step', 'offered req/s', 'answered req/s', 'answered P50 ms', 'answered P99 ms', 'answered P99 in sluice ms', '503 answers (all runs)', '503/s', 'refused P50 ms', 'refused P99 ms', 'refused P99 in sluice ms', 'late sends (max)', 'server CPU us/req'], [
      row(`capacity: ${capacity.target.name} without the budget, closed loop c=${SATURATION_CONNECTIONS}`, '–', capacity),
      row(`${target.name}, ${OVERLOAD_FACTOR}x capacity, open loop`, n0(rate), over!),
    ]),
    '',
    `Answered: 2xx responses (their latency alone); refused: 503 answers, timed from their intended send time like the rest. "In sluice": the same requests from the gateway's own histogram (sluice_request_duration_seconds by status, success and queue_full), from the moment their headers were read to the answer, as histogram_quantile estimates them. When the generator falls behind (late sends), the client-side times also hold the time a request waited in the generator, on these shared cores, before it was sent; the times in sluice do not.${other === '' ? ' No other errors.' : ` Other errors at ${OVERLOAD_FACTOR}x: ${other}.`}`,
    verdict(`at ${OVERLOAD_FACTOR}x capacity, answered requests' P99 within 2x the model's queue budget (${budgetMs} ms), client side`, answered ? over!.p99 <= budgetMs : undefined, answered ? `${n2(over!.p99)} ms` : 'nothing was answered'),
    verdict(`the same, in sluice`, answered && serverView?.serverP99Ms !== undefined ? serverView.serverP99Ms <= budgetMs : undefined, `${n2(serverView?.serverP99Ms)} ms`),
    verdict(`the excess gets 503 in under ${REFUSAL_P99_MS} ms (P99 of refused requests), client side`, shed.p99 === undefined ? undefined : shed.p99 < REFUSAL_P99_MS, shed.p99 === undefined ? 'nothing was refused' : `${n2(shed.p99)} ms over ${n0(shed.total)} refusals`),
    verdict(`the same, in sluice`, serverView?.serverShedP99Ms === undefined ? undefined : serverView.serverShedP99Ms < REFUSAL_P99_MS, `${n2(serverView?.serverShedP99Ms)} ms`),
  ].join('\n');
}
