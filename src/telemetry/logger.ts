import { pino, type Logger } from 'pino';

export type { Logger } from 'pino';

/** The root logger; components take child loggers from it (never a module-level singleton). */
export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino({ level, base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime }, destination ?? pino.destination({ sync: false }));
}
