import type { Config } from './schema.ts';

/** One setting: its flag (tritonserver's name where one exists), environment variable and config path. */
export interface OptionSpec {
  readonly flag: string;
  readonly env: string;
  /** Dotted path into Config. */
  readonly path: string;
  readonly type: 'string' | 'int' | 'bool' | 'list' | 'bytes';
  readonly help: string;
  readonly choices?: readonly string[];
  readonly min?: number;
  readonly max?: number;
}

export const DEFAULTS: Config = {
  modelRepository: './models',
  serverName: 'sluice',
  host: '0.0.0.0',
  http: { port: 8000, tls: undefined, bodyLimitBytes: 64 * 1024 * 1024, keepAliveTimeoutMs: 75_000, requestTimeoutMs: 120_000 },
  grpc: { port: 8001, tls: undefined, maxReceiveMessageBytes: 64 * 1024 * 1024 },
  metrics: { port: 8002 },
  modelControlMode: 'none',
  repositoryPollSeconds: 15,
  loadModels: [],
  logLevel: 'info',
  workers: {
    count: -1,
    isolation: 'auto',
    remote: [],
    discovery: '',
    discoveryIntervalMs: 5000,
    device: 'cpu',
    gpus: [],
    cudaFallback: 'cpu',
    intraOpThreads: 0,
    memoryBudgetBytes: 2 * 1024 * 1024 * 1024,
    maxInflightBatches: 0,
    connectionsPerWorker: 4,
    link: { tokenFile: '', tlsCaFile: '', tlsCertFile: '', tlsKeyFile: '' },
  },
  balancer: { policy: 'least-loaded' },
  drainTimeoutMs: 30_000,
  maxRequestMemoryBytes: 1024 * 1024 * 1024,
  // Triton's defaults: tracing off, one in 1000 requests once it is on, no limit on the count.
  trace: { file: '', level: ['OFF'], rate: 1000, count: -1, logFrequency: 0, mode: 'triton', otlpUrl: '', settings: [] },
  auth: { configFile: '' },
  fairQueuing: true,
  sharedMemory: 'auto',
  responseCache: { settings: [], sizeBytes: 0 },
};

const PORT = { min: 0, max: 65535 } as const;

export const OPTIONS: readonly OptionSpec[] = [
  { flag: 'model-repository', env: 'SLUICE_MODEL_REPOSITORY', path: 'modelRepository', type: 'string', help: 'model repository folder (Triton layout)' },
  { flag: 'server-name', env: 'SLUICE_SERVER_NAME', path: 'serverName', type: 'string', help: 'server name reported by GET /v2' },
  { flag: 'host', env: 'SLUICE_HOST', path: 'host', type: 'string', help: 'address the HTTP, gRPC and metrics ports bind' },
  { flag: 'http-port', env: 'SLUICE_HTTP_PORT', path: 'http.port', type: 'int', ...PORT, help: 'HTTP/1.1 + HTTP/2 port (0 = any free port)' },
  { flag: 'http-tls-cert', env: 'SLUICE_HTTP_TLS_CERT', path: 'http.tls.certFile', type: 'string', help: 'PEM certificate: serve HTTPS with ALPN h2 and http/1.1' },
  { flag: 'http-tls-key', env: 'SLUICE_HTTP_TLS_KEY', path: 'http.tls.keyFile', type: 'string', help: 'PEM private key for --http-tls-cert' },
  { flag: 'http-body-limit', env: 'SLUICE_HTTP_BODY_LIMIT', path: 'http.bodyLimitBytes', type: 'bytes', min: 1024, help: 'largest request body, e.g. 64mb' },
  { flag: 'http-request-timeout-ms', env: 'SLUICE_HTTP_REQUEST_TIMEOUT_MS', path: 'http.requestTimeoutMs', type: 'int', min: 1000, max: 3_600_000, help: 'longest time to receive one whole HTTP request' },
  { flag: 'http-keep-alive-timeout-ms', env: 'SLUICE_HTTP_KEEP_ALIVE_TIMEOUT_MS', path: 'http.keepAliveTimeoutMs', type: 'int', min: 100, max: 3_600_000, help: 'how long an idle keep-alive connection stays open' },
  { flag: 'grpc-port', env: 'SLUICE_GRPC_PORT', path: 'grpc.port', type: 'int', ...PORT, help: 'gRPC port (0 = any free port)' },
  { flag: 'grpc-tls-cert', env: 'SLUICE_GRPC_TLS_CERT', path: 'grpc.tls.certFile', type: 'string', help: 'PEM certificate for gRPC TLS' },
  { flag: 'grpc-tls-key', env: 'SLUICE_GRPC_TLS_KEY', path: 'grpc.tls.keyFile', type: 'string', help: 'PEM private key for --grpc-tls-cert' },
  { flag: 'grpc-max-receive-message-size', env: 'SLUICE_GRPC_MAX_RECEIVE_MESSAGE_SIZE', path: 'grpc.maxReceiveMessageBytes', type: 'bytes', min: 1024, help: 'largest gRPC message accepted' },
  { flag: 'metrics-port', env: 'SLUICE_METRICS_PORT', path: 'metrics.port', type: 'int', ...PORT, help: 'Prometheus /metrics port (0 = any free port)' },
  { flag: 'model-control-mode', env: 'SLUICE_MODEL_CONTROL_MODE', path: 'modelControlMode', type: 'string', choices: ['none', 'explicit', 'poll'], help: 'none: load all at start; explicit: load/unload API; poll: rescan the repository' },
  { flag: 'repository-poll-secs', env: 'SLUICE_REPOSITORY_POLL_SECS', path: 'repositoryPollSeconds', type: 'int', min: 1, max: 86400, help: 'rescan interval in poll mode' },
  { flag: 'load-model', env: 'SLUICE_LOAD_MODEL', path: 'loadModels', type: 'list', help: 'model to load at start (repeatable; env: comma-separated)' },
  { flag: 'log-level', env: 'SLUICE_LOG_LEVEL', path: 'logLevel', type: 'string', choices: ['fatal', 'error', 'warn', 'info', 'debug', 'trace'], help: 'log level' },
  { flag: 'workers', env: 'SLUICE_WORKERS', path: 'workers.count', type: 'int', min: -1, max: 256, help: 'local worker processes (-1: one per GPU, else 1; 0: remote workers only)' },
  { flag: 'worker-isolation', env: 'SLUICE_WORKER_ISOLATION', path: 'workers.isolation', type: 'string', choices: ['auto', 'inline', 'thread', 'process'], help: "where local workers run ONNX Runtime: on the gateway's event loop (inline), on a thread of the gateway, or in processes of their own (a native crash stays in the worker); auto = inline on the CPU, thread with CUDA" },
  { flag: 'worker', env: 'SLUICE_WORKER', path: 'workers.remote', type: 'list', help: 'remote worker host URL, e.g. http://10.0.0.5:9000 (repeatable)' },
  { flag: 'worker-discovery', env: 'SLUICE_WORKER_DISCOVERY', path: 'workers.discovery', type: 'string', help: 'remote worker hosts found by DNS: dns://[SERVER]/NAME:PORT, every A/AAAA record of NAME (a headless Service), re-resolved each interval' },
  { flag: 'worker-discovery-interval-ms', env: 'SLUICE_WORKER_DISCOVERY_INTERVAL_MS', path: 'workers.discoveryIntervalMs', type: 'int', min: 100, max: 3_600_000, help: 'how often --worker-discovery resolves its name again' },
  { flag: 'device', env: 'SLUICE_DEVICE', path: 'workers.device', type: 'string', choices: ['cpu', 'cuda', 'webgpu'], help: 'execution provider of local workers: cpu, cuda (NVIDIA; its library is installed separately) or webgpu (bundled, Dawn over Vulkan; needs a Vulkan driver); a GPU provider that cannot load falls back per --cuda-fallback' },
  { flag: 'gpus', env: 'SLUICE_GPUS', path: 'workers.gpus', type: 'list', help: 'GPU device ids for local workers (comma-separated)' },
  { flag: 'cuda-fallback', env: 'SLUICE_CUDA_FALLBACK', path: 'workers.cudaFallback', type: 'string', choices: ['cpu', 'fail'], help: 'when the CUDA provider cannot load: run on cpu, or fail the model' },
  { flag: 'intra-op-threads', env: 'SLUICE_INTRA_OP_THREADS', path: 'workers.intraOpThreads', type: 'int', min: 0, max: 1024, help: 'ONNX Runtime threads per session (0: cores / workers)' },
  { flag: 'worker-memory-budget', env: 'SLUICE_WORKER_MEMORY_BUDGET', path: 'workers.memoryBudgetBytes', type: 'bytes', min: 1, help: 'hot-model cache budget per worker, e.g. 2gb' },
  { flag: 'worker-max-inflight', env: 'SLUICE_WORKER_MAX_INFLIGHT', path: 'workers.maxInflightBatches', type: 'int', min: 0, max: 64, help: 'batches in flight per worker (0: 1 on a thread worker, 2 on a worker process or remote host)' },
  { flag: 'worker-token-file', env: 'SLUICE_WORKER_TOKEN_FILE', path: 'workers.link.tokenFile', type: 'string', help: 'file holding the shared token (its first line) sent as Authorization: Bearer to remote workers (sluice worker --token-file); re-read with the --worker-tls-* files on SIGHUP and on change' },
  { flag: 'worker-tls-ca', env: 'SLUICE_WORKER_TLS_CA', path: 'workers.link.tlsCaFile', type: 'string', help: 'PEM CA that verifies https:// remote worker hosts (default: the system CAs)' },
  { flag: 'worker-tls-cert', env: 'SLUICE_WORKER_TLS_CERT', path: 'workers.link.tlsCertFile', type: 'string', help: 'PEM client certificate presented to remote worker hosts (mutual TLS)' },
  { flag: 'worker-tls-key', env: 'SLUICE_WORKER_TLS_KEY', path: 'workers.link.tlsKeyFile', type: 'string', help: 'PEM private key for --worker-tls-cert' },
  { flag: 'balancer', env: 'SLUICE_BALANCER', path: 'balancer.policy', type: 'string', choices: ['least-loaded', 'round-robin'], help: 'worker pick policy' },
  { flag: 'max-request-memory', env: 'SLUICE_MAX_REQUEST_MEMORY', path: 'maxRequestMemoryBytes', type: 'bytes', min: 1024, help: 'input bytes accepted requests may hold in all (beyond: RESOURCE_EXHAUSTED), e.g. 1gb' },
  { flag: 'trace-config', env: 'SLUICE_TRACE_CONFIG', path: 'trace.settings', type: 'list', help: "Triton's trace settings: [triton,|opentelemetry,]key=value, keys level, rate, count, mode, file, log-frequency, url (repeatable; wins over --trace-*)" },
  { flag: 'trace-file', env: 'SLUICE_TRACE_FILE', path: 'trace.file', type: 'string', help: 'trace file of trace mode triton (with --trace-log-frequency N: the prefix of file.0, file.1, ...)' },
  { flag: 'trace-level', env: 'SLUICE_TRACE_LEVEL', path: 'trace.level', type: 'list', help: 'OFF, or TIMESTAMPS (TENSORS is accepted and traces timestamps)' },
  { flag: 'trace-rate', env: 'SLUICE_TRACE_RATE', path: 'trace.rate', type: 'int', min: 1, max: 4_294_967_295, help: 'trace one request in every N' },
  { flag: 'trace-count', env: 'SLUICE_TRACE_COUNT', path: 'trace.count', type: 'int', min: -1, max: 2_147_483_647, help: 'traces to take, then stop (-1: unlimited)' },
  { flag: 'trace-log-frequency', env: 'SLUICE_TRACE_LOG_FREQUENCY', path: 'trace.logFrequency', type: 'int', min: 0, max: 4_294_967_295, help: 'write the trace file every N traces (0: at shutdown)' },
  { flag: 'trace-mode', env: 'SLUICE_TRACE_MODE', path: 'trace.mode', type: 'string', choices: ['triton', 'opentelemetry'], help: 'triton: the trace file; opentelemetry: OTLP/HTTP export to --trace-otlp-url' },
  { flag: 'trace-otlp-url', env: 'SLUICE_TRACE_OTLP_URL', path: 'trace.otlpUrl', type: 'string', help: 'OpenTelemetry collector, e.g. http://127.0.0.1:4318 (POST /v1/traces; needs --trace-mode opentelemetry)' },
  { flag: 'auth-config', env: 'SLUICE_AUTH_CONFIG', path: 'auth.configFile', type: 'string', help: 'API keys, tenants, scopes and rate limits (JSON or YAML; reloaded on SIGHUP and when the file changes)' },
  { flag: 'fair-queuing', env: 'SLUICE_FAIR_QUEUING', path: 'fairQueuing', type: 'bool', help: "serve tenants of one model's queue by weighted fair share (false: one arrival order for all)" },
  { flag: 'cache-config', env: 'SLUICE_CACHE_CONFIG', path: 'responseCache.settings', type: 'list', help: "tritonserver's response cache: local,size=BYTES (e.g. local,size=64mb); models opt in with response_cache { enable: true }" },
  { flag: 'shared-memory', env: 'SLUICE_SHARED_MEMORY', path: 'sharedMemory', type: 'string', choices: ['auto', 'system', 'none'], help: "system: clients on this host may register POSIX shared-memory regions (/dev/shm) for tensors; none: the extension is off; auto (default): system when --host is loopback or an --auth-config is given, else none" },
  { flag: 'drain-timeout-ms', env: 'SLUICE_DRAIN_TIMEOUT_MS', path: 'drainTimeoutMs', type: 'int', min: 0, max: 3_600_000, help: 'how long SIGTERM waits for accepted requests' },
];
