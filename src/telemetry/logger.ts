import { pino, type DestinationStream, type Logger } from 'pino';
import { LogControl } from './log-settings.ts';

export type { Logger } from 'pino';

const controls = new WeakMap<Logger, LogControl>();

/**
 * The root logger; components take child loggers from it (never a module-level singleton). Its
 * settings can change while it runs (the logging extension): logControlOf(root) changes them for the
 * root and every child.
 */
export function createLogger(level: string, destination?: DestinationStream): Logger {
  const control = new LogControl(level, destination);
  const logger = pino({
    level: control.threshold(),
    base: { pid: process.pid },
    timestamp: () => control.time(),
    onChild: (child) => control.track(child),
    hooks: {
      logMethod(args, method, numeric) {
        if (control.enabled(numeric)) method.apply(this, args);
      },
    },
  }, control.stream);
  control.track(logger);
  controls.set(logger, control);
  return logger;
}

/** The settings control of a root logger made by createLogger (undefined for any other logger). */
export function logControlOf(logger: Logger): LogControl | undefined {
  return controls.get(logger);
}
