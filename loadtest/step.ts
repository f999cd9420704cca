import type { Driver } from './driver.ts';
import type { Timing } from './loops.ts';
import { NO_PROGRESS, type Progress } from './progress.ts';
import { Recorder } from './recorder.ts';
import { DepthSampler, scrape, serverView, type Snapshot } from './scrape.ts';
import { CpuMeter } from './server-cpu.ts';
import { WRONG_ANSWER } from './transport.ts';
import type { OutputCheck, StepResult, StepSpec } from './types.ts';

/** How every step of a run is timed and observed. */
export interface StepSettings {
  readonly warmupMs: number;
  readonly durationMs: number;
  readonly drainTimeoutMs: number;
  readonly maxRequests: number;
  readonly check: OutputCheck | undefined;
  /** Prometheus endpoint of the server, for its own view of the step. */
  readonly metricsUrl: string | undefined;
  readonly model: string;
  /** Server processes (descendants included) whose CPU time per answered request each step reports. */
  readonly serverPids?: readonly number[];
  readonly progress?: Progress;
  readonly signal?: AbortSignal;
}

export function stepLabel(spec: StepSpec): string {
  return spec.mode === 'closed' ? `c=${spec.concurrency}` : `r=${Number(spec.rate.toFixed(1))}/s`;
}

/**
 * Runs one step: warm-up, then measurement, with the server scraped at the start of measurement, once
 * a second during it (queue depth) and at the end. Warm-up requests reach the server but not the results.
 */
export async function runStep(driver: Driver, spec: StepSpec, s: StepSettings): Promise<StepResult> {
  const label = stepLabel(spec);
  const progress = s.progress ?? NO_PROGRESS;
  const scrapeUrl = s.metricsUrl;
  let before: Snapshot | undefined;
  await driver.prepare(spec);
  if (scrapeUrl && s.warmupMs === 0) before = await scrape(scrapeUrl);
  const startMs = performance.now();
  const timing: Timing = { startMs, warmupMs: s.warmupMs, durationMs: s.durationMs, drainTimeoutMs: s.drainTimeoutMs, maxRequests: s.maxRequests, ...(s.signal ? { stop: s.signal } : {}) };
  // When the operator stops the step, it is measured up to that moment, not over its planned duration.
  let stoppedAtMs: number | undefined;
  const onStop = (): void => void (stoppedAtMs ??= performance.now());
  if (s.signal?.aborted === true) onStop();
  s.signal?.addEventListener('abort', onStop, { once: true });
  const recorder = new Recorder(startMs + s.warmupMs, spec.mode === 'open' ? 'due' : 'completion');
  let sampler: DepthSampler | undefined;
  let beforeTaken: Promise<void> = Promise.resolve();
  const pids = s.serverPids ?? [];
  let cpu: CpuMeter | undefined;
  const startMeasuring = (): void => {
    if (pids.length > 0) cpu ??= new CpuMeter(pids);
    if (!scrapeUrl) return;
    sampler = new DepthSampler(scrapeUrl, s.model, 1000);
    if (!before) beforeTaken = scrape(scrapeUrl).then((snap) => void (before = snap));
  };
  if (s.warmupMs === 0 && pids.length > 0) cpu = new CpuMeter(pids);
  const measureTimer = setTimeout(startMeasuring, s.warmupMs);
  measureTimer.unref();
  const totalS = (s.warmupMs + s.durationMs) / 1000;
  const ticker = setInterval(() => {
    const { qps, p99Ms } = recorder.takeInterval();
    progress.update(label, (performance.now() - startMs) / 1000, totalS, qps, p99Ms, recorder.errorsSeen);
  }, 1000);
  ticker.unref();

  let loop;
  try {
    loop = spec.mode === 'closed'
      ? await driver.closed(spec.concurrency, recorder, timing, s.check)
      : await driver.open(spec.rate, recorder, timing, s.check);
  } finally {
    s.signal?.removeEventListener('abort', onStop);
    clearTimeout(measureTimer);
    clearInterval(ticker);
    progress.done();
  }
  // Read before the scrape below, whose rendering is the server's work but not the step's.
  cpu?.stop();
  await beforeTaken;
  const after = scrapeUrl ? await scrape(scrapeUrl) : undefined;
  const depth = sampler?.stop() ?? { mean: undefined, max: undefined };
  const stats = recorder.stats();
  recorder.destroy();
  // Answered: the server sent a response, whatever its status; not timeouts, resets or unsent requests.
  const answered = stats.ok + Object.entries(stats.errors).filter(([k]) => k.startsWith('http ') || k === WRONG_ANSWER).reduce((n, [, v]) => n + v, 0);
  const serverCpu = cpu?.reading === true ? cpu.result(answered) : undefined;
  const measureFromMs = startMs + s.warmupMs;
  const interrupted = stoppedAtMs !== undefined && stoppedAtMs < measureFromMs + s.durationMs;
  const plannedMs = interrupted ? Math.max(0, stoppedAtMs! - measureFromMs) : s.durationMs;
  // A step stopped during its warm-up measured nothing: no rate rather than a made-up one.
  const seconds = Math.max(plannedMs, stats.spanMs) / 1000;
  return {
    label,
    spec,
    protocol: driver.protocol,
    seconds,
    qps: seconds > 0 ? stats.ok / seconds : 0,
    ...(interrupted ? { interrupted: true as const } : {}),
    responses: stats.responses,
    ok: stats.ok,
    errors: stats.errors,
    errorCount: stats.errorCount,
    sent: loop.sent,
    aborted: loop.aborted,
    late: loop.late,
    maxSendLagMs: loop.maxSendLagMs,
    checked: stats.checked,
    wrong: stats.wrong,
    latencyMs: stats.latencyMs,
    ...(stats.refusedLatencyMs ? { refusedLatencyMs: stats.refusedLatencyMs } : {}),
    percentiles: stats.percentiles,
    server: before && after ? serverView(before, after, s.model, depth) : undefined,
    serverCpu,
  };
}
