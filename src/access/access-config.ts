import { parse as parseYaml } from 'yaml';

/** What a key may do. `infer` lists the model globs it may infer on ([] = none). */
export interface Scopes {
  readonly infer: readonly RegExp[];
  readonly control: boolean;
  readonly metadata: boolean;
  readonly metrics: boolean;
}

export interface KeyEntry {
  /** A name for logs and metrics; the key itself is never logged. */
  readonly id: string;
  /** SHA-256 of the key, 32 bytes. */
  readonly digest: Buffer;
  readonly scopes: Scopes;
  /** The scopes as written, for messages. */
  readonly scopeText: readonly string[];
}

/** A token bucket's refill rate (per second) and depth. */
export interface BucketLimit {
  readonly perSecond: number;
  readonly burst: number;
}

export interface TenantEntry {
  readonly name: string;
  /** Fair-queuing share relative to the other tenants. */
  readonly weight: number;
  readonly requests: BucketLimit | undefined;
  readonly rows: BucketLimit | undefined;
  /** Requests of the tenant accepted and not yet answered, at most (undefined: no bound). */
  readonly maxInFlight: number | undefined;
  readonly keys: readonly KeyEntry[];
}

/** The auth config, parsed and checked: every tenant and key. */
export interface AccessTable {
  readonly tenants: ReadonlyMap<string, TenantEntry>;
}

export const SCOPE_NAMES = ['infer', 'control', 'metadata', 'metrics'] as const;

/** Tenant names become metric label values and log fields: short and plain. */
const TENANT_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
/** Model globs: the characters of model names, plus * and ?. */
const MODEL_GLOB = /^[A-Za-z0-9_.*?-]{1,256}$/;
const HEX_DIGEST = /^[0-9a-f]{64}$/;

/** An auth config that cannot be used, with where and why. */
export class AccessConfigError extends Error {
  override name = 'AccessConfigError';
}

function fail(where: string, reason: string): never {
  throw new AccessConfigError(`auth config ${where}: ${reason}`);
}

/** A model glob as an anchored RegExp: '*' any run of characters, '?' one. */
export function globToRegExp(glob: string): RegExp {
  const body = [...glob].map((ch) => (ch === '*' ? '.*' : ch === '?' ? '.' : ch.replace(/[.\\^$+()[\]{}|-]/g, '\\$&'))).join('');
  return new RegExp(`^${body}$`);
}

function record(value: unknown, where: string, allowed: readonly string[]): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) fail(where, 'must be a mapping');
  const r = value as Record<string, unknown>;
  for (const k of Object.keys(r)) if (!allowed.includes(k)) fail(where, `unknown field '${k}' (fields: ${allowed.join(', ')})`);
  return r;
}

function positive(value: unknown, where: string, max: number): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0 || value > max) fail(where, `must be a number in (0, ${max}], got ${JSON.stringify(value)}`);
  return value;
}

function bucket(limits: Record<string, unknown>, what: 'requests' | 'rows', where: string): BucketLimit | undefined {
  const rate = limits[`${what}_per_second`];
  const burst = limits[`${what}_burst`];
  if (rate === undefined) {
    if (burst !== undefined) fail(`${where}.${what}_burst`, `needs ${what}_per_second`);
    return undefined;
  }
  const perSecond = positive(rate, `${where}.${what}_per_second`, 1e9);
  // One second's worth by default: a client sending at its rate in bursts of up to a second passes.
  return { perSecond, burst: burst === undefined ? Math.max(1, perSecond) : positive(burst, `${where}.${what}_burst`, 1e9) };
}

function scopesOf(value: unknown, where: string): { scopes: Scopes; text: string[] } {
  if (!Array.isArray(value) || value.length === 0) fail(where, `must be a non-empty list of scopes (${SCOPE_NAMES.join(', ')}; infer:GLOB for some models)`);
  const infer: RegExp[] = [];
  const flags = { control: false, metadata: false, metrics: false };
  const text: string[] = [];
  value.forEach((s, i) => {
    if (typeof s !== 'string') fail(`${where}[${i}]`, 'must be a string');
    text.push(s);
    const [name, glob, extra] = s.split(':');
    if (extra !== undefined) fail(`${where}[${i}]`, `'${s}' has more than one ':'`);
    if (name === 'infer') {
      if (glob !== undefined && !MODEL_GLOB.test(glob)) fail(`${where}[${i}]`, `'${glob}' is not a model glob (letters, digits, _ . - and the wildcards * ?)`);
      infer.push(globToRegExp(glob ?? '*'));
    } else if (name === 'control' || name === 'metadata' || name === 'metrics') {
      if (glob !== undefined) fail(`${where}[${i}]`, `only infer takes a model glob, not '${name}'`);
      flags[name] = true;
    } else {
      fail(`${where}[${i}]`, `unknown scope '${s}' (scopes: ${SCOPE_NAMES.join(', ')}; infer:GLOB for some models)`);
    }
  });
  return { scopes: { infer, ...flags }, text };
}

/**
 * Parses and checks an auth config (YAML, of which JSON is a subset). Keys appear only as SHA-256
 * digests; a digest may belong to one key only. Every mistake names where it is.
 */
export function parseAccessConfig(text: string): AccessTable {
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (e) {
    fail('', `is neither JSON nor YAML: ${(e as Error).message.split('\n')[0]}`);
  }
  const top = record(doc, '(top level)', ['tenants']);
  if (!Array.isArray(top['tenants'])) fail('tenants', 'must be a list of tenants');
  const tenants = new Map<string, TenantEntry>();
  const digests = new Set<string>();
  const ids = new Set<string>();
  (top['tenants'] as unknown[]).forEach((t, ti) => {
    const where = `tenants[${ti}]`;
    const r = record(t, where, ['name', 'weight', 'limits', 'keys']);
    const name = r['name'];
    if (typeof name !== 'string' || !TENANT_NAME.test(name)) fail(`${where}.name`, 'must be 1-64 letters, digits, _ . - (it becomes a metric label)');
    if (tenants.has(name)) fail(`${where}.name`, `tenant '${name}' appears twice`);
    const weight = r['weight'] === undefined ? 1 : positive(r['weight'], `${where}.weight`, 1000);
    const limits = r['limits'] === undefined ? {} : record(r['limits'], `${where}.limits`, ['requests_per_second', 'requests_burst', 'rows_per_second', 'rows_burst', 'max_in_flight']);
    const inFlight = limits['max_in_flight'];
    if (inFlight !== undefined && (typeof inFlight !== 'number' || !Number.isSafeInteger(inFlight) || inFlight < 1 || inFlight > 1_000_000)) fail(`${where}.limits.max_in_flight`, 'must be an integer from 1 to 1000000');
    if (!Array.isArray(r['keys']) || r['keys'].length === 0) fail(`${where}.keys`, 'must be a non-empty list of keys');
    const keys = (r['keys'] as unknown[]).map((k, ki): KeyEntry => {
      const kw = `${where}.keys[${ki}]`;
      const kr = record(k, kw, ['id', 'sha256', 'scopes']);
      const digest = kr['sha256'];
      if (typeof digest !== 'string' || !HEX_DIGEST.test(digest.toLowerCase())) fail(`${kw}.sha256`, 'must be the key\'s SHA-256 as 64 hex digits (sluice keygen prints a key and its digest)');
      const hex = digest.toLowerCase();
      if (digests.has(hex)) fail(`${kw}.sha256`, 'the same key digest appears twice');
      digests.add(hex);
      const given = kr['id'];
      if (given !== undefined && (typeof given !== 'string' || !TENANT_NAME.test(given))) fail(`${kw}.id`, 'must be 1-64 letters, digits, _ . -');
      const id = given ?? `${name}#${ki}`;
      if (ids.has(id)) fail(`${kw}.id`, `key id '${id}' appears twice`);
      ids.add(id);
      const { scopes, text: scopeText } = scopesOf(kr['scopes'], `${kw}.scopes`);
      return { id, digest: Buffer.from(hex, 'hex'), scopes, scopeText };
    });
    tenants.set(name, { name, weight, requests: bucket(limits, 'requests', `${where}.limits`), rows: bucket(limits, 'rows', `${where}.limits`), maxInFlight: inFlight, keys });
  });
  return { tenants };
}
