// The cost of the hop from the gateway to ONNX Runtime, one batch of mlp (one row) at a time with idle
// gaps between them (low load, where wake-ups dominate): inline (session.run on this thread, no hop),
// through a thread worker (one message each way to the gateway's ONNX Runtime thread) and through a
// worker process (HTTP/1.1 over a unix socket, then the process's own ORT thread). Prints round-trip
// and ORT-only percentiles for each.
//   node --import tsx loadtest/bench/hops.ts [batches] [gapMs]
import { fork } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { DEFAULT_TIMEOUTS } from '../../src/balancer/startup.ts';
import { WorkerClient } from '../../src/balancer/worker-client.ts';
import type { BatchJob } from '../../src/core/execution.ts';
import { createLogger } from '../../src/telemetry/logger.ts';
import { ModelCache } from '../../src/worker/cache.ts';
import { OrtThread } from '../../src/worker/ort-client.ts';
import { repositoryResolver } from '../../src/worker/resolve.ts';
import { SessionFactory } from '../../src/worker/session.ts';

const N = Number(process.argv[2] ?? 1500);
const GAP_MS = Number(process.argv[3] ?? 2);
const log = createLogger('error');
const repo = fileURLToPath(new URL('../../models', import.meta.url));
const values = Float32Array.from({ length: 784 }, (_, i) => (i % 100) / 100);
const job: BatchJob = { model: 'mlp', version: '1', rows: 1, inputs: [{ name: 'INPUT0', datatype: 'FP32', shape: [1, 784], data: new Uint8Array(values.buffer) }], outputs: [] };

function summary(label: string, ms: number[]): string {
  const a = [...ms].sort((x, y) => x - y);
  const q = (p: number): string => a[Math.floor(p * (a.length - 1))]!.toFixed(3);
  return `${label.padEnd(22)} P50 ${q(0.5)} ms  P90 ${q(0.9)} ms  P99 ${q(0.99)} ms`;
}

/** One-row batches through a cache whose sessions `opener` makes: round trips and ORT runs, in ms. */
async function throughCache(opener: ConstructorParameters<typeof ModelCache>[0]['opener']): Promise<{ rt: number[]; ort: number[] }> {
  const cache = new ModelCache({ budgetBytes: 2 ** 31, resolver: repositoryResolver(repo), opener, logger: log });
  await cache.load('mlp', '1');
  const rt: number[] = [];
  const ortMs: number[] = [];
  for (let i = 0; i < N; i++) {
    const lease = await cache.acquire('mlp', '1');
    const t0 = performance.now();
    const r = await lease.session.run(job.inputs, []);
    rt.push(performance.now() - t0);
    ortMs.push(r.computeInferNs / 1e6);
    lease.release();
    await sleep(GAP_MS);
  }
  await cache.close();
  return { rt, ort: ortMs };
}

const inline = await throughCache(new SessionFactory({ device: 'cpu', deviceId: 0, cudaFallback: 'cpu', intraOpThreads: 2, logger: log }));
const ort = new OrtThread({ device: 'cpu', deviceId: 0, cudaFallback: 'cpu', intraOpThreads: 2, worker: 'thread', logger: log });
const thread = await throughCache(ort);
await ort.close();

const dir = mkdtempSync(join(tmpdir(), 'sluice-hops-'));
const socket = join(dir, 'w.sock');
const child = fork(fileURLToPath(new URL('../../src/worker/main.ts', import.meta.url)), ['--listen', `unix:${socket}`, '--model-repository', repo, '--intra-op-threads', '2', '--log-level', 'error', '--load-model', 'mlp'], { execArgv: ['--import', 'tsx'] });
await new Promise((resolve) => child.once('message', resolve));
const client = new WorkerClient('process', `unix:${socket}`, 2, DEFAULT_TIMEOUTS);
const procRt: number[] = [];
const procOrt: number[] = [];
for (let i = 0; i < N; i++) {
  const t0 = performance.now();
  const r = await client.infer(job);
  procRt.push(performance.now() - t0);
  procOrt.push(r.computeInferNs / 1e6);
  await sleep(GAP_MS);
}
await client.close();
child.kill('SIGTERM');
await new Promise((resolve) => child.once('exit', resolve));
rmSync(dir, { recursive: true, force: true });

console.log(`${N} one-row mlp batches, ${GAP_MS} ms apart`);
console.log(summary('inline: round trip', inline.rt));
console.log(summary('inline: ORT run', inline.ort));
console.log(summary('thread: round trip', thread.rt));
console.log(summary('thread: ORT run', thread.ort));
console.log(summary('process: round trip', procRt));
console.log(summary('process: ORT run', procOrt));
