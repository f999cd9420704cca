import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { DEFAULTS, OPTIONS, type OptionSpec } from './options.ts';
import type { Config } from './schema.ts';
import { applyCacheSettings } from './cache.ts';
import { applyTraceSettings, normalizedLevels, traceConfigProblem } from './trace.ts';
import { workerLinkProblem } from './worker-link.ts';
import { parseDiscovery } from './worker-discovery.ts';

/** A configuration problem, named by the setting that caused it. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

type Source = 'flag' | 'env' | 'file';
type Mutable = Record<string, unknown>;

const BYTE_UNITS: Record<string, number> = { '': 1, b: 1, kb: 1024, k: 1024, mb: 1024 ** 2, m: 1024 ** 2, gb: 1024 ** 3, g: 1024 ** 3 };

function parseBytes(text: string): number | undefined {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(text);
  if (!m) return undefined;
  const unit = BYTE_UNITS[m[2]!.toLowerCase()];
  return unit === undefined ? undefined : Math.floor(Number(m[1]) * unit);
}

function describe(spec: OptionSpec, source: Source): string {
  if (source === 'flag') return `--${spec.flag}`;
  if (source === 'env') return spec.env;
  return `config file field '${spec.path}'`;
}

function coerce(spec: OptionSpec, raw: unknown, source: Source): unknown {
  const where = describe(spec, source);
  switch (spec.type) {
    case 'string': {
      if (typeof raw !== 'string' || raw === '') throw new ConfigError(`${where}: expected a non-empty string`);
      if (spec.choices && !spec.choices.includes(raw)) throw new ConfigError(`${where}: '${raw}' is not one of ${spec.choices.join(', ')}`);
      return raw;
    }
    case 'int': {
      const n = typeof raw === 'number' ? raw : typeof raw === 'string' && /^-?\d+$/.test(raw.trim()) ? Number(raw) : NaN;
      if (!Number.isSafeInteger(n)) throw new ConfigError(`${where}: '${String(raw)}' is not an integer`);
      if (spec.min !== undefined && n < spec.min) throw new ConfigError(`${where}: ${n} is below the minimum ${spec.min}`);
      if (spec.max !== undefined && n > spec.max) throw new ConfigError(`${where}: ${n} is above the maximum ${spec.max}`);
      return n;
    }
    case 'bytes': {
      const n = typeof raw === 'number' ? raw : typeof raw === 'string' ? parseBytes(raw) : undefined;
      if (n === undefined || !Number.isSafeInteger(n)) throw new ConfigError(`${where}: '${String(raw)}' is not a size (e.g. 65536, 64kb, 2gb)`);
      if (spec.min !== undefined && n < spec.min) throw new ConfigError(`${where}: ${n} bytes is below the minimum ${spec.min}`);
      return n;
    }
    case 'bool': {
      if (typeof raw === 'boolean') return raw;
      if (raw === 'true' || raw === '1') return true;
      if (raw === 'false' || raw === '0') return false;
      throw new ConfigError(`${where}: '${String(raw)}' is not true or false`);
    }
    case 'list': {
      const items = Array.isArray(raw) ? raw.flatMap((v) => String(v).split(',')) : typeof raw === 'string' ? raw.split(',') : undefined;
      if (!items) throw new ConfigError(`${where}: expected a list`);
      return items.map((s) => s.trim()).filter((s) => s !== '');
    }
  }
}

function setPath(target: Mutable, path: string, value: unknown): void {
  const parts = path.split('.');
  let node = target;
  for (const p of parts.slice(0, -1)) {
    const next = node[p];
    if (next === undefined || next === null) node[p] = {};
    node = node[p] as Mutable;
  }
  node[parts[parts.length - 1]!] = value;
}

function getPath(source: unknown, path: string): unknown {
  let node = source;
  for (const p of path.split('.')) {
    if (node === null || typeof node !== 'object') return undefined;
    node = (node as Mutable)[p];
  }
  return node;
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

export interface LoadInput {
  readonly argv: readonly string[];
  readonly env: Readonly<Record<string, string | undefined>>;
}

/** Flags for `--help`: every option with its environment variable. */
export function optionsHelp(): string {
  const lines = OPTIONS.map((o) => `  --${o.flag.padEnd(32)} ${o.help}${o.choices ? ` (${o.choices.join('|')})` : ''} [${o.env}]`);
  lines.push(`  --${'config FILE'.padEnd(32)} JSON config file with the same settings as fields [SLUICE_CONFIG]`);
  lines.push(`  --${'log-verbose N'.padEnd(32)} tritonserver's verbosity: N > 0 logs at debug [SLUICE_LOG_VERBOSE]`);
  return lines.join('\n');
}

/**
 * Builds the Config: defaults, then the config file (--config or SLUICE_CONFIG), then environment
 * variables, then flags. Throws ConfigError naming the setting on any invalid value or unknown flag.
 */
export function loadConfig(input: LoadInput): Config {
  const flagOptions: Record<string, { type: 'string'; multiple?: boolean }> = { config: { type: 'string' }, 'log-verbose': { type: 'string' } };
  for (const o of OPTIONS) flagOptions[o.flag] = o.type === 'list' ? { type: 'string', multiple: true } : { type: 'string' };
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({ args: [...input.argv], options: flagOptions, strict: true, allowPositionals: false });
  } catch (e) {
    throw new ConfigError((e as Error).message);
  }
  const flags = parsed.values as Record<string, string | string[] | undefined>;
  const config = structuredClone(DEFAULTS) as unknown as Mutable;

  const file = (flags['config'] as string | undefined) ?? input.env['SLUICE_CONFIG'];
  if (file !== undefined) {
    let json: unknown;
    try {
      json = JSON.parse(readFileSync(file, 'utf8'));
    } catch (e) {
      throw new ConfigError(`config file ${file}: ${(e as Error).message}`);
    }
    if (json === null || typeof json !== 'object' || Array.isArray(json)) throw new ConfigError(`config file ${file}: expected a JSON object`);
    for (const o of OPTIONS) {
      const v = getPath(json, o.path);
      if (v !== undefined) setPath(config, o.path, coerce(o, v, 'file'));
    }
  }
  for (const o of OPTIONS) {
    const v = input.env[o.env];
    if (v !== undefined && v !== '') setPath(config, o.path, coerce(o, v, 'env'));
  }
  const verbose = (flags['log-verbose'] as string | undefined) ?? input.env['SLUICE_LOG_VERBOSE'];
  if (verbose !== undefined) {
    if (!/^\d+$/.test(verbose)) throw new ConfigError(`--log-verbose: '${verbose}' is not a non-negative integer`);
    if (Number(verbose) > 0) config['logLevel'] = 'debug';
  }
  for (const o of OPTIONS) {
    const v = flags[o.flag];
    if (v !== undefined) setPath(config, o.path, coerce(o, v, 'flag'));
  }
  const trace = config['trace'] as Parameters<typeof applyTraceSettings>[0];
  try {
    applyTraceSettings(trace);
    applyCacheSettings(config['responseCache'] as Parameters<typeof applyCacheSettings>[0]);
  } catch (e) {
    throw new ConfigError((e as Error).message);
  }
  validate(config as unknown as Config);
  trace.level = normalizedLevels(trace);
  // 'auto': shared memory is a same-host feature; a port open to the network without keys would let
  // any peer read and write the gateway user's /dev/shm objects, so there it stays off unless asked.
  if (config['sharedMemory'] === 'auto') config['sharedMemory'] = (config['auth'] as { configFile: string }).configFile !== '' || isLoopbackHost(String(config['host'])) ? 'system' : 'none';
  const workers = config['workers'] as Mutable;
  workers['gpus'] = (workers['gpus'] as unknown[]).map(Number);
  return deepFreeze(config as unknown as Config);
}

/** Whether a bind address keeps the ports on this host. */
function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h === '::1' || /^127\.\d+\.\d+\.\d+$/.test(h);
}

function validate(c: Config): void {
  for (const [name, tls] of [['http', c.http.tls], ['grpc', c.grpc.tls]] as const) {
    if (tls && (!tls.certFile || !tls.keyFile)) throw new ConfigError(`--${name}-tls-cert and --${name}-tls-key must be given together`);
  }
  const ports = [c.http.port, c.grpc.port, c.metrics.port].filter((p) => p !== 0);
  if (new Set(ports).size !== ports.length) throw new ConfigError(`--http-port, --grpc-port and --metrics-port must differ (got ${c.http.port}, ${c.grpc.port}, ${c.metrics.port})`);
  for (const url of c.workers.remote) {
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      throw new ConfigError(`--worker: '${url}' is not a URL (expected http://host:port, https://host:port or unix:/path/to.sock)`);
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:' && u.protocol !== 'unix:') throw new ConfigError(`--worker: '${url}' must use http:, https: or unix:`);
  }
  if (c.workers.discovery !== '') {
    try {
      parseDiscovery(c.workers.discovery);
    } catch (e) {
      throw new ConfigError(`--worker-discovery: ${(e as Error).message}`);
    }
  }
  for (const g of c.workers.gpus) if (!/^\d+$/.test(String(g))) throw new ConfigError(`--gpus: '${String(g)}' is not a device id`);
  const linkProblem = workerLinkProblem(c);
  if (linkProblem !== undefined) throw new ConfigError(linkProblem);
  const traceProblem = traceConfigProblem(c.trace);
  if (traceProblem !== undefined) throw new ConfigError(traceProblem);
  if (c.workers.count === 0 && c.workers.remote.length === 0 && c.workers.discovery === '') throw new ConfigError('--workers 0 needs at least one --worker URL or --worker-discovery: nothing could run inference');
}
