import type { AccessGuard } from '../../access/guard.ts';
import { Server, ServerCredentials, type ChannelOptions } from '@grpc/grpc-js';
import type { Config } from '../../config/schema.ts';
import type { InferenceService } from '../../core/inference.ts';
import type { SystemSharedMemory } from '../../shm/registry.ts';
import { LogBudget } from '../../telemetry/log-budget.ts';
import type { LogControl } from '../../telemetry/log-settings.ts';
import { logControlOf, type Logger } from '../../telemetry/logger.ts';
import type { Metrics } from '../../telemetry/metrics.ts';
import type { Tracer } from '../../telemetry/trace.ts';
import { serviceImplementation } from './handlers.ts';
import { rotatingServerCredentials } from './tls.ts';
import { loadInferenceService } from './proto.ts';

/** A running gRPC front door. */
export interface GrpcServer {
  /** The bound port (the real one when config.grpc.port is 0). */
  readonly port: number;
  /** Stops accepting calls, lets running ones finish (bounded by config.drainTimeoutMs), then cuts the rest. */
  close(): Promise<void>;
}

/**
 * Server channel options. Keepalive is tuned for clients that hold one channel for hours: the server
 * pings an idle connection every 60 s and drops it when no answer comes in 20 s (a vanished peer then
 * frees its streams), and client pings are welcome at any rate, with or without calls in flight. grpc-js
 * itself never polices client pings (Node's HTTP/2 answers every one); the permit settings state the
 * policy for gRPC implementations that read them.
 */
/**
 * Streams one client connection may hold open at once (HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS), as on
 * the REST port. Unbounded, one connection opened 50,000 streams of headers alone (about 10.6 kB each),
 * and twelve took the gateway to 5.6 GB; clients queue calls past the limit instead.
 */
export const GRPC_MAX_CONCURRENT_STREAMS = 256;

function channelOptions(config: Config): ChannelOptions {
  return {
    'grpc.max_concurrent_streams': GRPC_MAX_CONCURRENT_STREAMS,
    'grpc.max_receive_message_length': config.grpc.maxReceiveMessageBytes,
    'grpc.max_send_message_length': -1,
    'grpc.keepalive_time_ms': 60_000,
    'grpc.keepalive_timeout_ms': 20_000,
    'grpc.keepalive_permit_without_calls': 1,
    'grpc.http2.min_ping_interval_without_data_ms': 1_000,
    'grpc.http2.max_ping_strikes': 0,
  };
}


/** host:port for bindAsync; an IPv6 literal needs brackets. */
function address(host: string, port: number): string {
  return host.includes(':') && !host.startsWith('[') ? `[${host}]:${port}` : `${host}:${port}`;
}

/** The logging extension's control when the logger is a root made by sluice. */
function withLogControl(logger: Logger): { logControl?: LogControl } {
  const control = logControlOf(logger);
  return control ? { logControl: control } : {};
}

/**
 * Serves inference.GRPCInferenceService on config.host:config.grpc.port over the given service. gzip and
 * deflate compressed messages are accepted (grpc-js decompresses them, the size limit applying to the
 * decompressed message).
 */
export async function startGrpcServer(opts: { config: Config; service: InferenceService; metrics: Metrics; logger: Logger; tracer?: Tracer; guard?: AccessGuard; rootLogger?: Logger; sharedMemory?: SystemSharedMemory }): Promise<GrpcServer> {
  const { config, service, metrics, logger, tracer, guard } = opts;
  const definition = loadInferenceService();
  const drains = new Set<() => void>();
  const server = new Server(channelOptions(config));
  server.addService(definition, serviceImplementation({ service, metrics, logger, tracer, streams: drains, errorBudget: new LogBudget(), ...(guard ? { guard } : {}), ...(opts.sharedMemory ? { sharedMemory: opts.sharedMemory } : {}), ...withLogControl(opts.rootLogger ?? logger) }));
  const tls = config.grpc.tls && rotatingServerCredentials(config.grpc.tls.certFile, config.grpc.tls.keyFile, logger);
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(address(config.host, config.grpc.port), tls?.credentials ?? ServerCredentials.createInsecure(), (err, bound) => {
      if (err) {
        tls?.stop();
        reject(new Error(`gRPC server cannot listen on ${address(config.host, config.grpc.port)}: ${err.message}`, { cause: err }));
      }
      else resolve(bound);
    });
  });

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => new Promise<void>((resolve) => {
    tls?.stop();
    const timer = setTimeout(() => {
      logger.warn({ afterMs: config.drainTimeoutMs }, 'gRPC calls still running at shutdown; cancelling them');
      server.forceShutdown();
      resolve();
    }, config.drainTimeoutMs);
    timer.unref();
    server.tryShutdown(() => {
      clearTimeout(timer);
      resolve();
    });
    // Streams stay open as long as clients keep them: ask each to finish its in-flight requests and end.
    for (const drain of [...drains]) drain();
  });
  return { port, close: () => (closing ??= close()) };
}
