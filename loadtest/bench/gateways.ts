import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Pool } from 'undici';
import { WORKER_PATHS, type WorkerHealth } from '../../src/worker/protocol.ts';
import { modelMetadata } from '../prepare.ts';
import { runStep } from '../step.ts';
import { generateVariants } from '../workload.ts';
import { mdTable, n0, n2, ratio, verdict } from './markdown.ts';
import { median, openTarget, type BenchTiming, type ModelWorkload, type Target } from './measure.ts';
import { startServerProcess, type ServerProcess } from './processes.ts';

const WORKER_MAIN = fileURLToPath(new URL('../../src/worker/main.ts', import.meta.url));

/** Closed-loop clients in total, split evenly when two gateways share the load. */
export const SHARED_WORKERS_CONCURRENCY = 128;

/** A worker host (`sluice worker`) in its own process, started with IPC so it reports its address. */
interface WorkerHostProcess {
  readonly address: string;
  readonly pid: number;
  health(): Promise<WorkerHealth>;
  stop(): Promise<void>;
}

async function startWorkerHostProcess(args: readonly string[]): Promise<WorkerHostProcess> {
  const child: ChildProcess = fork(WORKER_MAIN, ['--log-level', 'warn', ...args], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    const killer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    killer.unref();
    await exited;
    clearTimeout(killer);
  };
  const address = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('worker host did not report ready within 60 s')), 60_000);
    child.once('message', (m: { type?: string; address?: string }) => {
      clearTimeout(timer);
      if (m.type === 'ready' && typeof m.address === 'string') resolve(m.address);
      else reject(new Error(`worker host sent ${JSON.stringify(m)} instead of ready`));
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`worker host exited with ${code} before ready`));
    });
  }).catch(async (e: unknown) => {
    await stop();
    throw e;
  });
  const health = async (): Promise<WorkerHealth> => {
    const pool = new Pool(`http://${address}`, { connections: 1 });
    try {
      const res = await pool.request({ path: WORKER_PATHS.health, method: 'GET' });
      return (await res.body.json()) as WorkerHealth;
    } finally {
      await pool.close();
    }
  };
  return { address, pid: child.pid ?? 0, health, stop };
}

async function busyAnswers(metricsUrl: string): Promise<number> {
  const text = await (await fetch(metricsUrl)).text();
  return text.split('\n').filter((l) => l.startsWith('sluice_worker_busy_total')).reduce((n, l) => n + Number(l.split(' ').pop()), 0);
}

interface Run {
  readonly qps: number;
  readonly p99: number;
  readonly cpuUsPerRequest: number | undefined;
}

/**
 * (j) Many gateways, one worker pool: two worker hosts, served by one gateway that takes all the load,
 * then by two gateways that take half each at the same time. Each gateway knows only its own batches;
 * the hosts bound what they hold for all gateways together and answer busy past it, and the gateways
 * count other gateways' batches from the hosts' reports. Throughput, P99 and the CPU of all four
 * processes per request; then each host's bound and the most it ever held.
 */
export async function sharedWorkersComparison(repository: string, gatewayFlags: (repo: string) => string[], t: BenchTiming): Promise<string> {
  const hosts: WorkerHostProcess[] = [];
  const gateways: ServerProcess[] = [];
  const opened: Awaited<ReturnType<typeof openTarget>>[] = [];
  try {
    for (let i = 0; i < 2; i++) hosts.push(await startWorkerHostProcess(['--listen', '127.0.0.1:0', '--model-repository', repository, '--load-model', 'mlp']));
    const flags = [...gatewayFlags(repository), '--workers', '0', ...hosts.flatMap((h) => ['--worker', `http://${h.address}`]), '--model-control-mode', 'explicit', '--load-model', 'mlp'];
    for (const name of ['gateway A', 'gateway B']) gateways.push(await startServerProcess(`sluice ${name} (two worker hosts)`, 'sluice', flags));
    const pids = [...gateways.map((g) => g.pid), ...hosts.map((h) => h.pid)];
    const meta = await modelMetadata({ protocol: 'json', url: `http://127.0.0.1:${gateways[0]!.ports['http']}`, grpcUrl: undefined, model: 'mlp', version: '', timeoutMs: 30_000 });
    const w: ModelWorkload = { meta, variants: generateVariants(meta, { seed: 1, variants: 8, batch: 1, shapes: {} }) };
    const target = (g: ServerProcess, name: string): Target => ({ name, protocol: 'json', url: `http://127.0.0.1:${g.ports['http']}`, check: true });
    for (const [i, g] of gateways.entries()) opened.push(await openTarget(target(g, `gateway ${'AB'[i]}`), 'mlp', w));
    const settings = (withPids: boolean): Parameters<typeof runStep>[2] => ({ warmupMs: t.warmupMs, durationMs: t.durationMs, drainTimeoutMs: 30_000, maxRequests: 50_000_000, check: opened[0]!.check, metricsUrl: undefined, model: 'mlp', ...(withPids ? { serverPids: pids } : {}) });
    const one: Run[] = [];
    const two: Run[] = [];
    const busyBefore = await Promise.all(gateways.map((g) => busyAnswers(`http://127.0.0.1:${g.ports['metrics']}/metrics`)));
    let errors = 0;
    for (let r = 0; r < t.repeats; r++) {
      const a = await runStep(opened[0]!.driver, { mode: 'closed', concurrency: SHARED_WORKERS_CONCURRENCY }, settings(true));
      errors += a.errorCount;
      one.push({ qps: a.qps, p99: a.latencyMs.p99, cpuUsPerRequest: a.serverCpu?.usPerRequest });
      const half = { mode: 'closed' as const, concurrency: SHARED_WORKERS_CONCURRENCY / 2 };
      // The first step reads all four processes' CPU over its window; both windows are the same span.
      const [b1, b2] = await Promise.all([runStep(opened[0]!.driver, half, settings(true)), runStep(opened[1]!.driver, half, settings(false))]);
      errors += b1.errorCount + b2.errorCount;
      const answered = b1.responses + b2.responses;
      two.push({ qps: b1.qps + b2.qps, p99: Math.max(b1.latencyMs.p99, b2.latencyMs.p99), cpuUsPerRequest: b1.serverCpu && answered > 0 ? (b1.serverCpu.cpuMs * 1000) / answered : undefined });
      t.log(`  run ${r + 1}/${t.repeats}: one gateway ${a.qps.toFixed(0)} req/s, two gateways ${b1.qps.toFixed(0)} + ${b2.qps.toFixed(0)} req/s`);
    }
    const busy = (await Promise.all(gateways.map((g) => busyAnswers(`http://127.0.0.1:${g.ports['metrics']}/metrics`)))).reduce((n, v, i) => n + v - busyBefore[i]!, 0);
    const held = await Promise.all(hosts.map(async (h) => (await h.health()).heldBatches));
    const med = (runs: Run[], k: keyof Run): number => median(runs.map((x) => x[k]).filter((v): v is number => v !== undefined));
    const rows = [['one gateway, both hosts', one], ['two gateways sharing both hosts', two]] as const;
    const r = med(two, 'qps') / med(one, 'qps');
    const within = held.every((h) => h !== undefined && h.peak <= h.bound);
    return [
      `Two worker hosts (\`sluice worker\`, default --max-queued-batches 8), ${SHARED_WORKERS_CONCURRENCY} closed-loop clients on mlp (REST JSON): all on one gateway, or half on each of two gateways at the same time. CPU per request is that of all four processes (gateways and hosts) over the measured window.`,
      '',
      mdTable(['setup', 'req/s', 'P99 ms', 'server CPU us/req'], rows.map(([name, runs]) => [name, n0(med(runs, 'qps')), n2(med(runs, 'p99')), n0(med(runs, 'cpuUsPerRequest'))])),
      '',
      verdict('two gateways within 10% of one gateway\'s throughput over the same hosts', r >= 0.9, `${ratio(r)}`),
      verdict('no host holds more batches than its bound', within, held.map((h, i) => `host ${i + 1}: peak ${h?.peak ?? '?'} of ${h?.bound ?? '?'}`).join(', ')),
      `Busy answers the gateways received (and kept the batch queued for): ${busy}. Errors: ${errors}.`,
    ].join('\n');
  } finally {
    for (const o of opened) await o.driver.close();
    for (const g of gateways.reverse()) await g.stop();
    for (const h of hosts) await h.stop();
  }
}
