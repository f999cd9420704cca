/** The typed configuration of `sluice serve`. Built once at start, validated, then frozen. */
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
    readonly remote: readonly string[];
    readonly device: 'cpu' | 'cuda';
    readonly gpus: readonly number[];
    readonly cudaFallback: 'cpu' | 'fail';
    /** ONNX Runtime intra-op threads per session; 0 = cores / local workers. */
    readonly intraOpThreads: number;
    readonly memoryBudgetBytes: number;
    /** Batches sent to one worker before it answers: 2 keeps it busy while the next batch travels. */
    readonly maxInflightBatches: number;
    readonly connectionsPerWorker: number;
  };
  readonly balancer: { readonly policy: 'least-loaded' | 'round-robin' };
  readonly drainTimeoutMs: number;
  /** Input bytes that accepted, unanswered requests may hold, all models together. */
  readonly maxRequestMemoryBytes: number;
}
