/** The typed configuration of `sluice serve`. Built once at start, validated, then frozen. */
import type { Device } from '../core/device.ts';
export interface TlsConfig {
  readonly certFile: string;
  readonly keyFile: string;
}

export interface Config {
  readonly modelRepository: string;
  readonly serverName: string;
  readonly host: string;
  readonly http: {
    readonly port: number;
    readonly tls: TlsConfig | undefined;
    readonly bodyLimitBytes: number;
    readonly keepAliveTimeoutMs: number;
    readonly requestTimeoutMs: number;
  };
  readonly grpc: {
    readonly port: number;
    readonly tls: TlsConfig | undefined;
    readonly maxReceiveMessageBytes: number;
  };
  readonly metrics: { readonly port: number };
  readonly modelControlMode: 'none' | 'explicit' | 'poll';
  readonly repositoryPollSeconds: number;
  /** Models to load at start; empty = all (modes none/poll) or none (explicit). */
  readonly loadModels: readonly string[];
  readonly logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace';
  readonly workers: {
    /** Local worker processes; -1 = one per GPU when GPUs are configured, else 1. */
    readonly count: number;
    /**
     * How local workers run: 'inline' = ONNX Runtime on the gateway's event-loop thread (no hop at
     * all), 'thread' = on a worker_thread of the gateway (both: a native crash takes the gateway down),
     * 'process' = a process each behind a unix socket; 'auto' = inline on the CPU, thread with CUDA.
     */
    readonly isolation: 'auto' | 'inline' | 'thread' | 'process';
    readonly remote: readonly string[];
    /** `dns://[SERVER]/NAME:PORT`: remote workers are every address NAME resolves to ('' = none). */
    readonly discovery: string;
    readonly discoveryIntervalMs: number;
    readonly device: Device;
    readonly gpus: readonly number[];
    readonly cudaFallback: 'cpu' | 'fail';
    /** ONNX Runtime intra-op threads per session; 0 = cores / local workers. */
    readonly intraOpThreads: number;
    readonly memoryBudgetBytes: number;
    /** Batches sent to one worker before it answers; 0 = inflightBatchesOf's choice for the kind of worker. */
    readonly maxInflightBatches: number;
    readonly connectionsPerWorker: number;
    /**
     * How the gateway proves itself to remote worker hosts and checks them (docs/worker-protocol.md,
     * Authentication of the link). Files only: the secrets are read at start, never kept here. '' = unset.
     */
    readonly link: {
      /** Shared token sent as `Authorization: Bearer` to every remote worker. */
      readonly tokenFile: string;
      /** PEM CA that verifies https:// worker hosts ('' = the system's CAs). */
      readonly tlsCaFile: string;
      /** PEM client certificate and key presented to worker hosts that require one. */
      readonly tlsCertFile: string;
      readonly tlsKeyFile: string;
    };
  };
  readonly balancer: { readonly policy: 'least-loaded' | 'round-robin' };
  readonly drainTimeoutMs: number;
  /** Input bytes that accepted, unanswered requests may hold, all models together. */
  readonly maxRequestMemoryBytes: number;
  readonly trace: TraceConfig;
  /** Who may do what (docs/security.md); without a file every port is open, as before. */
  readonly auth: {
    /** Keys, tenants, scopes, weights and rate limits (JSON or YAML); '' = no authentication. */
    readonly configFile: string;
  };
  /**
   * Whether a model's queue serves tenants by weighted fair share (the auth config's weights); off,
   * every request waits in one priority-then-arrival order whoever sent it.
   */
  readonly fairQueuing: boolean;
  /**
   * Triton's shared-memory extension: 'system' = clients on this host may register POSIX shared-memory
   * objects (/dev/shm) and send or receive tensors through them; 'none' = off (the routes 404, the gRPC
   * methods and tensors naming a region answer UNIMPLEMENTED).
   */
  /** 'auto' is resolved at load: 'system' on a loopback host or with an auth config, else 'none'. */
  readonly sharedMemory: 'auto' | 'system' | 'none';
  /** Triton's response cache, shared by every model whose config enables it (--cache-config). */
  readonly responseCache: ResponseCacheSettings;
}

/** The gateway's response cache (docs/protocol.md, Response cache). */
export interface ResponseCacheSettings {
  /** tritonserver's --cache-config entries as given (`local`, `size=BYTES`); load folds them into sizeBytes. */
  readonly settings: readonly string[];
  /** The byte budget of the local cache; 0 = no cache, even for models that enable it (as in Triton). */
  readonly sizeBytes: number;
}

/** Triton's trace extension at start (the global trace settings; docs/protocol.md, trace extension). */
export interface TraceConfig {
  /** Where mode 'triton' writes traces ('' = nowhere); with logFrequency > 0 the prefix of file.0, file.1, ... */
  readonly file: string;
  /** ['OFF'], or any of 'TIMESTAMPS' and 'TENSORS' (TENSORS traces timestamps only, as TIMESTAMPS). */
  readonly level: readonly string[];
  /** One request in every `rate` is traced. */
  readonly rate: number;
  /** Traces still to take; -1 = unlimited, 0 = none. */
  readonly count: number;
  /** 0 = write the trace file at shutdown; N = write file.<i> every N traces. */
  readonly logFrequency: number;
  /** 'triton': the trace file; 'opentelemetry': OTLP/HTTP JSON export to otlpUrl. */
  readonly mode: 'triton' | 'opentelemetry';
  /** OTLP/HTTP collector base URL (POST {otlpUrl}/v1/traces); '' = none. */
  readonly otlpUrl: string;
  /** Triton's --trace-config entries as given; load folds them into the fields above (they win). */
  readonly settings: readonly string[];
}
