import { createDriver, type Driver } from '../driver.ts';
import { planCheck } from '../prepare.ts';
import { runStep } from '../step.ts';
import type { LoadProtocol, StepResult, StepSpec, WorkTensor } from '../types.ts';
import type { ModelMeta } from '../workload.ts';

/** A server and protocol a benchmark drives. */
export interface Target {
  readonly name: string;
  readonly protocol: LoadProtocol;
  readonly url?: string;
  readonly grpcUrl?: string;
  readonly metricsUrl?: string;
  /** Check sampled answers (off for echo servers, whose answers are not inferences). */
  readonly check: boolean;
  /** The server's process ids, for its CPU time per request (descendants included). */
  readonly pids?: readonly number[];
  /**
   * Open loop: HTTP/1.1 connections, h2c sessions or gRPC channels, when not the default
   * (OPEN_LOOP_CONNECTIONS, 4 sessions, 1 channel): an overload test needs more requests in flight.
   */
  readonly connections?: number;
  /** Open loop: requests in flight at most (default 1024). */
  readonly maxOutstanding?: number;
  /** Headers every REST request carries (a tenant's Authorization). */
  readonly headers?: Readonly<Record<string, string>>;
}

/** A load that runs beside each run of a pair (started just before its step, stopped right after). */
export interface Alongside {
  stop(): Promise<void>;
}

/** One contender of a comparison: the target, its step, and optionally a load beside each of its runs. */
export interface Pair {
  readonly target: Target;
  readonly spec: StepSpec;
  readonly alongside?: () => Alongside;
}

/**
 * A run's measured window (warm-up excluded) in process.hrtime nanoseconds: the clock of sluice's
 * request traces, which every local process shares, so traces can be attributed to the run.
 */
export interface RunWindow {
  readonly startNs: number;
  readonly endNs: number;
}

/** HTTP/1.1 keep-alive connections of every open loop over REST (one request in flight on each). */
export const OPEN_LOOP_CONNECTIONS = 64;

/** The workload of one model: its metadata (from sluice) and the seeded input sets every target gets. */
export interface ModelWorkload {
  readonly meta: ModelMeta;
  readonly variants: readonly (readonly WorkTensor[])[];
}

/** How long each measurement runs and how many times. */
export interface BenchTiming {
  readonly warmupMs: number;
  readonly durationMs: number;
  readonly repeats: number;
  readonly log: (line: string) => void;
}

/** Every run of one (target, step) pair, and the medians a comparison reads. */
export interface Measured {
  readonly target: Target;
  readonly spec: StepSpec;
  readonly runs: readonly StepResult[];
  readonly qps: number;
  readonly p50: number;
  readonly p99: number;
  /** Median over the runs of the server's CPU microseconds per answered request, when its pids were given. */
  readonly cpuUsPerRequest: number | undefined;
  readonly errors: number;
  readonly wrong: number;
  /** The run whose QPS is the median (its server view is reported). */
  readonly medianRun: StepResult;
  /** Each run's measured window, in the order of `runs`. */
  readonly windows: readonly RunWindow[];
}

const hrtimeNs = (): number => Number(process.hrtime.bigint());

export function median(values: readonly number[]): number {
  const s = [...values].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

function medianOf(target: Target, spec: StepSpec, runs: StepResult[], windows: RunWindow[]): Measured {
  const cpu = runs.map((r) => r.serverCpu?.usPerRequest).filter((v): v is number => v !== undefined);
  const byQps = [...runs].sort((a, b) => a.qps - b.qps);
  return {
    target, spec, runs,
    qps: median(runs.map((r) => r.qps)),
    p50: median(runs.map((r) => r.latencyMs.p50)),
    p99: median(runs.map((r) => r.latencyMs.p99)),
    cpuUsPerRequest: cpu.length > 0 ? median(cpu) : undefined,
    errors: runs.reduce((n, r) => n + r.errorCount, 0),
    wrong: runs.reduce((n, r) => n + r.wrong, 0),
    medianRun: byQps[Math.floor((byQps.length - 1) / 2)]!,
    windows,
  };
}

/** A driver for the target with its answer check planned (reference requests made). */
export async function openTarget(target: Target, model: string, w: ModelWorkload): Promise<{ driver: Driver; check: Awaited<ReturnType<typeof planCheck>>['check'] }> {
  const driver = createDriver({
    protocol: target.protocol, url: target.url, grpcUrl: target.grpcUrl, model, version: '', variants: w.variants,
    timeoutMs: 60_000, connections: target.connections ?? (target.protocol === 'h2c' ? 4 : target.protocol === 'grpc' ? 1 : OPEN_LOOP_CONNECTIONS),
    maxOutstanding: target.maxOutstanding ?? 1024, lateThresholdMs: 5, checkEvery: 16,
    ...(target.headers ? { headers: target.headers } : {}),
  });
  try {
    const plan = await planCheck(driver, w.meta, w.variants, { enabled: target.check, rtol: 1e-3 });
    return { driver, check: plan.check };
  } catch (e) {
    await driver.close();
    throw e;
  }
}

/**
 * Measures each (target, step) pair `repeats` times, interleaved (A B C A B C ...) so that a slow
 * moment of a shared machine spreads over every contender instead of hitting one.
 */
export async function measureSideBySide(model: string, w: ModelWorkload, pairs: readonly Pair[], t: BenchTiming): Promise<Measured[]> {
  const opened = [];
  try {
    for (const p of pairs) opened.push(await openTarget(p.target, model, w));
    const runs: StepResult[][] = pairs.map(() => []);
    const windows: RunWindow[][] = pairs.map(() => []);
    for (let r = 0; r < t.repeats; r++) {
      for (let i = 0; i < pairs.length; i++) {
        const { target, spec, alongside } = pairs[i]!;
        const { driver, check } = opened[i]!;
        // The driver process starts before the clock (runStep's own prepare is then a no-op), so the
        // window below begins where the step's measurement does.
        await driver.prepare(spec);
        const beside = alongside?.();
        const startNs = hrtimeNs();
        let res: StepResult;
        let endNs: number;
        try {
          res = await runStep(driver, spec, { warmupMs: t.warmupMs, durationMs: t.durationMs, drainTimeoutMs: 30_000, maxRequests: 50_000_000, check, metricsUrl: target.metricsUrl, model, ...(target.pids ? { serverPids: target.pids } : {}) });
          endNs = hrtimeNs();
        } finally {
          await beside?.stop();
        }
        windows[i]!.push({ startNs: startNs + t.warmupMs * 1e6, endNs });
        runs[i]!.push(res);
        const errors = res.errorCount > 0 ? `, ${res.errorCount} errors ${JSON.stringify(res.errors)}` : '';
        const cpu = res.serverCpu?.usPerRequest !== undefined ? `, server ${res.serverCpu.usPerRequest.toFixed(0)} us CPU/req` : '';
        const late = res.late > 0 ? `, ${res.late} late` : '';
        t.log(`  ${target.name} ${res.label} run ${r + 1}/${t.repeats}: ${res.qps.toFixed(0)} req/s, p50 ${res.latencyMs.p50.toFixed(2)} ms, p99 ${res.latencyMs.p99.toFixed(2)} ms${cpu}${late}${errors}`);
      }
    }
    return pairs.map((p, i) => medianOf(p.target, p.spec, runs[i]!, windows[i]!));
  } finally {
    for (const o of opened) await o.driver.close();
  }
}
