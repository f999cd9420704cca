import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync, unwatchFile, watchFile, type Stats } from 'node:fs';
import { MalformedCredentials, MissingKey, RateLimited, ScopeMissing, TenantInFlightLimit, UnknownKey, type SluiceError } from '../core/errors.ts';
import type { Tenancy } from '../core/tenancy.ts';
import type { Logger } from '../telemetry/logger.ts';
import { AccessConfigError, parseAccessConfig, type AccessTable, type KeyEntry, type Scopes } from './access-config.ts';
import { retryAfterSeconds, sameLimit, TokenBucket } from './rate-limit.ts';

/** Who sent a request: the tenant and key its credentials named, and what that key may do. */
export interface Principal {
  readonly tenant: string;
  readonly keyId: string;
  readonly scopes: Scopes;
}

export type Scope = 'infer' | 'control' | 'metadata' | 'metrics';

/** How a client sends its key, per front door (for the message of a request that sent none). */
export type CredentialCarrier = 'header' | 'metadata';

const HOW: Readonly<Record<CredentialCarrier, string>> = {
  header: "send the header 'Authorization: Bearer <key>'",
  metadata: "send the call metadata 'authorization: Bearer <key>'",
};

/** RFC 6750's b64token: what a bearer credential may consist of. */
const BEARER = /^Bearer +([A-Za-z0-9\-._~+/]+=*) *$/i;

interface Buckets {
  readonly requests: TokenBucket | undefined;
  readonly rows: TokenBucket | undefined;
}

/** What the guard is built from. */
export interface AccessGuardOptions {
  readonly file: string;
  readonly logger: Logger;
  /** How often the file's stat is polled for changes (editors and Kubernetes replace files; a poll sees both). */
  readonly pollMs?: number;
}

/**
 * Authentication, scopes and per-tenant rate limits from the auth config (docs/security.md). Keys are
 * known only by their SHA-256 digests; a presented key is hashed and compared with every digest in
 * constant time, so neither a match nor its position shows in the timing. The config is re-read on
 * SIGHUP and when the file changes; a new config that does not parse is refused and the last good one
 * stays in force (never an open server by accident). Connections are not touched by a reload: the next
 * request is checked against the new table.
 */
export class AccessGuard implements Tenancy {
  readonly #o: AccessGuardOptions;
  #table: AccessTable;
  #keys: { readonly tenant: string; readonly key: KeyEntry }[] = [];
  #buckets = new Map<string, Buckets>();
  /** Requests accepted and not yet answered, per tenant; counts outlive reloads (they are requests, not limits). */
  readonly #inFlight = new Map<string, number>();
  #watching = false;
  readonly #onSignal = (): void => {
    this.reload('SIGHUP');
  };
  readonly #onChange = (curr: Stats, prev: Stats): void => {
    if (curr.mtimeMs !== prev.mtimeMs || curr.size !== prev.size || curr.ino !== prev.ino) this.reload('file change');
  };

  /** Reads and checks the file; a bad file fails here, at start, with the reason. */
  constructor(options: AccessGuardOptions) {
    this.#o = options;
    this.#table = parseAccessConfig(readConfigFile(options.file));
    this.#install(this.#table);
  }

  /** The tenants the config names (the only values the tenant metric label takes). */
  tenants(): string[] {
    return [...this.#table.tenants.keys()];
  }

  /** Who the credentials (an Authorization value) belong to; throws UNAUTHENTICATED when nobody. */
  authenticate(authorization: string | undefined, carrier: CredentialCarrier): Principal {
    if (authorization === undefined || authorization === '') throw MissingKey(HOW[carrier]);
    const m = BEARER.exec(authorization);
    if (!m) throw MalformedCredentials(`use 'Bearer <key>' (${HOW[carrier]})`);
    const digest = createHash('sha256').update(m[1]!).digest();
    let found: { readonly tenant: string; readonly key: KeyEntry } | undefined;
    // Every digest is compared, whatever matched before: the time taken says nothing of which did.
    for (const entry of this.#keys) if (timingSafeEqual(entry.key.digest, digest) && found === undefined) found = entry;
    if (!found) throw UnknownKey();
    return { tenant: found.tenant, keyId: found.key.id, scopes: found.key.scopes };
  }

  /** Throws PERMISSION_DENIED unless the principal has the scope (for infer: on this model). */
  authorize(p: Principal, scope: Scope, model?: string): void {
    if (scope === 'infer') {
      const name = model ?? '';
      if (!p.scopes.infer.some((g) => g.test(name))) throw ScopeMissing(p.tenant, name === '' ? 'infer' : `infer:${name}`, name === '' ? 'infer' : `infer on model '${name}'`);
      return;
    }
    if (!p.scopes[scope]) throw ScopeMissing(p.tenant, scope, WHAT[scope]);
  }

  weightOf(tenant: string): number {
    return this.#table.tenants.get(tenant)?.weight ?? 1;
  }

  arrive(tenant: string, nowMs: number): SluiceError | undefined {
    // A tenant at its bound of requests in flight is refused before its body is read (enter() counts
    // the request once it is decoded), and before a token of its bucket is spent on it.
    const busy = this.#overInFlight(tenant);
    if (busy) return busy;
    const b = this.#buckets.get(tenant);
    if (!b) return undefined;
    if (b.requests) {
      const wait = b.requests.take(1, nowMs);
      if (wait > 0) return limited(tenant, `${b.requests.limit.perSecond} requests/s (burst ${b.requests.limit.burst})`, wait);
    }
    // A tenant whose rows are spent is refused before its body is read, not after.
    if (b.rows && b.rows.level(nowMs) < 1) return limited(tenant, `${b.rows.limit.perSecond} rows/s (burst ${b.rows.limit.burst})`, b.rows.waitMs(1, nowMs));
    return undefined;
  }

  enter(tenant: string): SluiceError | undefined {
    const over = this.#overInFlight(tenant);
    if (over) return over;
    this.#inFlight.set(tenant, (this.#inFlight.get(tenant) ?? 0) + 1);
    return undefined;
  }

  leave(tenant: string): void {
    const n = (this.#inFlight.get(tenant) ?? 0) - 1;
    if (n > 0) this.#inFlight.set(tenant, n);
    else this.#inFlight.delete(tenant);
  }

  #overInFlight(tenant: string): SluiceError | undefined {
    const max = this.#table.tenants.get(tenant)?.maxInFlight;
    if (max === undefined || (this.#inFlight.get(tenant) ?? 0) < max) return undefined;
    const e = TenantInFlightLimit(tenant, max);
    e.retryAfterSeconds = 1;
    return e;
  }

  takeRows(tenant: string, rows: number, nowMs: number): SluiceError | undefined {
    const bucket = this.#buckets.get(tenant)?.rows;
    if (!bucket) return undefined;
    const wait = bucket.take(rows, nowMs);
    return wait > 0 ? limited(tenant, `${bucket.limit.perSecond} rows/s (burst ${bucket.limit.burst})`, wait) : undefined;
  }

  /** Re-reads the file; keeps the table in force when the new one does not parse. Returns whether it changed. */
  reload(why: string): boolean {
    let table: AccessTable;
    try {
      table = parseAccessConfig(readConfigFile(this.#o.file));
    } catch (e) {
      this.#o.logger.error({ file: this.#o.file, why, err: (e as Error).message }, 'the auth config was not reloaded: the keys in force stay in force');
      return false;
    }
    this.#table = table;
    this.#install(table);
    this.#o.logger.info({ file: this.#o.file, why, tenants: table.tenants.size, keys: this.#keys.length }, 'auth config reloaded');
    return true;
  }

  /** Reloads on SIGHUP and when the file changes, until close(). */
  watch(): void {
    if (this.#watching) return;
    this.#watching = true;
    process.on('SIGHUP', this.#onSignal);
    watchFile(this.#o.file, { interval: this.#o.pollMs ?? 1000, persistent: false }, this.#onChange);
  }

  close(): void {
    if (!this.#watching) return;
    this.#watching = false;
    process.off('SIGHUP', this.#onSignal);
    unwatchFile(this.#o.file, this.#onChange);
  }

  #install(table: AccessTable): void {
    const keys: { tenant: string; key: KeyEntry }[] = [];
    const buckets = new Map<string, Buckets>();
    const now = performance.now();
    for (const t of table.tenants.values()) {
      for (const key of t.keys) keys.push({ tenant: t.name, key });
      // A bucket whose limit did not change keeps its level: a reload is no way around a limit.
      const old = this.#buckets.get(t.name);
      const requests = t.requests && (old?.requests && sameLimit(old.requests.limit, t.requests) ? old.requests : new TokenBucket(t.requests, now));
      const rows = t.rows && (old?.rows && sameLimit(old.rows.limit, t.rows) ? old.rows : new TokenBucket(t.rows, now));
      if (requests || rows) buckets.set(t.name, { requests, rows });
    }
    this.#keys = keys;
    this.#buckets = buckets;
  }
}

const WHAT: Readonly<Record<Exclude<Scope, 'infer'>, string>> = {
  control: 'load or unload models or change trace settings',
  metadata: 'read server and model metadata, configs, statistics and settings',
  metrics: 'read the metrics',
};

function readConfigFile(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (e) {
    throw new AccessConfigError(`auth config ${file}: cannot be read (${(e as Error).message})`);
  }
}

function limited(tenant: string, what: string, waitMs: number): SluiceError {
  const seconds = retryAfterSeconds(waitMs);
  const e = RateLimited(tenant, what, seconds);
  e.retryAfterSeconds = seconds;
  return e;
}
