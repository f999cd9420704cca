import type { Logger } from './logger.ts';

/**
 * A per-kind budget of log lines, so that clients cannot flood the log: a bad request is cheap to send
 * thousands of times a second, and a line with a stack trace for each would cost the gateway more
 * than refusing it. Each kind (an error code) may write `perWindow` lines per window; the lines past
 * that are counted, and the next line written for that kind says how many were left out.
 */
export interface LogBudgetOptions {
  readonly perWindow: number;
  readonly windowMs: number;
  /** Monotonic milliseconds (tests move time). */
  readonly now?: () => number;
}

/** Log lines per error code per window by default: enough to see a problem, too few to flood. */
export const DEFAULT_LOG_BUDGET: LogBudgetOptions = { perWindow: 10, windowMs: 10_000 };

/** Most kinds tracked; error codes are a bounded catalog, and a stray key must not grow the map. */
const MAX_KINDS = 1024;

interface Kind {
  windowStart: number;
  written: number;
  suppressed: number;
}

export class LogBudget {
  readonly #o: LogBudgetOptions;
  readonly #now: () => number;
  readonly #kinds = new Map<string, Kind>();

  constructor(o: LogBudgetOptions = DEFAULT_LOG_BUDGET) {
    this.#o = o;
    this.#now = o.now ?? (() => performance.now());
  }

  /**
   * Whether a line of this kind may be written now. When it may, `suppressed` is how many lines of the
   * kind were left out since the last one written (to be said in this one).
   */
  take(kind: string): { readonly write: true; readonly suppressed: number } | { readonly write: false } {
    const now = this.#now();
    let k = this.#kinds.get(kind);
    if (!k) {
      if (this.#kinds.size >= MAX_KINDS) this.#kinds.clear();
      k = { windowStart: now, written: 0, suppressed: 0 };
      this.#kinds.set(kind, k);
    }
    if (now - k.windowStart >= this.#o.windowMs) {
      k.windowStart = now;
      k.written = 0;
    }
    if (k.written >= this.#o.perWindow) {
      k.suppressed++;
      return { write: false };
    }
    k.written++;
    const suppressed = k.suppressed;
    k.suppressed = 0;
    return { write: true, suppressed };
  }

  /** Writes the line at `level` if the kind's budget allows, with `suppressed` when lines were left out. */
  log(logger: Logger, level: 'warn' | 'error', kind: string, fields: Record<string, unknown>, message: string): void {
    const taken = this.take(kind);
    if (taken.write) logger[level](taken.suppressed > 0 ? { ...fields, suppressed: taken.suppressed } : fields, message);
  }

  warn(logger: Logger, kind: string, fields: Record<string, unknown>, message: string): void {
    this.log(logger, 'warn', kind, fields, message);
  }
}
