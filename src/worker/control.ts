/** A worker host's control calls, POST /load and POST /unload: JSON in, JSON out, on its model cache. */
import { MalformedBody } from '../core/errors.ts';
import type { ModelCache } from './cache.ts';
import { WORKER_PATHS, parseModelRef, type LoadResult, type UnloadResult } from './protocol.ts';

export async function answerControl(cache: ModelCache, path: string, body: Buffer): Promise<LoadResult | UnloadResult> {
  let json: unknown;
  try {
    json = JSON.parse(body.toString('utf8'));
  } catch (e) {
    throw MalformedBody((e as Error).message);
  }
  const { model, version, source } = parseModelRef(json);
  if (path === WORKER_PATHS.unload) return { unloaded: await cache.unload(model, version, source) };
  const r = await cache.load(model, version, source);
  return { model, version, loadMs: r.loadMs, cacheHit: r.cacheHit, ...(r.evicted.length > 0 ? { evicted: r.evicted } : {}) };
}
