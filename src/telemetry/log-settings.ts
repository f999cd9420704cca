import { closeSync, openSync } from 'node:fs';
import { isAbsolute } from 'node:path';
import { pino, type DestinationStream, type Logger } from 'pino';
import { InvalidParameter } from '../core/errors.ts';

/** Triton's logging extension settings (GET/POST /v2/logging, gRPC LogSettings), in its field names. */
export interface LogSettings {
  /** Where lines go: '' = standard output, else a file appended to. */
  readonly log_file: string;
  readonly log_info: boolean;
  readonly log_warning: boolean;
  readonly log_error: boolean;
  /** 0 = no debug lines; 1 = debug (one line per request); 2 or more = trace. */
  readonly log_verbose_level: number;
  /** 'default': epoch milliseconds in "time"; 'ISO8601': ISO 8601 timestamps. */
  readonly log_format: 'default' | 'ISO8601';
}

export const LOG_FORMATS = ['default', 'ISO8601'] as const;

/** pino's numeric levels. */
const TRACE = 10;
const DEBUG = 20;
const INFO = 30;
const WARN = 40;
const ERROR = 50;

function fromLevel(level: string): LogSettings {
  const rank = pino.levels.values[level] ?? INFO;
  return {
    log_file: '',
    log_info: rank <= INFO,
    log_warning: rank <= WARN,
    log_error: rank <= ERROR,
    log_verbose_level: rank <= TRACE ? 2 : rank <= DEBUG ? 1 : 0,
    log_format: 'ISO8601',
  };
}

/**
 * The running server's logging, changed while it runs: which levels are written, the timestamp
 * format and the file. Every logger made from the root (children included, via pino's onChild) is
 * tracked so that its level follows a change; the level is pino's threshold (the lowest enabled
 * level), so `isLevelEnabled('debug')` stays false on the hot path while debug is off, and a filter
 * drops the levels turned off above it (Triton's toggles are independent: info off, warning on).
 */
export class LogControl {
  #settings: LogSettings;
  readonly #loggers = new Set<WeakRef<Logger>>();
  #sink: DestinationStream;
  readonly #stdout: DestinationStream;
  #file: (DestinationStream & { end?: () => void; flushSync?: () => void }) | undefined;

  constructor(level: string, destination?: DestinationStream) {
    this.#settings = fromLevel(level);
    this.#stdout = destination ?? pino.destination({ sync: false });
    this.#sink = this.#stdout;
  }

  /** The stream the root logger writes to: whichever sink the settings name now. */
  readonly stream: DestinationStream & { flush(cb?: (err?: Error) => void): void; flushSync(): void } = {
    write: (line: string) => this.#sink.write(line),
    // logger.flush() at exit reaches the sink in use (sonic-boom writes asynchronously).
    flush: (cb?: (err?: Error) => void) => {
      const sink = this.#sink as { flush?: (cb?: (err?: Error) => void) => void };
      if (sink.flush) sink.flush(cb);
      else cb?.();
    },
    flushSync: () => (this.#sink as { flushSync?: () => void }).flushSync?.(),
  };

  settings(): LogSettings {
    return this.#settings;
  }

  /** The pino level name that is the lowest enabled one. */
  threshold(): string {
    const s = this.#settings;
    if (s.log_verbose_level >= 2) return 'trace';
    if (s.log_verbose_level === 1) return 'debug';
    if (s.log_info) return 'info';
    if (s.log_warning) return 'warn';
    if (s.log_error) return 'error';
    return 'fatal';
  }

  /** Whether a line of this numeric level is written (fatal always is). */
  enabled(level: number): boolean {
    const s = this.#settings;
    if (level >= 60) return true;
    if (level >= ERROR) return s.log_error;
    if (level >= WARN) return s.log_warning;
    if (level >= INFO) return s.log_info;
    if (level >= DEBUG) return s.log_verbose_level >= 1;
    return s.log_verbose_level >= 2;
  }

  /** pino's timestamp option: the "time" field in the format in force. */
  time(): string {
    return this.#settings.log_format === 'ISO8601' ? `,"time":"${new Date().toISOString()}"` : `,"time":${Date.now()}`;
  }

  track(logger: Logger): void {
    this.#loggers.add(new WeakRef(logger));
    logger.level = this.threshold();
  }

  /**
   * Applies the fields given (Triton's names; absent ones unchanged), all or none: a bad value is
   * INVALID_ARG naming the field and nothing changes. Returns the settings in force after.
   */
  update(changes: Readonly<Record<string, unknown>>): LogSettings {
    const next: Record<string, unknown> = { ...this.#settings };
    for (const [field, value] of Object.entries(changes)) {
      switch (field) {
        case 'log_info':
        case 'log_warning':
        case 'log_error':
          if (typeof value !== 'boolean') throw InvalidParameter(field, `must be true or false, got ${JSON.stringify(value)}`);
          next[field] = value;
          break;
        case 'log_verbose_level':
          if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0 || value > 2 ** 32 - 1) throw InvalidParameter(field, `must be an unsigned integer, got ${JSON.stringify(value)}`);
          next[field] = value;
          break;
        case 'log_format':
          if (typeof value !== 'string' || !(LOG_FORMATS as readonly string[]).includes(value)) throw InvalidParameter(field, `must be one of ${LOG_FORMATS.join(', ')}, got ${JSON.stringify(value)}`);
          next[field] = value;
          break;
        case 'log_file':
          if (typeof value !== 'string') throw InvalidParameter(field, `must be a file path or '' (standard output), got ${JSON.stringify(value)}`);
          if (value !== '' && !isAbsolute(value)) throw InvalidParameter(field, `must be an absolute path, got '${value}'`);
          next[field] = value;
          break;
        default:
          throw InvalidParameter(field, `is not a logging setting (${['log_file', 'log_info', 'log_warning', 'log_error', 'log_verbose_level', 'log_format'].join(', ')})`);
      }
    }
    const settings = next as unknown as LogSettings;
    if (settings.log_file !== this.#settings.log_file) this.#switchFile(settings.log_file);
    this.#settings = settings;
    const level = this.threshold();
    for (const ref of this.#loggers) {
      const l = ref.deref();
      if (l) l.level = level;
      else this.#loggers.delete(ref);
    }
    return settings;
  }

  /** Flushes and closes a log file in use (at shutdown). */
  close(): void {
    this.#file?.flushSync?.();
    this.#file?.end?.();
    this.#file = undefined;
    this.#sink = this.#stdout;
  }

  #switchFile(file: string): void {
    if (file !== '') {
      // Opened here first, so that a path that cannot be written is refused with its reason.
      try {
        closeSync(openSync(file, 'a'));
      } catch (e) {
        throw InvalidParameter('log_file', `cannot be opened for appending: ${(e as Error).message}`);
      }
    }
    const old = this.#file;
    this.#file = file === '' ? undefined : pino.destination({ dest: file, sync: false, append: true, mkdir: false });
    this.#sink = this.#file ?? this.#stdout;
    old?.flushSync?.();
    old?.end?.();
  }
}
