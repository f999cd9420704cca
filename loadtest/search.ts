import type { SearchResult, StepResult } from './types.ts';

/** Bounds and pass criteria of the search for the highest rate whose P99 stays under an SLO. */
export interface SearchOptions {
  readonly sloP99Ms: number;
  readonly startRate: number;
  readonly minRate: number;
  readonly maxRate: number;
  /** Steps at most, bracketing and bisection together. */
  readonly maxSteps: number;
  /** Stop when the bracket [pass, fail] is narrower than this ratio (0.05 = 5%). */
  readonly tolerance: number;
  /** A step with more errors than this fraction of its responses fails whatever its P99. */
  readonly maxErrorRate: number;
  /** A step that achieves less than this fraction of the offered rate fails (the server fell behind). */
  readonly minAchievedFraction: number;
  /** Stops the search before its next step. */
  readonly signal?: AbortSignal;
}

/** Whether a step meets the SLO, and why not. */
export function verdict(step: StepResult, rate: number, o: SearchOptions): { pass: boolean; reason: string } {
  const responses = Math.max(1, step.responses);
  if (step.ok === 0) return { pass: false, reason: 'no successful responses' };
  if (step.errorCount / responses > o.maxErrorRate) return { pass: false, reason: `error rate ${((100 * step.errorCount) / responses).toFixed(2)}% > ${(100 * o.maxErrorRate).toFixed(2)}%` };
  if (step.latencyMs.p99 > o.sloP99Ms) return { pass: false, reason: `p99 ${step.latencyMs.p99.toFixed(2)} ms > ${o.sloP99Ms} ms` };
  if (step.qps < o.minAchievedFraction * rate) return { pass: false, reason: `achieved ${step.qps.toFixed(1)} of ${rate.toFixed(1)} req/s` };
  return { pass: true, reason: `p99 ${step.latencyMs.p99.toFixed(2)} ms <= ${o.sloP99Ms} ms` };
}

/**
 * Brackets (doubling up from a passing rate, halving down from a failing one), then bisects the bracket
 * until it is narrower than the tolerance or the step budget is spent. Each probe is a full open-loop
 * step, so the answer is the rate at which the tail held, not an extrapolation.
 */
export async function searchSlo(runAt: (rate: number) => Promise<StepResult>, o: SearchOptions): Promise<{ search: SearchResult; steps: StepResult[] }> {
  const steps: StepResult[] = [];
  const log: { rate: number; pass: boolean; reason: string; label: string }[] = [];
  let lo: number | undefined;
  let hi: number | undefined;
  let rate = Math.min(o.maxRate, Math.max(o.minRate, o.startRate));
  while (steps.length < o.maxSteps && !o.signal?.aborted) {
    const step = await runAt(rate);
    steps.push(step);
    const v = verdict(step, rate, o);
    log.push({ rate, pass: v.pass, reason: v.reason, label: step.label });
    if (v.pass) lo = Math.max(lo ?? 0, rate);
    else hi = Math.min(hi ?? Infinity, rate);
    if (lo === undefined) {
      if (rate <= o.minRate) break;
      rate = Math.max(o.minRate, rate / 2);
    } else if (hi === undefined) {
      if (rate >= o.maxRate) break;
      rate = Math.min(o.maxRate, rate * 2);
    } else {
      if (hi / lo <= 1 + o.tolerance) break;
      rate = (lo + hi) / 2;
    }
  }
  return {
    search: {
      sloP99Ms: o.sloP99Ms,
      bestRate: lo,
      failRate: hi,
      converged: lo !== undefined && hi !== undefined && hi / lo <= 1 + o.tolerance,
      steps: log,
    },
    steps,
  };
}
