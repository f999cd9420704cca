import { createDriver } from '../driver.ts';
import { planCheck } from '../prepare.ts';
import { searchSlo } from '../search.ts';
import { runStep } from '../step.ts';
import type { StepResult } from '../types.ts';
import { mdTable, n0, n2, type Section } from './markdown.ts';
import { OPEN_LOOP_CONNECTIONS, type BenchTiming } from './measure.ts';
import type { BenchEnv } from './sections.ts';

export const SLO_P99_MS = 10;

/**
 * (f) The operator's question on mlp: the highest open-loop rate whose P99 stays under 10 ms, found by
 * a closed-loop capacity probe, then bracketing and bisection (REST binary, the lightest REST client).
 */
export async function sloSearch(env: BenchEnv, t: BenchTiming, maxSteps: number): Promise<Section> {
  const w = await env.workload('mlp');
  const driver = createDriver({
    protocol: 'binary', url: env.sluice.http, grpcUrl: undefined, model: 'mlp', version: '', variants: w.variants,
    timeoutMs: 60_000, connections: OPEN_LOOP_CONNECTIONS, maxOutstanding: 1024, lateThresholdMs: 5, checkEvery: 16,
  });
  try {
    const { check } = await planCheck(driver, w.meta, w.variants, { enabled: true, rtol: 1e-3 });
    const settings = { warmupMs: t.warmupMs, durationMs: t.durationMs, drainTimeoutMs: 30_000, maxRequests: 50_000_000, check, metricsUrl: env.sluice.metrics, model: 'mlp' };
    const probe = await runStep(driver, { mode: 'closed', concurrency: 16 }, settings);
    t.log(`  probe c=16: ${probe.qps.toFixed(0)} req/s, p99 ${probe.latencyMs.p99.toFixed(2)} ms`);
    const steps: StepResult[] = [];
    const { search } = await searchSlo(async (rate) => {
      const s = await runStep(driver, { mode: 'open', rate }, settings);
      steps.push(s);
      t.log(`  ${s.label}: ${s.qps.toFixed(0)} req/s, p99 ${s.latencyMs.p99.toFixed(2)} ms, late ${s.late}`);
      return s;
    }, { sloP99Ms: SLO_P99_MS, startRate: Math.max(1, probe.qps * 0.5), minRate: 1, maxRate: 1_000_000, maxSteps, tolerance: 0.05, maxErrorRate: 0.001, minAchievedFraction: 0.9 });
    const rows = search.steps.map((s, i) => {
      const st = steps[i]!;
      return [n0(s.rate), n0(st.qps), n2(st.latencyMs.p50), n2(st.latencyMs.p99), n2(st.server?.meanBatchSize), String(st.late), s.pass ? 'pass' : 'fail', s.reason];
    });
    const answer = search.bestRate === undefined
      ? `No rate kept P99 under ${SLO_P99_MS} ms (down to ${n0(search.steps.at(-1)?.rate)} req/s).`
      : `**Highest rate with P99 <= ${SLO_P99_MS} ms: ${n0(search.bestRate)} req/s**${search.failRate !== undefined ? ` (fails at ${n0(search.failRate)})` : ''}${search.converged ? '' : `; not converged to 5% within ${maxSteps} steps`}.`;
    return {
      title: `(f) Highest rate with P99 under ${SLO_P99_MS} ms (mlp, REST binary, open loop)`,
      body: [
        `Closed-loop probe at 16 connections: ${n0(probe.qps)} req/s; the search starts at half of it.`,
        '',
        mdTable(['offered req/s', 'achieved req/s', 'P50 ms', 'P99 ms', 'mean batch', 'late sends', 'verdict', 'why'], rows),
        '',
        answer,
      ].join('\n'),
    };
  } finally {
    await driver.close();
  }
}
