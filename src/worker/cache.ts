/**
 * The hot-model cache of one worker: loads models on demand, coalesces concurrent loads of one model,
 * keeps the estimated footprint of what is loaded under a memory budget by evicting the least recently
 * used idle model, and never releases a session that a run or a waiting caller still needs.
 */
import { ModelExceedsMemoryBudget, ModelLoadFailed, ShuttingDown, UploadMissing, toSluiceError } from '../core/errors.ts';
import type { ModelConfig } from '../core/model.ts';
import type { Logger } from '../telemetry/logger.ts';
import type { WorkerModelInfo } from './protocol.ts';
import type { ModelResolver } from './resolve.ts';
import type { SessionHandle } from './session.ts';
import { runWarmup } from './warmup.ts';

/**
 * Footprint estimate: ONNX Runtime keeps its own copy of every initializer (about the file size) and the
 * CPU provider pre-packs MatMul/Conv weights into a second layout (up to the file size again); the rest
 * (graph, arena chunks, thread pools) is about constant per session. Measured RSS growth on the sample
 * models stays below this estimate.
 */
export const FOOTPRINT_FILE_FACTOR = 2;
export const FOOTPRINT_SESSION_OVERHEAD_BYTES = 4 * 1024 * 1024;

export function estimateFootprint(fileBytes: number): number {
  return FOOTPRINT_FILE_FACTOR * fileBytes + FOOTPRINT_SESSION_OVERHEAD_BYTES;
}

/** Opens sessions (OrtThread in the worker host, SessionFactory where ONNX Runtime runs on the calling thread). */
export interface SessionOpener {
  open(model: string, file: string): Promise<SessionHandle>;
}

/** A model held for one run: call release() exactly once when the run is over. */
export interface Lease {
  readonly session: SessionHandle;
  readonly config: ModelConfig | undefined;
  readonly cacheHit: boolean;
  /** Models evicted to make room for this lease's load (only the caller that started the load sees them). */
  readonly evicted: readonly string[];
  release(): void;
}

/** Counters and contents for /health. */
export interface CacheSnapshot {
  readonly models: WorkerModelInfo[];
  readonly memoryUsedBytes: number;
  readonly loads: number;
  readonly evictions: number;
  readonly cacheHits: number;
  readonly cacheMisses: number;
  readonly warmupRuns: number;
}

export interface ModelCacheOptions {
  readonly budgetBytes: number;
  readonly resolver: ModelResolver;
  readonly opener: SessionOpener;
  readonly logger: Logger;
  /** Called when an uploaded version (one with a source) leaves the cache or fails to load: its staged files may go. */
  readonly onSourceDropped?: (source: string) => void;
}

interface Entry {
  readonly key: string;
  readonly model: string;
  readonly version: string;
  /** An uploaded version's source (src/repository/uploads.ts); undefined for the repository's files. */
  readonly source: string | undefined;
  state: 'loading' | 'ready';
  ready: Promise<void>;
  session: SessionHandle | undefined;
  config: ModelConfig | undefined;
  bytes: number;
  /** Whether `bytes` counts against the budget yet (set once room was made). */
  reserved: boolean;
  pinned: boolean;
  loadedAt: number;
  /** LRU clock value of the last use. */
  tick: number;
  /** Runs holding a lease. */
  inflight: number;
  /** Callers waiting for this entry's load: it must not be evicted under them. */
  pending: number;
  /** Unloaded while busy: the session is released when the last lease ends. */
  dropped: boolean;
  /** Models evicted to make room for this entry. */
  evicted: string[];
}

export class ModelCache {
  #options: ModelCacheOptions;
  #entries = new Map<string, Entry>();
  /** Dropped entries whose sessions await their last lease; their memory still counts. */
  #draining = new Set<Entry>();
  #waiters: (() => void)[] = [];
  #clock = 0;
  #closed = false;
  #loads = 0;
  #evictions = 0;
  #hits = 0;
  #misses = 0;
  #warmupRuns = 0;

  constructor(options: ModelCacheOptions) {
    if (!Number.isSafeInteger(options.budgetBytes) || options.budgetBytes <= 0) throw new RangeError(`memory budget must be a positive number of bytes, got ${options.budgetBytes}`);
    this.#options = options;
  }

  /** Takes a lease on a model, loading it first if needed (joining a load already in progress). */
  async acquire(model: string, version: string, source?: string): Promise<Lease> {
    if (this.#closed) throw ShuttingDown();
    const key = source === undefined ? `${model}/${version}` : `${model}/${version}@${source}`;
    let entry = this.#entries.get(key);
    if (entry?.state === 'ready') {
      this.#hits++;
      return this.#lease(entry, true, []);
    }
    this.#misses++;
    const started = entry === undefined;
    entry ??= this.#startLoad(key, model, version, source);
    entry.pending++;
    try {
      await entry.ready;
    } finally {
      entry.pending--;
    }
    // The evictions are reported once, by the caller whose load made them.
    return this.#lease(entry, false, started ? entry.evicted : []);
  }

  /** Makes a model hot without running it (POST /load). */
  async load(model: string, version: string, source?: string): Promise<{ cacheHit: boolean; loadMs: number; evicted: readonly string[] }> {
    const start = performance.now();
    const lease = await this.acquire(model, version, source);
    lease.release();
    return { cacheHit: lease.cacheHit, loadMs: lease.cacheHit ? 0 : performance.now() - start, evicted: lease.evicted };
  }

  /** Drops a model (POST /unload); a busy one is released after its last run. false when not loaded. */
  async unload(model: string, version: string, source?: string): Promise<boolean> {
    const entry = this.#entries.get(source === undefined ? `${model}/${version}` : `${model}/${version}@${source}`);
    if (!entry) return false;
    if (entry.state === 'loading') {
      try {
        await entry.ready;
      } catch {
        return false;
      }
    }
    if (this.#entries.get(entry.key) !== entry) return false;
    this.#drop(entry, 'unload');
    return true;
  }

  snapshot(): CacheSnapshot {
    const models: WorkerModelInfo[] = [];
    for (const e of this.#entries.values()) {
      if (e.state === 'ready') models.push({ model: e.model, version: e.version, bytes: e.bytes, pinned: e.pinned, loadedAt: e.loadedAt });
    }
    return {
      models,
      memoryUsedBytes: this.#usedBytes(),
      loads: this.#loads,
      evictions: this.#evictions,
      cacheHits: this.#hits,
      cacheMisses: this.#misses,
      warmupRuns: this.#warmupRuns,
    };
  }

  /** Refuses new work, waits for loads in progress, then releases every idle session. */
  async close(): Promise<void> {
    this.#closed = true;
    await Promise.allSettled([...this.#entries.values()].map((e) => e.ready));
    for (const e of [...this.#entries.values()]) this.#drop(e, 'close');
    this.#wake();
  }

  // --- internals ---

  #startLoad(key: string, model: string, version: string, source: string | undefined): Entry {
    const entry: Entry = {
      key, model, version, source, state: 'loading', ready: Promise.resolve(), session: undefined, config: undefined,
      bytes: 0, reserved: false, pinned: false, loadedAt: 0, tick: ++this.#clock, inflight: 0, pending: 0, dropped: false, evicted: [],
    };
    this.#entries.set(key, entry);
    entry.ready = this.#load(entry);
    // Callers observe failures through acquire(); this only keeps a failure nobody awaits from being unhandled.
    entry.ready.catch(() => undefined);
    return entry;
  }

  async #load(entry: Entry): Promise<void> {
    const { logger } = this.#options;
    const start = performance.now();
    try {
      const resolved = await this.#options.resolver.resolve(entry.model, entry.version, entry.source);
      entry.config = resolved.config;
      entry.pinned = resolved.config?.pinned ?? false;
      entry.bytes = estimateFootprint(resolved.byteSize);
      await this.#makeRoom(entry);
      if (this.#closed) throw ShuttingDown();
      const session = await this.#options.opener.open(entry.model, resolved.file);
      try {
        this.#warmupRuns += await runWarmup(session, resolved.config);
      } catch (e) {
        await session.release().catch(() => undefined);
        throw e;
      }
      entry.session = session;
      entry.state = 'ready';
      entry.loadedAt = Date.now();
      this.#loads++;
      logger.info({ model: entry.model, version: entry.version, bytes: entry.bytes, provider: session.provider, ms: Math.round(performance.now() - start) }, 'model loaded');
    } catch (e) {
      if (this.#entries.get(entry.key) === entry) this.#entries.delete(entry.key);
      entry.reserved = false;
      this.#wake();
      const err = toSluiceError(e);
      if (entry.source !== undefined && err.code !== UploadMissing.code) this.#options.onSourceDropped?.(entry.source);
      // An unknown name is the caller's mistake, not the worker's: keep it out of the error log.
      const level = err.kind === 'NOT_FOUND' ? 'debug' : 'error';
      logger[level]({ model: entry.model, version: entry.version, code: err.code, err: err.message }, 'model failed to load');
      throw err.code === 'SLUICE_INTERNAL' ? ModelLoadFailed(entry.model, err.message) : err;
    }
  }

  /**
   * Reserves the entry's bytes, evicting idle unpinned models in LRU order. When the only models in the
   * way are busy (running, or wanted by a caller), waits for them to become idle; when pinned models and
   * loads in progress leave no room, fails. A pinned model loads whatever the budget says.
   */
  async #makeRoom(entry: Entry): Promise<void> {
    const budget = this.#options.budgetBytes;
    for (;;) {
      if (this.#closed) throw ShuttingDown();
      if (entry.pinned || this.#usedBytes() + entry.bytes <= budget) {
        entry.reserved = true;
        return;
      }
      const candidates = [...this.#entries.values()]
        .filter((e) => e !== entry && e.state === 'ready' && !e.pinned && !e.dropped)
        .sort((a, b) => a.tick - b.tick);
      for (const victim of candidates) {
        if (victim.inflight > 0 || victim.pending > 0) continue;
        this.#drop(victim, 'evict');
        entry.evicted.push(victim.model);
        if (this.#usedBytes() + entry.bytes <= budget) {
          entry.reserved = true;
          return;
        }
      }
      const busy = candidates.some((e) => e.inflight > 0 || e.pending > 0) || this.#draining.size > 0;
      const loading = [...this.#entries.values()].some((e) => e !== entry && e.state === 'loading' && e.reserved && !e.pinned);
      if (!busy && !loading) throw ModelExceedsMemoryBudget(entry.model, entry.bytes, budget, this.#usedBytes());
      await new Promise<void>((resolve) => this.#waiters.push(resolve));
    }
  }

  #lease(entry: Entry, cacheHit: boolean, evicted: readonly string[]): Lease {
    entry.inflight++;
    entry.tick = ++this.#clock;
    let released = false;
    return {
      session: entry.session!,
      config: entry.config,
      cacheHit,
      evicted,
      release: () => {
        if (released) return;
        released = true;
        entry.inflight--;
        entry.tick = ++this.#clock;
        if (entry.dropped && entry.inflight === 0 && entry.pending === 0) this.#releaseSession(entry);
        this.#wake();
      },
    };
  }

  #drop(entry: Entry, why: 'evict' | 'unload' | 'close'): void {
    if (this.#entries.get(entry.key) === entry) this.#entries.delete(entry.key);
    entry.dropped = true;
    if (entry.source !== undefined) this.#options.onSourceDropped?.(entry.source);
    if (why === 'evict') {
      this.#evictions++;
      this.#options.logger.info({ model: entry.model, version: entry.version, bytes: entry.bytes }, 'model evicted (least recently used)');
    }
    // A caller still waiting on this entry's load will lease it next: keep the session for that run.
    if (entry.inflight === 0 && entry.pending === 0) this.#releaseSession(entry);
    else this.#draining.add(entry);
  }

  #releaseSession(entry: Entry): void {
    this.#draining.delete(entry);
    entry.reserved = false;
    const session = entry.session;
    entry.session = undefined;
    session?.release().catch((e: unknown) => this.#options.logger.warn({ model: entry.model, err: (e as Error).message }, 'session release failed'));
  }

  #usedBytes(): number {
    let n = 0;
    for (const e of this.#entries.values()) if (e.reserved) n += e.bytes;
    for (const e of this.#draining) if (e.reserved) n += e.bytes;
    return n;
  }

  #wake(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w();
  }
}
