import { createDriver } from './driver.ts';
import type { LoadtestOptions } from './options.ts';
import { loadVariants, modelMetadata, planCheck } from './prepare.ts';
import { NO_PROGRESS, type Progress } from './progress.ts';
import { defaultMetricsUrl, scrape } from './scrape.ts';
import { searchSlo } from './search.ts';
import { runStep, type StepSettings } from './step.ts';
import type { RunReport, StepResult, StepSpec } from './types.ts';
import type { ModelMeta } from './workload.ts';

/** What a run produced beyond the report: correctness, for the exit status. */
export interface RunOutcome {
  readonly report: RunReport;
  readonly checkKind: 'simple' | 'reference' | 'none';
  readonly wrong: number;
  readonly firstWrong: string | undefined;
  /** Why the server's view is missing, when it is. */
  readonly metricsNote: string | undefined;
}

/** Side channels of a run: progress, notes for the operator, and a signal that stops it between steps. */
export interface RunIo {
  readonly progress?: Progress;
  readonly note?: (text: string) => void;
  readonly signal?: AbortSignal;
}

/** The closed-loop concurrency that estimates capacity before a search that was given no start rate. */
const PROBE_CONCURRENCY = 16;

/** Runs every step the options ask for (closed, then open, then the SLO search) against the target. */
export async function runLoadtest(o: LoadtestOptions, io: RunIo = {}): Promise<RunOutcome> {
  const startedAt = new Date().toISOString();
  const note = io.note ?? ((): void => undefined);
  let meta: ModelMeta | undefined;
  try {
    meta = await modelMetadata(o);
  } catch (e) {
    // With --input the metadata is only a help (simple-model detection); without it, nothing can be generated.
    if (o.inputFile === undefined) throw e;
    note(`model metadata unavailable (${(e as Error).message}); checking against reference responses`);
  }
  const variants = await loadVariants(o.inputFile, meta, { seed: o.seed, variants: o.variants, batch: o.batch, shapes: o.shapes });
  const driver = createDriver({
    protocol: o.protocol, url: o.url, grpcUrl: o.grpcUrl, model: o.model, version: o.version, variants,
    timeoutMs: o.timeoutMs, connections: o.connections, maxOutstanding: o.maxOutstanding, lateThresholdMs: o.lateThresholdMs, checkEvery: o.checkEvery,
    headers: o.headers,
  });
  // The open loop's driver process starts while the reference answers are fetched; its step waits for it.
  if (o.rates.length > 0 || o.sloP99Ms !== undefined) driver.prepare({ mode: 'open', rate: 1 }).catch(() => undefined);
  const steps: StepResult[] = [];
  let search: RunReport['search'];
  let plan;
  let metricsNote: string | undefined;
  try {
    plan = await planCheck(driver, meta, variants, { enabled: o.checkEvery > 0, rtol: o.rtol });
    let metricsUrl = o.metrics ? (o.metricsUrl ?? defaultMetricsUrl(o.url, o.grpcUrl)) : undefined;
    if (metricsUrl && !(await scrape(metricsUrl))) {
      metricsNote = `no metrics at ${metricsUrl}: the server's view is left out (give --metrics-url, or --no-metrics)`;
      note(metricsNote);
      metricsUrl = undefined;
    }
    const settings: StepSettings = {
      warmupMs: o.warmupMs, durationMs: o.durationMs, drainTimeoutMs: o.drainTimeoutMs, maxRequests: o.maxRequests,
      check: plan.check, metricsUrl, model: o.model, serverPids: o.serverPids, ...(io.progress ? { progress: io.progress } : { progress: NO_PROGRESS }), ...(io.signal ? { signal: io.signal } : {}),
    };
    const run = async (spec: StepSpec): Promise<StepResult> => {
      const r = await runStep(driver, spec, settings);
      steps.push(r);
      return r;
    };
    const concurrency = o.concurrency.length === 0 && o.rates.length === 0 && o.sloP99Ms === undefined ? [1] : o.concurrency;
    for (const c of concurrency) {
      if (io.signal?.aborted) break;
      await run({ mode: 'closed', concurrency: c });
    }
    for (const rate of o.rates) {
      if (io.signal?.aborted) break;
      await run({ mode: 'open', rate });
    }
    if (o.sloP99Ms !== undefined && !io.signal?.aborted) {
      let capacity = Math.max(0, ...steps.map((s) => s.qps));
      if (capacity === 0) capacity = (await run({ mode: 'closed', concurrency: PROBE_CONCURRENCY })).qps;
      const start = Math.max(1, capacity * 0.5);
      const result = await searchSlo((rate) => run({ mode: 'open', rate }), {
        sloP99Ms: o.sloP99Ms, startRate: start, minRate: Math.min(1, start), maxRate: o.maxRate, maxSteps: o.searchSteps,
        tolerance: o.searchTolerance, maxErrorRate: o.maxErrorRate, minAchievedFraction: 0.9, ...(io.signal ? { signal: io.signal } : {}),
      });
      search = result.search;
    }
  } finally {
    await driver.close();
  }
  const wrong = steps.reduce((n, s) => n + s.wrong, 0);
  return {
    report: {
      tool: 'sluice loadtest',
      startedAt,
      finishedAt: new Date().toISOString(),
      target: { url: o.protocol === 'grpc' ? undefined : o.url, grpcUrl: o.protocol === 'grpc' ? o.grpcUrl : undefined, model: o.model, protocol: o.protocol },
      settings: {
        durationMs: o.durationMs, warmupMs: o.warmupMs, checkEvery: o.checkEvery, check: plan.kind, variants: variants.length, seed: o.seed,
        batch: o.batch, connections: o.connections, maxOutstanding: o.maxOutstanding, timeoutMs: o.timeoutMs, serverPids: o.serverPids,
      },
      steps,
      search,
    },
    checkKind: plan.kind,
    wrong,
    firstWrong: plan.firstWrong(),
    metricsNote,
  };
}
