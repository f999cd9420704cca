/**
 * Worker discovery by DNS: `dns://[SERVER[:PORT]]/NAME:PORT` names a set of worker hosts by every A and
 * AAAA record of NAME (a Kubernetes headless Service has one per ready pod), all listening on PORT. The
 * authority, when given, is the DNS server to ask (as in gRPC's dns: scheme); without it the system's
 * resolvers are asked. The name is resolved again every interval; the pool adds the addresses that
 * appeared and drains the ones that vanished.
 */
import { Resolver } from 'node:dns/promises';
import { isIP } from 'node:net';
import type { Config } from '../config/schema.ts';
import { parseDiscovery, type DiscoveryTarget } from '../config/worker-discovery.ts';
import { linkUsesTls } from '../config/worker-link.ts';
import type { Logger } from '../telemetry/logger.ts';
import type { PooledWorker } from './pooled-worker.ts';

/** The worker URL of one resolved address. */
export function workerUrl(address: string, port: number, tls: boolean): string {
  const host = isIP(address) === 6 ? `[${address}]` : address;
  return `${tls ? 'https' : 'http'}://${host}:${port}`;
}

/** Answers that mean "the name has no addresses now" (as opposed to "the DNS could not be asked"). */
const EMPTY_ANSWERS = new Set(['ENOTFOUND', 'ENODATA']);

export interface DnsDiscoveryOptions {
  readonly target: DiscoveryTarget;
  readonly intervalMs: number;
  /** Resolver timeout per query. */
  readonly timeoutMs?: number;
  readonly tls: boolean;
  readonly logger: Logger;
  /** The worker URLs the name resolves to now (called after every successful resolution, sorted). */
  readonly onResolved: (urls: readonly string[]) => void;
}

export class DnsDiscovery {
  readonly #o: DnsDiscoveryOptions;
  readonly #resolver: Resolver;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #lastError = '';

  constructor(opts: DnsDiscoveryOptions) {
    this.#o = opts;
    this.#resolver = new Resolver({ timeout: opts.timeoutMs ?? 2000, tries: 2 });
    if (opts.target.server !== undefined) this.#resolver.setServers([opts.target.server]);
  }

  /** Resolves once now (awaited), then every interval until stop(). */
  async start(): Promise<void> {
    await this.refresh();
    this.#timer ??= setInterval(() => void this.refresh(), this.#o.intervalMs);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
    this.#resolver.cancel();
  }

  /**
   * One resolution. A name without records (NXDOMAIN, or no A/AAAA) is an empty set: every worker
   * drains. A DNS that cannot be asked (timeout, refused, SERVFAIL) changes nothing: the workers known
   * stay, and the failure is logged once until a resolution succeeds again.
   */
  refresh(): Promise<void> {
    return (this.#running ??= this.#refresh().finally(() => {
      this.#running = undefined;
    }));
  }

  async #refresh(): Promise<void> {
    const { name, port } = this.#o.target;
    const [v4, v6] = await Promise.all([this.#query(() => this.#resolver.resolve4(name)), this.#query(() => this.#resolver.resolve6(name))]);
    if (v4 === undefined || v6 === undefined) return;
    if (this.#lastError !== '') this.#o.logger.info({ name }, `worker discovery: ${name} resolves again`);
    this.#lastError = '';
    const urls = [...new Set([...v4, ...v6])].sort().map((a) => workerUrl(a, port, this.#o.tls));
    this.#o.onResolved(urls);
  }

  /** The addresses, [] for "no records", undefined when the DNS could not be asked. */
  async #query(ask: () => Promise<string[]>): Promise<string[] | undefined> {
    try {
      return await ask();
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code ?? '';
      if (EMPTY_ANSWERS.has(code)) return [];
      if (code === 'ECANCELLED') return undefined;
      const reason = `${code} ${(e as Error).message}`.trim();
      if (reason !== this.#lastError) this.#o.logger.warn({ name: this.#o.target.name, err: reason }, `worker discovery: cannot resolve ${this.#o.target.name} (${reason}); keeping the workers known`);
      this.#lastError = reason;
      return undefined;
    }
  }
}

export interface DiscoveredWorkersOptions {
  readonly config: Config;
  /** The pool's own list of workers: discovered ones are added to it and removed from it in place. */
  readonly workers: PooledWorker[];
  readonly make: (url: string) => PooledWorker;
  /** The pool's health probe of one worker (a new one joins on its first answer). */
  readonly probe: (w: PooledWorker) => Promise<void>;
  /** Slots may have appeared or vanished. */
  readonly changed: () => void;
  readonly closing: () => boolean;
  readonly logger: Logger;
}

/**
 * The pool's membership as discovery sees it: addresses that appear join (once their first health probe
 * answers), vanished ones drain (no new batches; the ones running finish, or fail over as BatchNotRun,
 * then the worker is removed and its link closed), and one that comes back before its removal is simply
 * wanted again.
 */
export class DiscoveredWorkers {
  readonly #o: DiscoveredWorkersOptions;
  readonly #byUrl = new Map<string, PooledWorker>();
  readonly #dns: DnsDiscovery;
  /** The first health probes of the workers the latest resolution added. */
  #joining: Promise<void>[] = [];

  constructor(opts: DiscoveredWorkersOptions) {
    this.#o = opts;
    const { discovery, discoveryIntervalMs } = opts.config.workers;
    this.#dns = new DnsDiscovery({
      target: parseDiscovery(discovery), intervalMs: discoveryIntervalMs, tls: linkUsesTls(opts.config), logger: opts.logger,
      onResolved: (urls) => this.#apply(urls),
    });
  }

  /** The first resolution and the first probes of what it found, then one resolution per interval. */
  async start(): Promise<void> {
    await this.#dns.start();
    await Promise.all(this.#joining);
  }

  stop(): void {
    this.#dns.stop();
  }

  /** Removes a draining worker once nothing is reserved on it (the pool calls this after each release). */
  reap(w: PooledWorker): void {
    if (!w.retiring || w.busy || this.#byUrl.get(w.id) !== w) return;
    const i = this.#o.workers.indexOf(w);
    if (i >= 0) this.#o.workers.splice(i, 1);
    this.#byUrl.delete(w.id);
    const log = this.#o.logger;
    w.client.close().catch((e: unknown) => log.warn({ worker: w.id, err: e }, `closing the link to ${w.id} failed`));
    log.info({ worker: w.id }, `worker discovery: ${w.id} drained and removed`);
  }

  #apply(urls: readonly string[]): void {
    if (this.#o.closing()) return;
    const log = this.#o.logger;
    const wanted = new Set(urls);
    this.#joining = [];
    for (const url of urls) {
      const known = this.#byUrl.get(url);
      if (known) {
        if (known.retiring) {
          known.setRetiring(false);
          log.info({ worker: url }, `worker discovery: ${url} is back`);
          this.#o.changed();
        }
        continue;
      }
      const w = this.#o.make(url);
      this.#byUrl.set(url, w);
      this.#o.workers.push(w);
      log.info({ worker: url }, `worker discovery: ${url} found; joining once it answers its health probe`);
      this.#joining.push(this.#o.probe(w).then(() => this.#o.changed()));
    }
    for (const [url, w] of this.#byUrl) {
      if (wanted.has(url) || w.retiring) continue;
      w.setRetiring(true);
      log.info({ worker: url, inflightBatches: w.inflightBatches }, `worker discovery: ${url} is gone; draining it`);
      this.reap(w);
      this.#o.changed();
    }
  }
}
