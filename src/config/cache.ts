import type { ResponseCacheSettings } from './schema.ts';

type MutableCache = { -readonly [K in keyof ResponseCacheSettings]: ResponseCacheSettings[K] };

/** The cache implementations sluice has built in: Triton's `local` (an in-process LRU under a byte size). */
const IMPLEMENTATIONS = ['local'];

const UNITS: Readonly<Record<string, number>> = { '': 1, b: 1, k: 1024, kb: 1024, m: 1024 ** 2, mb: 1024 ** 2, g: 1024 ** 3, gb: 1024 ** 3 };

/** Triton's size is a count of bytes; sluice also takes the units of its other byte settings (64mb). */
function size(text: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(text.trim());
  const unit = m ? UNITS[m[2]!.toLowerCase()] : undefined;
  const n = m && unit !== undefined ? Math.floor(Number(m[1]) * unit) : NaN;
  if (!Number.isSafeInteger(n)) throw new Error(`--cache-config local,size: '${text}' is not a size (e.g. 1048576 or 64mb)`);
  if (n < 1) throw new Error('--cache-config local,size: the size must be at least 1 byte (leave --cache-config out for no cache)');
  return n;
}

/**
 * Folds tritonserver's `--cache-config <cache>,<key>=<value>` entries into sizeBytes. The list option
 * splits values on commas, so `local,size=1048576` arrives as two entries, and the flag may be given
 * once per key, as Triton allows. Only `local` exists, and its one key, `size`, is required. No
 * entries leave the cache off. Throws a message naming the entry.
 */
export function applyCacheSettings(cache: MutableCache): void {
  if (cache.settings.length === 0) return;
  let sizeBytes: number | undefined;
  for (const raw of cache.settings) {
    const entry = raw.trim();
    const eq = entry.indexOf('=');
    if (eq < 0) {
      if (!IMPLEMENTATIONS.includes(entry)) throw new Error(`--cache-config: '${entry}' is not a cache sluice has (only 'local', an in-process LRU)`);
      continue;
    }
    const key = entry.slice(0, eq).trim();
    if (key !== 'size') throw new Error(`--cache-config local,${entry}: the local cache has one setting, size=BYTES`);
    sizeBytes = size(entry.slice(eq + 1));
  }
  if (sizeBytes === undefined) throw new Error('--cache-config: give the local cache its size, e.g. --cache-config local,size=1048576');
  cache.sizeBytes = sizeBytes;
}
