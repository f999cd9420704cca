import type { ModelScheduler } from './scheduler.ts';

/** Lets a batcher's queue drain (bounded by `timeoutMs`), then closes it, failing what is left with `error`. */
export async function drainThenClose(batcher: ModelScheduler, timeoutMs: number, error: Error): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const bounded = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, timeoutMs);
    timer.unref();
  });
  await Promise.race([batcher.drain(), bounded]);
  clearTimeout(timer);
  batcher.close(error);
}
