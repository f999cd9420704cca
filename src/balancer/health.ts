import type { Logger } from '../telemetry/logger.ts';
import type { PooledWorker } from './pooled-worker.ts';

/** How often every worker's /health is probed. */
export const PROBE_INTERVAL_MS = 1_000;

/**
 * Probes every worker's /health on an unref'd interval: a worker that stops answering is ejected
 * (after PROBE_FAILURES_TO_EJECT misses), and an ejected one rejoins on its first answer. The answers
 * also refresh what each worker holds hot and its memory use.
 */
export class HealthProber {
  readonly #workers: readonly PooledWorker[];
  readonly #log: Logger;
  /** Called when the worker's health changed (rejoined or ejected): slots may have appeared or vanished. */
  readonly #changed: () => void;
  readonly #inFlight = new Set<PooledWorker>();
  #timer: NodeJS.Timeout | undefined;

  constructor(workers: readonly PooledWorker[], log: Logger, changed: () => void) {
    this.#workers = workers;
    this.#log = log;
    this.#changed = changed;
  }

  start(): void {
    this.#timer ??= setInterval(() => {
      for (const w of this.#workers) void this.probe(w);
    }, PROBE_INTERVAL_MS);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** Probes one worker now (skipped while a probe of it is still out). */
  async probe(w: PooledWorker): Promise<void> {
    // A local worker between exit and respawn has nothing to answer; its ready message revives it.
    if (this.#inFlight.has(w) || !this.#probeable(w)) return;
    this.#inFlight.add(w);
    try {
      const health = await w.client.health();
      // The process may have died, or the pool closed, while the answer travelled.
      if (!this.#probeable(w)) return;
      w.applyHealth(health);
      if (w.markUp()) {
        this.#log.info({ worker: w.id }, `worker ${w.id} answers its health probe again; back in rotation`);
        this.#changed();
      }
    } catch (e) {
      const reason = e instanceof Error ? e.message : String(e);
      if (w.probeFailed(reason)) {
        this.#log.warn({ worker: w.id, reason }, `ejecting worker ${w.id}: health probe failed`);
        this.#changed();
      }
    } finally {
      this.#inFlight.delete(w);
    }
  }

  #probeable(w: PooledWorker): boolean {
    return this.#timer !== undefined && (w.local === undefined || w.local.pid !== undefined);
  }
}
