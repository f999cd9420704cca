/**
 * Watches secret files (the worker link's token, certificates and CA; the front doors' certificates)
 * for rotation: calls `onChange` on SIGHUP and when any file's size, modification time or inode
 * changes (polled: it sees a file replaced by rename, and a Kubernetes Secret volume swapping its
 * symlink, which change events miss). Changes within a quarter second come as one call. Returns the
 * function that stops watching.
 */
import { unwatchFile, watchFile, type Stats } from 'node:fs';

export function watchFiles(files: readonly string[], onChange: (why: string) => void, pollMs = 1000): () => void {
  const unique = [...new Set(files.filter((f) => f !== ''))];
  if (unique.length === 0) return () => undefined;
  let timer: NodeJS.Timeout | undefined;
  const fire = (why: string): void => {
    if (timer) return;
    // A rotation writes several files (certificate, then key): read them once the writes settle.
    timer = setTimeout(() => {
      timer = undefined;
      onChange(why);
    }, Math.min(pollMs, 250));
    timer.unref();
  };
  const onSignal = (): void => fire('SIGHUP');
  const listeners = unique.map((file) => {
    const listener = (now: Stats, before: Stats): void => {
      if (now.mtimeMs !== before.mtimeMs || now.size !== before.size || now.ino !== before.ino) fire(`${file} changed`);
    };
    watchFile(file, { interval: pollMs, persistent: false }, listener);
    return { file, listener };
  });
  process.on('SIGHUP', onSignal);
  return () => {
    process.off('SIGHUP', onSignal);
    for (const { file, listener } of listeners) unwatchFile(file, listener);
    if (timer) clearTimeout(timer);
  };
}
