import { mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Config } from '../config/schema.ts';
import { isGpu } from '../core/device.ts';
import { parseDiscovery } from '../config/worker-discovery.ts';
import { readPemFile, readTokenFile } from '../config/worker-link.ts';
import type { Logger } from '../telemetry/logger.ts';
import { isLocalOnly } from '../worker/listen.ts';
import { LocalWorker } from './local-worker.ts';
import { PooledWorker } from './pooled-worker.ts';
import { InProcessWorker } from './in-process-worker.ts';
import { WorkerClient, type LinkCredentials, type WorkerClientTimeouts } from './worker-client.ts';
import type { UploadStore } from '../repository/uploads.ts';

/** Generous on purpose: a batch on a cold worker includes loading the model. */
export const DEFAULT_TIMEOUTS: WorkerClientTimeouts = {
  connectMs: 5_000,
  healthMs: 2_000,
  batchMs: 60_000,
  loadMs: 300_000,
};

/** What the pool hears from the supervisor of its local workers. */
export interface WorkerLifecycleEvents {
  onReady(worker: PooledWorker): void;
  onExit(worker: PooledWorker, reason: string): void;
  onRestart(worker: PooledWorker): void;
}

export interface StartedWorkers {
  /** Local workers first (w0, w1, ...), then remote ones in configuration order. */
  readonly workers: readonly PooledWorker[];
  /** Removes the private socket folder (after the local workers stopped). */
  readonly cleanup: () => void;
  /** Makes the pool's record of a remote worker found later (worker discovery), with the link's credentials. */
  readonly remote: (url: string) => PooledWorker;
  /**
   * Reads the link's token and TLS files again; remote workers' clients take them on their next request.
   * Throws (naming the setting) when a file cannot be read: the credentials in use stay.
   */
  readonly rotateLink: () => void;
}

/** Local worker processes to run: -1 means one per configured GPU on cuda, else one. */
export function localWorkerCount(config: Config): number {
  const w = config.workers;
  if (w.count >= 0) return w.count;
  return isGpu(w.device) && w.gpus.length > 0 ? w.gpus.length : 1;
}

/**
 * Batches in flight per worker: as configured, else by the kind of link. A worker process or remote
 * host gets 2, so that it is busy while the next batch crosses the socket. A thread worker gets 1: its
 * ONNX Runtime thread runs one batch at a time, and the hand-off is a message, not a round trip, so a
 * second batch would only wait in the thread's inbox (a second queue) and leave the model's queue
 * earlier, with fewer rows. Measured at 2,000 req/s on mlp (REST JSON, open loop, 2 cores), four runs
 * each: P50 1.4-3.2 ms against 4.3-7.1, P99 17-30 ms against 34-41, CPU per request 5% lower.
 */
export function inflightBatchesOf(config: Config, kind: 'in-process' | 'socket'): number {
  if (config.workers.maxInflightBatches > 0) return config.workers.maxInflightBatches;
  return kind === 'in-process' ? 1 : 2;
}

/**
 * Where local workers run ONNX Runtime. 'auto' is the gateway's own event loop on the CPU (ONNX
 * Runtime's intra-op threads take every core during a run, so a thread of its own would only add two
 * wake-ups per batch) and a thread of the gateway with CUDA (the run waits on the device, and the event
 * loop can serve meanwhile). docs/performance.md has the measurements.
 */
export function localIsolation(config: Config): 'inline' | 'thread' | 'process' {
  const { isolation, device } = config.workers;
  if (isolation !== 'auto') return isolation;
  return isGpu(device) ? 'thread' : 'inline';
}

/** ONNX Runtime threads per local worker: as configured, else the cores shared out so none oversubscribes. */
export function intraOpThreads(config: Config, localWorkers: number, cores = availableParallelism()): number {
  if (config.workers.intraOpThreads > 0) return config.workers.intraOpThreads;
  return Math.max(1, Math.floor(cores / Math.max(1, localWorkers)));
}

/** The GPU of local worker i: more workers than GPUs share them round the list. */
function deviceIdOf(config: Config, index: number): number {
  const { gpus } = config.workers;
  return gpus.length > 0 ? gpus[index % gpus.length]! : 0;
}

/** Flags for local worker i (all but --listen and --id, which the supervisor adds). */
export function localWorkerArgs(config: Config, index: number, localWorkers: number): string[] {
  const w = config.workers;
  return [
    // Absolute, so the worker does not depend on the directory it was started from.
    '--model-repository', resolve(config.modelRepository),
    '--device', w.device,
    '--device-id', String(deviceIdOf(config, index)),
    '--cuda-fallback', w.cudaFallback,
    '--intra-op-threads', String(intraOpThreads(config, localWorkers)),
    '--memory-budget', String(w.memoryBudgetBytes),
    '--log-level', config.logLevel,
  ];
}

/**
 * The credentials of the link to remote workers, read from the files the config names (loadConfig has
 * checked they are readable and the token non-empty; read again here so that no secret sits in Config).
 */
export function linkCredentials(config: Config): LinkCredentials {
  const { link } = config.workers;
  const pem = (file: string, setting: string): Buffer | undefined => (file === '' ? undefined : readPemFile(file, setting));
  const ca = pem(link.tlsCaFile, '--worker-tls-ca');
  const cert = pem(link.tlsCertFile, '--worker-tls-cert');
  const key = pem(link.tlsKeyFile, '--worker-tls-key');
  return {
    // A gateway presents its file's first token (a host accepts every token of its own file).
    ...(link.tokenFile === '' ? {} : { token: readTokenFile(link.tokenFile, '--worker-token-file')[0] }),
    tls: { ...(ca ? { ca } : {}), ...(cert ? { cert } : {}), ...(key ? { key } : {}) },
  };
}

/** Whether requests to `url` travel unencrypted beyond this machine (loopback never leaves it). */
function crossesNetworkInClear(url: string): boolean {
  const u = new URL(url);
  return u.protocol === 'http:' && !isLocalOnly({ host: u.hostname.replace(/^\[|\]$/g, ''), port: 0 });
}

/**
 * Starts the local workers (each on a unix socket in a private temporary folder) and makes a client
 * for every worker, local and remote. Fails naming the worker that did not start, after stopping the
 * ones that did.
 */
export async function startWorkers(config: Config, log: Logger, events_: WorkerLifecycleEvents, timeouts = DEFAULT_TIMEOUTS, threadEntry?: URL, uploads?: UploadStore): Promise<StartedWorkers> {
  const count = localWorkerCount(config);
  const { connectionsPerWorker } = config.workers;
  // Before anything starts: a secret file gone since the config was loaded fails here, with nothing to stop.
  // Local workers need none: their sockets sit in a private folder (and they are forked without the token).
  const discovery = config.workers.discovery === '' ? undefined : parseDiscovery(config.workers.discovery);
  // Discovered hosts are dialled by address; their certificates name the discovered DNS name.
  const forDiscovered = (c: LinkCredentials): LinkCredentials => (discovery ? { ...c, tls: { ...c.tls, servername: discovery.name.replace(/\.$/, '') } } : c);
  let credentials = config.workers.remote.length > 0 || discovery ? linkCredentials(config) : {};
  let discovered = forDiscovered(credentials);
  const rotateLink = (): void => {
    credentials = linkCredentials(config);
    discovered = forDiscovered(credentials);
  };
  const isolation = localIsolation(config);
  const inProcess = isolation !== 'process';
  const dir = count > 0 && !inProcess ? mkdtempSync(join(tmpdir(), 'sluice-')) : undefined;
  const cleanup = (): void => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  };
  const workers: PooledWorker[] = [];
  const starting: LocalWorker[] = [];
  for (let i = 0; i < count; i++) {
    const id = `w${i}`;
    const ref: { pooled?: PooledWorker } = {};
    const events = {
      onReady: () => ref.pooled && events_.onReady(ref.pooled),
      onExit: (reason: string) => ref.pooled && events_.onExit(ref.pooled, reason),
      onRestart: () => ref.pooled && events_.onRestart(ref.pooled),
    };
    if (inProcess) {
      const w = config.workers;
      const worker = new InProcessWorker({
        id, modelRepository: resolve(config.modelRepository), device: w.device, deviceId: deviceIdOf(config, i),
        cudaFallback: w.cudaFallback, intraOpThreads: intraOpThreads(config, count), memoryBudgetBytes: w.memoryBudgetBytes, logger: log, events,
        mode: isolation, ...(threadEntry ? { entry: threadEntry } : {}), ...(uploads ? { uploads } : {}),
      });
      ref.pooled = new PooledWorker(id, worker, inflightBatchesOf(config, 'in-process'), worker);
    } else {
      const local = new LocalWorker({ id, socketPath: join(dir!, `${id}.sock`), args: localWorkerArgs(config, i, count), logger: log, events });
      starting.push(local);
      ref.pooled = new PooledWorker(id, new WorkerClient(id, local.address, connectionsPerWorker, timeouts, {}, uploads), inflightBatchesOf(config, 'socket'), local);
    }
    workers.push(ref.pooled);
  }
  for (const url of config.workers.remote) {
    if (credentials.token !== undefined && crossesNetworkInClear(url)) {
      log.warn({ worker: url }, `the worker token crosses the network to ${url} in cleartext: anyone on the path can read and replay it; use https:// with --worker-tls-ca`);
    }
    // The URL names the worker in logs and metrics: an operator recognises it at once.
    workers.push(new PooledWorker(url, new WorkerClient(url, url, connectionsPerWorker, timeouts, () => credentials, uploads), inflightBatchesOf(config, 'socket')));
  }
  const results = await Promise.allSettled(starting.map((w) => w.start()));
  const failed = results.findIndex((r) => r.status === 'rejected');
  if (failed >= 0) {
    await Promise.all(workers.map(async (w) => w.local?.stop()));
    await Promise.all(workers.map((w) => w.client.close()));
    cleanup();
    throw new Error(`local worker ${starting[failed]!.id} failed to start: ${((results[failed] as PromiseRejectedResult).reason as Error).message}`);
  }
  log.info({ local: count, isolation, remote: config.workers.remote.length, discovery: config.workers.discovery || undefined }, `${count} local (${isolation}) and ${config.workers.remote.length} remote workers${discovery ? `, more from ${config.workers.discovery}` : ''}`);
  const remote = (url: string): PooledWorker => new PooledWorker(url, new WorkerClient(url, url, connectionsPerWorker, timeouts, () => discovered, uploads), inflightBatchesOf(config, 'socket'));
  return { workers, cleanup, remote, rotateLink };
}
