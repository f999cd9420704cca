import type { Logger } from '../telemetry/logger.ts';
import type { ModelTable } from './models.ts';

/**
 * Models whose load found no worker able to take it (every worker down, or none joined yet: a
 * gateway that starts before its remote workers, or workers scaled to zero). They load again once
 * the executor signals that its workers changed, at most once per RETRY_MS, so that a gateway started
 * first serves as soon as a worker appears instead of staying unavailable until it restarts.
 */
export class StarvedLoads {
  readonly #names = new Set<string>();
  readonly #reload: (model: string) => Promise<void>;
  #lastMs = -Infinity;
  #timer: NodeJS.Timeout | undefined;
  #running = false;
  #closed = false;

  /** `reload` loads the model again (its errors are the table's to log). */
  constructor(reload: (model: string) => Promise<void>) {
    this.#reload = reload;
  }

  /** A load of this model failed for want of a worker. */
  add(model: string): void {
    if (!this.#closed) this.#names.add(model);
  }

  /** The executor's drain signal: cheap when nothing is starved (it fires for every finished batch). */
  kick(): void {
    if (this.#names.size === 0 || this.#running || this.#timer || this.#closed) return;
    const wait = this.#lastMs + RETRY_MS - performance.now();
    if (wait > 0) {
      this.#timer = setTimeout(() => {
        this.#timer = undefined;
        this.kick();
      }, wait);
      this.#timer.unref();
      return;
    }
    this.#lastMs = performance.now();
    this.#running = true;
    const names = [...this.#names];
    this.#names.clear();
    void Promise.allSettled(names.map((n) => this.#reload(n))).finally(() => {
      this.#running = false;
    });
  }

  close(): void {
    this.#closed = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#names.clear();
  }
}

const RETRY_MS = 1000;

/** Loads a starved model again from the entry it was loaded with, if it is still wanted. */
export async function reloadWanted(table: ModelTable, name: string, logger: Logger): Promise<void> {
  const slot = table.get(name);
  if (!slot?.wanted) return;
  logger.info({ model: name }, 'workers changed: loading again a model that found no worker');
  await table.load(name, slot.entry).catch(() => undefined);
}
