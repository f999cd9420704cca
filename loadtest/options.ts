import { parseArgs } from 'node:util';
import type { LoadProtocol } from './types.ts';
import { parseShapeFlag } from './workload.ts';

/** A bad flag or value; the CLI prints the message and exits with status 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** Everything `sluice loadtest` was asked to do, validated. */
export interface LoadtestOptions {
  readonly url: string | undefined;
  readonly grpcUrl: string | undefined;
  readonly model: string;
  readonly version: string;
  readonly protocol: LoadProtocol;
  readonly concurrency: readonly number[];
  readonly rates: readonly number[];
  readonly durationMs: number;
  readonly warmupMs: number;
  readonly sloP99Ms: number | undefined;
  readonly searchSteps: number;
  readonly searchTolerance: number;
  readonly maxRate: number;
  readonly maxErrorRate: number;
  readonly jsonFile: string | undefined;
  readonly reportFile: string | undefined;
  readonly metricsUrl: string | undefined;
  readonly metrics: boolean;
  readonly inputFile: string | undefined;
  readonly shapes: Readonly<Record<string, readonly number[]>>;
  readonly batch: number;
  readonly variants: number;
  readonly seed: number;
  readonly checkEvery: number;
  readonly rtol: number;
  readonly timeoutMs: number;
  /** --header pairs: sent with every request (REST headers, gRPC call metadata). */
  readonly headers: Readonly<Record<string, string>>;
  readonly connections: number;
  readonly maxOutstanding: number;
  /** Server processes whose CPU time (their descendants' included) is read around each step. */
  readonly serverPids: readonly number[];
  readonly maxRequests: number;
  readonly drainTimeoutMs: number;
  readonly lateThresholdMs: number;
  readonly progress: boolean | undefined;
  readonly quiet: boolean;
  readonly help: boolean;
}

export const HELP = `Usage: sluice loadtest --model NAME [flags]

Load-tests a running sluice (or any Open Inference Protocol server): closed loop (fixed concurrency) or
open loop (fixed arrival rate, latency counted from each request's intended send time, so a stalled
server cannot hide its tail), or a search for the highest rate whose P99 stays under an SLO.

Target
  --url URL                 REST base URL (default http://127.0.0.1:8000)
  --grpc-url ADDR           gRPC address, grpc://host:port or host:port (default 127.0.0.1:8001)
  --model NAME              model to load-test (required)
  --model-version V         model version (default: the server's choice)
  --protocol P              json | binary | h2c | grpc (default json); binary and h2c use the
                            binary tensor extension, h2c over cleartext HTTP/2
  --metrics-url URL         Prometheus endpoint for the server's view (default: REST port + 2)
  --no-metrics              do not scrape the server
  --server-pid LIST         server process ids (their child processes included, e.g. sluice's workers):
                            report the server's CPU time per answered request for each step (Linux /proc)

Load
  --concurrency LIST        closed-loop steps: connections / requests in flight, e.g. 1,8,64
  --rate LIST               open-loop steps: requests per second, e.g. 100,500,1000
  --slo-p99 MS              search the highest open-loop rate whose P99 is <= MS
  --duration T              measured time per step (default 10s; 500ms, 10s, 1m)
  --warmup T                warm-up before each step, excluded from results (default 2s)
  --connections N           open loop over json/binary: keep-alive HTTP/1.1 connections, one request in
                            flight each (default 64); HTTP/2 sessions (h2c) or gRPC channels (default 1)
  --max-outstanding N       open loop: requests in flight at most; later ones wait and count as late (default 1024)
  --max-requests N          requests per step at most, warm-up included (default 10000000)
  --timeout T               per-request timeout (default 10s)
  --header 'Name: value'    send this header with every request, e.g. 'Authorization: Bearer KEY'
                            (repeatable; over gRPC as call metadata)
  --drain-timeout T         how long requests in flight at the end of a step may take (default 10s)
  --late-threshold MS       open loop: a request sent later than this counts as late (default 5)

SLO search
  --search-steps N          steps at most (default 10)
  --search-tolerance F      stop when the pass/fail bracket is within F (default 0.05)
  --max-rate R              highest rate tried (default 100000)
  --max-error-rate F        a step with more errors than this fraction fails (default 0.01)

Input data and correctness
  --input FILE              JSON inference request body to send (default: generated from the model's metadata)
  --shape NAME:D1xD2        shape of a generated input (repeatable; default: metadata, dynamic dims 1)
  --batch N                 rows per request for a leading dynamic dimension (default 1)
  --variants N              distinct seeded input sets rotated through the run (default 8)
  --seed N                  seed of the generated data (default 1)
  --check-every N           check the first response and one in N (default 16; 0 = no checks)
  --no-check                same as --check-every 0
  --rtol F                  relative tolerance of float comparisons (default 0.001)

Output
  --json FILE               write every step's results as JSON
  --report FILE             write a self-contained report with plots: FILE.html or FILE.svg
  --progress / --no-progress  live progress on stderr (default: when stderr is a TTY)
  --quiet                   no table on stdout
  --help                    this text

Exit status: 0 done, 1 failed (unreachable target, wrong answers seen), 2 bad usage.
`;

const FLAGS = {
  url: { type: 'string' }, 'grpc-url': { type: 'string' }, model: { type: 'string' }, 'model-version': { type: 'string' },
  protocol: { type: 'string' }, concurrency: { type: 'string', multiple: true }, rate: { type: 'string', multiple: true },
  duration: { type: 'string' }, warmup: { type: 'string' }, 'slo-p99': { type: 'string' }, 'search-steps': { type: 'string' },
  'search-tolerance': { type: 'string' }, 'max-rate': { type: 'string' }, 'max-error-rate': { type: 'string' },
  json: { type: 'string' }, report: { type: 'string' }, 'metrics-url': { type: 'string' }, 'no-metrics': { type: 'boolean' },
  input: { type: 'string' }, shape: { type: 'string', multiple: true }, batch: { type: 'string' }, variants: { type: 'string' },
  seed: { type: 'string' }, 'check-every': { type: 'string' }, 'no-check': { type: 'boolean' }, rtol: { type: 'string' },
  timeout: { type: 'string' }, connections: { type: 'string' }, 'max-outstanding': { type: 'string' }, 'max-requests': { type: 'string' },
  'drain-timeout': { type: 'string' }, 'late-threshold': { type: 'string' }, progress: { type: 'boolean' }, 'no-progress': { type: 'boolean' },
  quiet: { type: 'boolean' }, help: { type: 'boolean', short: 'h' }, 'server-pid': { type: 'string', multiple: true },
  header: { type: 'string', multiple: true },
} as const;

/** --header 'Name: value' pairs; a name is an HTTP token, and content-type and lengths stay the tool's. */
export function parseHeaders(items: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of items) {
    const m = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+):\s*(.*)$/.exec(item);
    if (!m) throw new UsageError(`--header '${item}': expected 'Name: value'`);
    const name = m[1]!.toLowerCase();
    if (['content-type', 'content-length', 'host', 'transfer-encoding', 'connection', 'inference-header-content-length'].includes(name)) throw new UsageError(`--header ${m[1]}: this header is set by the tool`);
    out[name] = m[2]!.trim();
  }
  return out;
}

/** Parses 10, 10s, 500ms, 2m into milliseconds. */
export function parseDuration(flag: string, text: string, maxMs: number): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(text.trim());
  if (!m) throw new UsageError(`--${flag} '${text}': expected a duration such as 10, 10s, 500ms or 2m`);
  const ms = Number(m[1]) * (m[2] === 'ms' ? 1 : m[2] === 'm' ? 60_000 : 1000);
  if (ms > maxMs) throw new UsageError(`--${flag} ${text}: at most ${maxMs / 1000}s`);
  return ms;
}

function num(flag: string, text: string | undefined, dflt: number, lo: number, hi: number, integer: boolean): number {
  if (text === undefined) return dflt;
  const n = Number(text);
  if (text.trim() === '' || !Number.isFinite(n) || (integer && !Number.isInteger(n))) throw new UsageError(`--${flag} '${text}': expected ${integer ? 'an integer' : 'a number'}`);
  if (n < lo || n > hi) throw new UsageError(`--${flag} ${text}: must be between ${lo} and ${hi}`);
  return n;
}

function list(flag: string, values: readonly string[] | undefined, lo: number, hi: number, integer: boolean): number[] {
  const items = (values ?? []).flatMap((v) => v.split(',')).map((s) => s.trim()).filter((s) => s !== '');
  if (items.length > 100) throw new UsageError(`--${flag}: at most 100 steps`);
  return items.map((s) => num(flag, s, 0, lo, hi, integer));
}

/** Parses and validates argv (without the `loadtest` command itself). */
export function parseOptions(argv: readonly string[]): LoadtestOptions {
  let parsed;
  try {
    parsed = parseArgs({ args: [...argv], options: FLAGS, strict: true, allowPositionals: false });
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const v = parsed.values;
  const help = v.help === true;
  const protocol = (v.protocol ?? 'json') as LoadProtocol;
  if (!['json', 'binary', 'h2c', 'grpc'].includes(protocol)) throw new UsageError(`--protocol '${v.protocol}': expected json, binary, h2c or grpc`);
  if (!help && (v.model === undefined || v.model === '')) throw new UsageError('--model is required');
  const shapes: Record<string, number[]> = {};
  for (const s of v.shape ?? []) {
    try {
      const [name, dims] = parseShapeFlag(s);
      shapes[name] = dims;
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
  }
  for (const [flag, u] of [['url', v.url], ['metrics-url', v['metrics-url']]] as const) {
    if (u !== undefined && !/^https?:\/\/[^/]+/.test(u)) throw new UsageError(`--${flag} '${u}': expected http://host:port`);
  }
  if (v.report !== undefined && !/\.(html?|svg)$/i.test(v.report)) throw new UsageError(`--report ${v.report}: the file name must end in .html or .svg`);
  if (v.url?.startsWith('https:')) throw new UsageError(`--url '${v.url}': this tool speaks cleartext HTTP only`);
  const sloP99Ms = v['slo-p99'] === undefined ? undefined : num('slo-p99', v['slo-p99'], 0, 0.001, 3_600_000, false);
  const checkEvery = v['no-check'] === true ? 0 : num('check-every', v['check-every'], 16, 0, 1e9, true);
  return {
    url: v.url ?? (protocol === 'grpc' ? undefined : 'http://127.0.0.1:8000'),
    grpcUrl: v['grpc-url'] ?? (protocol === 'grpc' ? '127.0.0.1:8001' : undefined),
    model: v.model ?? '',
    version: v['model-version'] ?? '',
    protocol,
    concurrency: list('concurrency', v.concurrency, 1, 10_000, true),
    rates: list('rate', v.rate, 0.001, 1_000_000, false),
    durationMs: v.duration === undefined ? 10_000 : parseDuration('duration', v.duration, 3_600_000),
    warmupMs: v.warmup === undefined ? 2000 : parseDuration('warmup', v.warmup, 600_000),
    sloP99Ms,
    searchSteps: num('search-steps', v['search-steps'], 10, 1, 100, true),
    searchTolerance: num('search-tolerance', v['search-tolerance'], 0.05, 0.001, 1, false),
    maxRate: num('max-rate', v['max-rate'], 100_000, 0.001, 1_000_000, false),
    maxErrorRate: num('max-error-rate', v['max-error-rate'], 0.01, 0, 1, false),
    jsonFile: v.json,
    reportFile: v.report,
    metricsUrl: v['metrics-url'],
    metrics: v['no-metrics'] !== true,
    inputFile: v.input,
    shapes,
    batch: num('batch', v.batch, 1, 1, 1_000_000, true),
    variants: num('variants', v.variants, 8, 1, 1024, true),
    seed: num('seed', v.seed, 1, 0, 2 ** 32 - 1, true),
    checkEvery,
    rtol: num('rtol', v.rtol, 1e-3, 0, 1, false),
    timeoutMs: v.timeout === undefined ? 10_000 : parseDuration('timeout', v.timeout, 3_600_000),
    headers: parseHeaders(v.header ?? []),
    // HTTP/1.1 has one request in flight per connection, so its open loop needs many; h2c and gRPC multiplex.
    connections: num('connections', v.connections, protocol === 'json' || protocol === 'binary' ? 64 : 1, 1, 1024, true),
    serverPids: list('server-pid', v['server-pid'], 1, 2 ** 22, true),
    maxOutstanding: num('max-outstanding', v['max-outstanding'], 1024, 1, 65_536, true),
    maxRequests: num('max-requests', v['max-requests'], 10_000_000, 1, 1e9, true),
    drainTimeoutMs: v['drain-timeout'] === undefined ? 10_000 : parseDuration('drain-timeout', v['drain-timeout'], 3_600_000),
    lateThresholdMs: num('late-threshold', v['late-threshold'], 5, 0, 60_000, false),
    progress: v['no-progress'] === true ? false : v.progress === true ? true : undefined,
    quiet: v.quiet === true,
    help,
  };
}
