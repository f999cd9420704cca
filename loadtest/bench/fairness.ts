/**
 * Fair queuing between tenants (issue: who may do what). Tenant A sends a modest steady load; tenant B
 * floods the same model at five times its fair share (half the measured capacity, both tenants
 * weighing 1). A's latency alone and beside B's flood, on a sluice with fair queuing and on the same
 * sluice with --fair-queuing false, interleaved. Without fairness A's requests wait behind B's backlog
 * (up to the 1 s expected-wait budget) or are refused with it; with it A waits for at most about one
 * batch of B's.
 */
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Pool } from 'undici';
import { newKey } from '../../src/access/keygen.ts';
import { binaryBody, type HttpBody } from '../http-codec.ts';
import type { StepSpec } from '../types.ts';
import { seededRandom } from '../../src/generation/sampler.ts';
import { makeTensor, type ModelMeta } from '../workload.ts';
import { mdTable, n0, n2, ratio, verdict } from './markdown.ts';
import { measureSideBySide, type Alongside, type BenchTiming, type Measured, type ModelWorkload, type Target } from './measure.ts';

/** Extra flags of both servers (for experiments: SLUICE_BENCH_FAIRNESS_FLAGS, space-separated). */
export const FAIRNESS_FLAGS: readonly string[] = (process.env['SLUICE_BENCH_FAIRNESS_FLAGS'] ?? '').split(' ').filter((f) => f !== '');

/** The bench model's config: mlp in batches of at most 8 rows, so that one batch of B's is short. */
export const FAIRNESS_MODEL_CONFIG = `name: "mlp"\nmax_batch_size: ${Number(process.env["SLUICE_BENCH_FAIRNESS_ROWS"] ?? 8)}\n`;
/** Rows per request of the flooding tenant (one whole batch). */
export const FLOOD_ROWS = Number(process.env["SLUICE_BENCH_FAIRNESS_ROWS"] ?? 8);
/** B's offered rows per second, as a multiple of its fair share. */
export const FLOOD_SHARE_FACTOR = 5;
const FLOOD_CONNECTIONS = 64;
const FLOOD_MAX_OUTSTANDING = 512;

/** The two tenants' keys and the auth config file that names them (weight 1 each, infer only). */
export interface FairnessAuth {
  readonly file: string;
  readonly steady: string;
  readonly flood: string;
}

export async function writeFairnessAuth(): Promise<FairnessAuth> {
  const dir = await mkdtemp(join(tmpdir(), 'sluice-bench-auth-'));
  const steady = newKey();
  const flood = newKey();
  const file = join(dir, 'auth.json');
  await writeFile(file, JSON.stringify({ tenants: [
    { name: 'steady', keys: [{ sha256: steady.sha256, scopes: ['infer', 'metadata'] }] },
    { name: 'flood', keys: [{ sha256: flood.sha256, scopes: ['infer'] }] },
  ] }));
  return { file, steady: steady.key, flood: flood.key };
}

/** B's request: one binary body of FLOOD_ROWS rows of seeded values. */
export function floodBody(meta: ModelMeta): HttpBody {
  const input = meta.inputs[0]!;
  const cols = input.shape.slice(1).reduce((p, d) => p * Math.max(1, d), 1);
  const rnd = seededRandom(7);
  const values = Array.from({ length: FLOOD_ROWS * cols }, () => rnd());
  return binaryBody([makeTensor(input.name, input.datatype, [FLOOD_ROWS, ...input.shape.slice(1).map((d) => Math.max(1, d))], values)]);
}

/**
 * Tenant B: an open loop at `rate` requests/s over keep-alive connections, paced on a 2 ms tick,
 * with at most FLOOD_MAX_OUTSTANDING in flight (a send past it is counted, not queued here). Counts
 * accumulate over every start.
 */
export class Flood {
  readonly #pool: Pool;
  readonly #path: string;
  readonly #body: HttpBody;
  readonly #auth: string;
  readonly #statuses = new Map<string, number>();
  #skipped = 0;
  #seconds = 0;

  constructor(url: string, model: string, body: HttpBody, key: string) {
    this.#pool = new Pool(url, { connections: FLOOD_CONNECTIONS, pipelining: 1, keepAliveTimeout: 30_000 });
    this.#path = `/v2/models/${model}/infer`;
    this.#body = body;
    this.#auth = `Bearer ${key}`;
  }

  /** Runs until stop(); answers still in flight are awaited (bounded by the pool's timeouts). */
  start(rate: number): Alongside {
    const t0 = performance.now();
    let sent = 0;
    let outstanding = 0;
    const inflight = new Set<Promise<void>>();
    const tick = setInterval(() => {
      const due = Math.floor(((performance.now() - t0) / 1000) * rate) - sent;
      for (let i = 0; i < due; i++) {
        sent++;
        if (outstanding >= FLOOD_MAX_OUTSTANDING) {
          this.#skipped++;
          continue;
        }
        outstanding++;
        const p = this.#one().finally(() => {
          outstanding--;
          inflight.delete(p);
        });
        inflight.add(p);
      }
    }, 2);
    return {
      stop: async () => {
        clearInterval(tick);
        this.#seconds += (performance.now() - t0) / 1000;
        await Promise.all([...inflight]);
      },
    };
  }

  /** What B saw over all its runs: statuses, sends skipped at the client's bound, and its seconds. */
  stats(): { statuses: Readonly<Record<string, number>>; skipped: number; seconds: number } {
    return { statuses: Object.fromEntries(this.#statuses), skipped: this.#skipped, seconds: this.#seconds };
  }

  reset(): void {
    this.#statuses.clear();
    this.#skipped = 0;
    this.#seconds = 0;
  }

  close(): Promise<void> {
    return this.#pool.close();
  }

  async #one(): Promise<void> {
    let outcome: string;
    try {
      const res = await this.#pool.request({ path: this.#path, method: 'POST', headers: { ...this.#body.headers, authorization: this.#auth }, body: this.#body.body, headersTimeout: 30_000, bodyTimeout: 30_000 });
      await res.body.dump();
      outcome = `http ${res.statusCode}`;
    } catch (e) {
      outcome = (e as { code?: string }).code ?? 'error';
    }
    this.#statuses.set(outcome, (this.#statuses.get(outcome) ?? 0) + 1);
  }
}

/** Rows per second the server answers under a flood far above capacity: its capacity for B's requests. */
async function capacity(flood: Flood, t: BenchTiming): Promise<number> {
  flood.reset();
  const run = flood.start(4000);
  await new Promise((r) => setTimeout(r, Math.max(3000, t.durationMs)));
  await run.stop();
  const s = flood.stats();
  flood.reset();
  return ((s.statuses['http 200'] ?? 0) * FLOOD_ROWS) / s.seconds;
}

/** Where the two servers of the comparison listen. */
export interface FairnessServers {
  readonly fair: { readonly http: string; readonly pids: readonly number[] };
  readonly unfair: { readonly http: string; readonly pids: readonly number[] };
  readonly auth: FairnessAuth;
}

const row = (m: Measured): string[] => [m.target.name, n0(m.qps), n2(m.p50), n2(m.p99), n0(m.errors), n0(Math.max(...m.runs.map((r) => r.late))), n0(m.cpuUsPerRequest)];

export async function fairnessComparison(servers: FairnessServers, w: ModelWorkload, t: BenchTiming): Promise<string> {
  const body = floodBody(w.meta);
  const fairFlood = new Flood(servers.fair.http, w.meta.name, body, servers.auth.flood);
  const unfairFlood = new Flood(servers.unfair.http, w.meta.name, body, servers.auth.flood);
  try {
    // The first flood of each server warms it (V8 compiles the path under load); the second is measured.
    await capacity(fairFlood, t);
    await capacity(unfairFlood, t);
    const capFair = await capacity(fairFlood, t);
    const capUnfair = await capacity(unfairFlood, t);
    const cap = Math.min(capFair, capUnfair);
    const floodRate = (FLOOD_SHARE_FACTOR * (cap / 2)) / FLOOD_ROWS;
    const steadyRate = Math.round(Math.min(300, Math.max(50, cap * 0.05)));
    t.log(`  capacity ${cap.toFixed(0)} rows/s (fair ${capFair.toFixed(0)}, unfair ${capUnfair.toFixed(0)}); A at ${steadyRate} req/s of 1 row, B at ${floodRate.toFixed(0)} req/s of ${FLOOD_ROWS} rows`);
    const spec: StepSpec = { mode: 'open', rate: steadyRate };
    const headers = { authorization: `Bearer ${servers.auth.steady}` };
    const target = (name: string, s: FairnessServers['fair']): Target => ({ name, protocol: 'binary', url: s.http, check: true, pids: s.pids, headers });
    const [fairAlone, fairBeside, unfairAlone, unfairBeside] = await measureSideBySide(w.meta.name, w, [
      { target: target('fair queuing: A alone', servers.fair), spec },
      { target: target('fair queuing: A beside B', servers.fair), spec, alongside: () => fairFlood.start(floodRate) },
      { target: target('--fair-queuing false: A alone', servers.unfair), spec },
      { target: target('--fair-queuing false: A beside B', servers.unfair), spec, alongside: () => unfairFlood.start(floodRate) },
    ], t);
    const fairRatio = fairAlone!.p99 > 0 ? fairBeside!.p99 / fairAlone!.p99 : undefined;
    const unfairRatio = unfairAlone!.p99 > 0 ? unfairBeside!.p99 / unfairAlone!.p99 : undefined;
    const floodLine = (name: string, f: Flood): string => {
      const s = f.stats();
      const ok = s.statuses['http 200'] ?? 0;
      const outcomes = Object.entries(s.statuses).map(([k, v]) => `${k}: ${n0(v)}`).join(', ');
      return `- ${name}: B got ${n0((ok * FLOOD_ROWS) / s.seconds)} rows/s answered over ${n2(s.seconds)} s (${outcomes}; ${n0(s.skipped)} sends skipped at the client's bound of ${FLOOD_MAX_OUTSTANDING} in flight).`;
    };
    return [
      `**Fair queuing between tenants** (mlp with max_batch_size ${FLOOD_ROWS}, REST binary, both tenants weight 1 in the auth config). Capacity measured first under a flood of ${FLOOD_ROWS}-row requests: ${n0(cap)} rows/s. Tenant A: open loop at ${steadyRate} req/s of one row. Tenant B, beside every run of the "beside B" rows: ${n0(floodRate)} req/s of ${FLOOD_ROWS} rows, ${FLOOD_SHARE_FACTOR}x its fair share of half the capacity. Both servers have the default expected-wait budget (1 s).`,
      '',
      mdTable(['tenant A', 'achieved req/s', 'P50 ms', 'P99 ms', 'errors', 'late sends (max)', 'server CPU us/req'], [row(fairAlone!), row(fairBeside!), row(unfairAlone!), row(unfairBeside!)]),
      '',
      floodLine('fair queuing', fairFlood),
      floodLine('--fair-queuing false', unfairFlood),
      '',
      verdict(`With tenant B flooding at ${FLOOD_SHARE_FACTOR}x its share, tenant A's P99 stays within 1.5x its P99 alone (fair queuing on)`, fairRatio === undefined ? undefined : fairRatio <= 1.5 && fairBeside!.errors === 0, `${ratio(fairRatio)}: ${n2(fairBeside!.p99)} vs ${n2(fairAlone!.p99)} ms, ${n0(fairBeside!.errors)} errors`),
      `Without fair queuing the same flood moves A's P99 ${ratio(unfairRatio)} (${n2(unfairBeside!.p99)} vs ${n2(unfairAlone!.p99)} ms) with ${n0(unfairBeside!.errors)} errors ${JSON.stringify(Object.fromEntries(unfairBeside!.runs.flatMap((r) => Object.entries(r.errors))))}.`,
    ].join('\n');
  } finally {
    await fairFlood.close();
    await unfairFlood.close();
  }
}
