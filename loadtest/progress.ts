/** Where live progress goes; a no-op when progress is off. */
export interface Progress {
  update(label: string, elapsedS: number, totalS: number, qps: number, p99Ms: number, errors: number): void;
  /** Ends the live line (before a table or a message is printed). */
  done(): void;
}

export const NO_PROGRESS: Progress = { update: () => undefined, done: () => undefined };

/**
 * One live line on a TTY (rewritten in place), or one line per second otherwise (for --progress when
 * stderr is a file or a CI log).
 */
export function streamProgress(stream: NodeJS.WriteStream | NodeJS.WritableStream, tty: boolean): Progress {
  let open = false;
  return {
    update(label, elapsedS, totalS, qps, p99Ms, errors) {
      const width = 20;
      const filled = Math.max(0, Math.min(width, Math.round((elapsedS / Math.max(1e-9, totalS)) * width)));
      const bar = `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}]`;
      const line = `${label} ${bar} ${elapsedS.toFixed(0)}/${totalS.toFixed(0)}s  ${qps.toFixed(0)} req/s  p99 ${p99Ms.toFixed(2)} ms  errors ${errors}`;
      if (tty) {
        stream.write(`\r\x1b[2K${line}`);
        open = true;
      } else {
        stream.write(`${line}\n`);
      }
    },
    done() {
      if (open) stream.write('\r\x1b[2K');
      open = false;
    },
  };
}
