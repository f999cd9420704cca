import { createHash } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { InferRequest, InferResponse } from '../core/inference.ts';
import { encodeBytesElements, isBytesData, tensorByteLength, type Tensor } from '../core/tensor.ts';
import type { Metrics, ResponseCacheSnapshot } from '../telemetry/metrics.ts';
import type { RequestPlan } from './scheduler.ts';
import { nsBetween, type ModelStatsRecorder } from './stats.ts';

/** Bumped whenever the key encoding changes, so that no two encodings can ever share a key. */
const KEY_FORMAT = 'sluice-response-cache/1';
/** What an entry costs beyond its bytes: the Map slot, the entry object, its digest string. */
const ENTRY_OVERHEAD_BYTES = 256;
/** What each stored tensor costs beyond its data: the object, its shape array, its name. */
const TENSOR_OVERHEAD_BYTES = 64;

/** The model version a request runs on, as the cache keys it. */
export interface CacheTarget {
  readonly model: string;
  /** The concrete version that serves the request (never ''). */
  readonly version: string;
  /**
   * Which load of that version: a version reloaded in place (a new model file) is a new generation,
   * and answers of the old one are never served for it.
   */
  readonly generation: number;
  readonly stats: ModelStatsRecorder;
}

interface Entry {
  /** The canonical encoding of the request, compared in full on every hit: a digest alone could collide. */
  readonly key: Buffer;
  readonly partition: string;
  readonly outputs: readonly Tensor[];
  readonly bytes: number;
}

/** A request's key as pieces: headers written here, input data viewed where the request holds it. */
interface Key {
  readonly digest: string;
  readonly pieces: readonly Uint8Array[];
  readonly length: number;
}

/** Tagged, length-prefixed fields: no two different field lists encode to the same bytes. */
function header(fields: readonly (string | number)[]): Buffer {
  let size = 0;
  for (const f of fields) size += typeof f === 'string' ? 5 + Buffer.byteLength(f) : 9;
  const out = Buffer.allocUnsafe(size);
  let off = 0;
  for (const f of fields) {
    if (typeof f === 'string') {
      out[off] = 0x73;
      off = out.writeUInt32LE(Buffer.byteLength(f), off + 1);
      off += out.write(f, off, 'utf8');
    } else {
      out[off] = 0x6e;
      off = out.writeDoubleLE(f, off + 1);
    }
  }
  return out;
}

function byName(a: Tensor, b: Tensor): number {
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

/**
 * The canonical encoding of what decides an answer: model, version and its generation, the outputs
 * asked for (in order: the answer lists them so), and every input's name, datatype, shape and bytes,
 * inputs by name (the order a client sends them in changes nothing).
 */
function keyOf(target: CacheTarget, request: InferRequest, plan: RequestPlan): Key {
  const inputs = [...request.inputs].sort(byName);
  const pieces: Uint8Array[] = [header([KEY_FORMAT, target.model, target.version, target.generation, plan.outputs.length, ...plan.outputs, inputs.length])];
  for (const t of inputs) {
    const bytes = isBytesData(t.data);
    const data = isBytesData(t.data) ? encodeBytesElements(t.data) : t.data;
    pieces.push(header([t.name, t.datatype, t.shape.length, ...t.shape, bytes ? 'bytes' : 'fixed', data.byteLength]), data);
  }
  const hash = createHash('sha256');
  let length = 0;
  for (const p of pieces) {
    hash.update(p);
    length += p.byteLength;
  }
  return { digest: hash.digest('base64'), pieces, length };
}

function matches(stored: Buffer, key: Key): boolean {
  if (stored.byteLength !== key.length) return false;
  let off = 0;
  for (const p of key.pieces) {
    if (stored.compare(p, 0, p.byteLength, off, off + p.byteLength) !== 0) return false;
    off += p.byteLength;
  }
  return true;
}

/** A copy the cache owns: the answer's buffers may be views into a batch's output, or reused. */
function ownCopy(t: Tensor): Tensor {
  const shape = Object.freeze([...t.shape]);
  if (!isBytesData(t.data)) return Object.freeze({ name: t.name, datatype: t.datatype, shape, data: t.data.slice() });
  let total = 0;
  for (const e of t.data) total += e.byteLength;
  const flat = new Uint8Array(total);
  const elements: Uint8Array[] = [];
  let off = 0;
  for (const e of t.data) {
    flat.set(e, off);
    elements.push(flat.subarray(off, off + e.byteLength));
    off += e.byteLength;
  }
  return Object.freeze({ name: t.name, datatype: t.datatype, shape, data: Object.freeze(elements) });
}

/**
 * Triton's response cache (its `local` implementation): successful answers of models whose config
 * enables it, keyed by a SHA-256 of the request's canonical encoding and checked against the stored
 * encoding, least recently used evicted first within one byte budget for all models. A hit answers
 * without queueing or running the model. Stored answers are read-only: every hit hands out the same
 * buffers, which the front doors only encode.
 */
export class ResponseCache {
  readonly #limit: number;
  readonly #metrics: Metrics | undefined;
  /** Insertion order is recency order: a hit moves its entry to the end, eviction takes the first. */
  readonly #entries = new Map<string, Entry>();
  /** The generation last seen per model version: a newer one drops the older one's answers. */
  readonly #generations = new Map<string, number>();
  #used = 0;
  #evictions = 0;

  constructor(options: { readonly limitBytes: number; readonly metrics?: Metrics }) {
    if (!Number.isSafeInteger(options.limitBytes) || options.limitBytes < 1) throw new RangeError(`response cache size must be a positive integer, got ${options.limitBytes}`);
    this.#limit = options.limitBytes;
    this.#metrics = options.metrics;
  }

  /**
   * Answers from the cache, or through `run` (the model's queue), storing a successful answer. Records
   * the statistics extension's cache_hit / cache_miss, and on a hit its success and queue time.
   */
  async serve(target: CacheTarget, request: InferRequest, plan: RequestPlan, run: () => Promise<InferResponse>): Promise<InferResponse> {
    const { stats } = target;
    const start = performance.now();
    const partition = `${target.model}\u0000${target.version}`;
    this.#enter(partition, target.generation);
    const key = keyOf(target, request, plan);
    const entry = this.#entries.get(key.digest);
    if (entry !== undefined && matches(entry.key, key)) {
      this.#entries.delete(key.digest);
      this.#entries.set(key.digest, entry);
      const response: InferResponse = { id: request.id, model: request.model, version: target.version, outputs: entry.outputs };
      const end = performance.now();
      stats.cacheHit(nsBetween(start, end));
      stats.queued(nsBetween(request.arrivalMs, start));
      stats.success(nsBetween(request.arrivalMs, end));
      this.#observe(target.model, 'hit', end - start);
      return response;
    }
    // Flattened now, while the request's inputs are surely its own: a batch may move them later.
    const stored = Buffer.concat(key.pieces, key.length);
    const missed = performance.now();
    stats.cacheMiss(nsBetween(start, missed));
    this.#observe(target.model, 'miss', missed - start);
    const response = await run();
    const t0 = performance.now();
    // A version reloaded while this request ran must not get the old load's answer.
    if (this.#generations.get(partition) === target.generation) this.#insert(key.digest, stored, partition, response.outputs);
    stats.cacheInserted(nsBetween(t0, performance.now()));
    return response;
  }

  snapshot(): ResponseCacheSnapshot {
    return { entries: this.#entries.size, usedBytes: this.#used, limitBytes: this.#limit, evictions: this.#evictions };
  }

  #observe(model: string, result: 'hit' | 'miss', ms: number): void {
    if (!this.#metrics) return;
    this.#metrics.responseCacheLookups.inc({ model, result });
    this.#metrics.responseCacheLookupDuration.observe({ model, result }, ms / 1000);
  }

  #enter(partition: string, generation: number): void {
    const seen = this.#generations.get(partition);
    if (seen === generation) return;
    this.#generations.set(partition, generation);
    if (seen === undefined) return;
    // Rare (a reload in place): one pass frees the old load's answers at once instead of leaving them to age out.
    for (const [digest, e] of this.#entries) if (e.partition === partition) this.#drop(digest, e);
  }

  #insert(digest: string, key: Buffer, partition: string, outputs: readonly Tensor[]): void {
    let bytes = ENTRY_OVERHEAD_BYTES + key.byteLength;
    for (const t of outputs) bytes += TENSOR_OVERHEAD_BYTES + tensorByteLength(t) + Buffer.byteLength(t.name) + 8 * t.shape.length;
    // Larger than the whole budget: storing it would only evict everything else, for one answer.
    if (bytes > this.#limit) return;
    const old = this.#entries.get(digest);
    if (old !== undefined) this.#drop(digest, old);
    while (this.#used + bytes > this.#limit) {
      const first = this.#entries.entries().next();
      if (first.done === true) break;
      this.#drop(first.value[0], first.value[1]);
      this.#evictions++;
    }
    this.#entries.set(digest, { key, partition, outputs: Object.freeze(outputs.map(ownCopy)), bytes });
    this.#used += bytes;
  }

  #drop(digest: string, e: Entry): void {
    this.#entries.delete(digest);
    this.#used -= e.bytes;
  }
}
