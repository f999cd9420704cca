/** A worker host's control calls, POST /load and POST /unload: JSON in, JSON out, on its model cache. */
import { InvalidRequest, MalformedBody } from '../core/errors.ts';
import { MODEL_NAME_PATTERN, SOURCE_PATTERN, VERSION_PATTERN } from '../core/model.ts';
import type { ModelCache } from './cache.ts';
import { WORKER_PATHS, isRecord, type LoadResult, type ModelRef, type UnloadResult } from './protocol.ts';

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

/** Validates a /load or /unload body (already JSON-parsed). */
export function parseModelRef(json: unknown): ModelRef {
  if (!isRecord(json)) throw InvalidRequest('worker control body must be a JSON object {model, version}');
  const { model, version } = json;
  if (typeof model !== 'string' || !MODEL_NAME_PATTERN.test(model)) throw InvalidRequest(`invalid model name ${JSON.stringify(model)}`);
  if (typeof version !== 'string' || !VERSION_PATTERN.test(version)) throw InvalidRequest(`invalid version ${JSON.stringify(version)} for model '${model}'`);
  const { source } = json;
  if (source === undefined) return { model, version };
  if (typeof source !== 'string' || !SOURCE_PATTERN.test(source)) throw InvalidRequest(`invalid source ${JSON.stringify(source)} for model '${model}': 64 lowercase hex digits`);
  return { model, version, source };
}
