import type { Config } from './config/schema.ts';
import type { InferenceService } from './core/inference.ts';
import { WorkerPool } from './balancer/pool.ts';
import type { WorkerInfo } from './balancer/pooled-worker.ts';
import { AccessGuard } from './access/guard.ts';
import { scrapeAuthorizer } from './access/scrape.ts';
import { isLoopback } from './access/loopback.ts';
import { startGrpcServer } from './frontdoor/grpc/server.ts';
import { startHttpServer } from './frontdoor/http/server.ts';
import { GatewayService } from './scheduler/service.ts';
import { GeneratorHost } from './scheduler/generators.ts';
import { SystemSharedMemory } from './shm/registry.ts';
import { startGpuSampler } from './telemetry/gpu.ts';
import { createLogger, type Logger } from './telemetry/logger.ts';
import { Metrics } from './telemetry/metrics.ts';
import { startMetricsServer } from './telemetry/server.ts';
import { Tracer } from './telemetry/trace.ts';
import { UploadStore } from './repository/uploads.ts';
import { watchFiles } from './config/watch-files.ts';

/** A running sluice: its bound ports and an orderly shutdown. */
export interface Sluice {
  readonly ports: { readonly http: number; readonly grpc: number; readonly metrics: number };
  readonly service: InferenceService;
  readonly metrics: Metrics;
  /** The workers as the balancer sees them (id, pid, health, in-flight batches, hot models). */
  workers(): WorkerInfo[];
  /** Stops accepting, answers everything already accepted, then stops workers and servers. */
  close(): Promise<void>;
}

/**
 * The composition root: builds every layer from one Config and wires them. Order matters: workers
 * first (nothing can be served without them), then the service loads models, then the doors open.
 */
export async function startSluice(config: Config, opts: { logger?: Logger } = {}): Promise<Sluice> {
  const logger = opts.logger ?? createLogger(config.logLevel);
  // A bad auth config stops the start here, before a worker or a port is opened.
  const guard = config.auth.configFile === '' ? undefined : new AccessGuard({ file: config.auth.configFile, logger: logger.child({ component: 'access' }) });
  const metrics = new Metrics();
  const gpus = startGpuSampler({ logger: logger.child({ component: 'gpu' }) });
  // Model files sent with load requests (explicit model control), staged on disk while a version runs
  // them: room for every model's files twice over (a new upload is staged before the old one goes).
  const uploads = new UploadStore({ budgetBytes: 2 * config.workers.memoryBudgetBytes });
  const pool = await WorkerPool.create({ config, metrics, logger: logger.child({ component: 'balancer' }), uploads });
  const generators = new GeneratorHost({ config, metrics: metrics.generation, logger: logger.child({ component: 'generation' }) });
  const service = new GatewayService({ config, executor: pool, metrics, generators, uploads, logger: logger.child({ component: 'scheduler' }), ...(guard ? { tenancy: guard } : {}) });
  const tracer = new Tracer({ config: config.trace, logger: logger.child({ component: 'trace' }), service: { name: config.serverName, version: service.serverMetadata().version } });
  const cleanup: (() => Promise<void>)[] = [];
  // Triton's system shared-memory extension: one set of regions that both front doors serve.
  const sharedMemory = config.sharedMemory === 'system' ? new SystemSharedMemory() : undefined;
  const shm = sharedMemory ? { sharedMemory } : {};
  if (sharedMemory) cleanup.push(() => sharedMemory.close());
  try {
    await service.start();
    metrics.sources.queueDepth = () => service.queueDepths();
    metrics.sources.queueLimits = () => service.queueLimits();
    metrics.sources.sequences = () => service.activeSequences();
    metrics.sources.requestMemory = () => service.requestMemory();
    metrics.sources.responseCache = () => service.responseCacheStats() ?? { entries: 0, usedBytes: 0, limitBytes: 0, evictions: 0 };
    metrics.sources.workers = () => pool.snapshot();
    metrics.sources.gpus = () => gpus.snapshot();
    metrics.sources.trace = () => tracer.stats();
    // The worker link's secrets rotate without a restart: read again on SIGHUP and when their files change.
    const { link } = config.workers;
    const stopLinkWatch = config.workers.remote.length > 0 || config.workers.discovery !== '' ? watchFiles([link.tokenFile, link.tlsCaFile, link.tlsCertFile, link.tlsKeyFile], (why) => {
      try {
        pool.rotateLink();
        logger.info({ why }, 'worker link credentials rotated');
      } catch (e) {
        logger.error({ why, err: (e as Error).message }, 'worker link credentials not rotated; the previous ones stay in use');
      }
    }) : () => undefined;
    cleanup.push(() => Promise.resolve(stopLinkWatch()));
    if (guard) {
      metrics.sources.tenants = () => guard.tenants();
      guard.watch();
      cleanup.push(() => Promise.resolve(guard.close()));
    }
    const metricsServer = await startMetricsServer({ host: config.host, port: config.metrics.port, metrics, ...(guard ? { authorize: scrapeAuthorizer(guard) } : {}) });
    cleanup.push(() => metricsServer.close());
    const http = await startHttpServer({ config, service, metrics, tracer, logger: logger.child({ component: 'http' }), rootLogger: logger, ...(guard ? { guard } : {}), ...shm });
    cleanup.push(() => http.close());
    const grpc = await startGrpcServer({ config, service, metrics, tracer, logger: logger.child({ component: 'grpc' }), rootLogger: logger, ...(guard ? { guard } : {}), ...shm });
    cleanup.push(() => grpc.close());
    logger.info({ http: http.port, grpc: grpc.port, metrics: metricsServer.port, repository: config.modelRepository, auth: guard ? config.auth.configFile : 'off' }, 'sluice is serving');
    if (!guard && !isLoopback(config.host)) logger.warn({ host: config.host }, 'sluice is open: it listens beyond loopback without an auth config, so anyone who reaches its ports may infer on every model and read its metadata and metrics (see docs/security.md; --auth-config)');

    let closing: Promise<void> | undefined;
    const close = async (): Promise<void> => {
      // Keep-alive clients learn of the drain from their next answer, well before the port closes.
      http.beginDrain();
      const drained = service.drain();
      const bounded = new Promise<void>((resolve) => setTimeout(resolve, config.drainTimeoutMs).unref());
      await Promise.race([drained, bounded]);
      // Front doors close after the drain so that every accepted request gets its answer written.
      await grpc.close();
      await http.close();
      // After the doors: every answered request has ended its trace, so the file holds them all.
      await tracer.close();
      // After the doors too: no request holds a region any more.
      await sharedMemory?.close();
      service.close();
      await pool.close();
      await uploads.close();
      await metricsServer.close();
      gpus.stop();
      guard?.close();
      stopLinkWatch();
    };
    return {
      ports: { http: http.port, grpc: grpc.port, metrics: metricsServer.port },
      service,
      metrics,
      workers: () => pool.workers(),
      close: () => (closing ??= close()),
    };
  } catch (e) {
    for (const c of cleanup.reverse()) await c().catch(() => undefined);
    await tracer.close().catch(() => undefined);
    service.close();
    await pool.close();
    await uploads.close();
    gpus.stop();
    throw e;
  }
}
