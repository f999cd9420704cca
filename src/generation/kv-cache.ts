/**
 * The KV cache of one generative model: each sequence's keys and values per layer, under a byte budget
 * counted in blocks of kvBlockTokens tokens. A running sequence holds an active entry, sized for its
 * whole context up front so it never runs out mid-generation. A finished one stays as an inactive
 * entry that later prompts starting with the same tokens copy their prefix from (a conversation's next
 * turn, or prompts sharing a system prompt); inactive entries are evicted least recently used first
 * when a new sequence needs room. Lookup is by content, so an evicted entry costs a recompute, never a
 * wrong answer.
 */

export interface KvShape {
  readonly layers: number;
  readonly heads: number;
  readonly headDim: number;
}

export interface KvCacheOptions extends KvShape {
  readonly budgetBytes: number;
  readonly blockTokens: number;
}

/**
 * One sequence's keys and values: per layer a [capacity, heads, headDim] array (time-major, as the
 * model's past), filled up to tokens.length, so one token's keys are heads * headDim floats in a row.
 */
export interface KvEntry {
  readonly id: number;
  /** The tokens whose keys and values are stored, in order (length of the filled part). */
  readonly tokens: number[];
  readonly keys: readonly Float32Array[];
  readonly values: readonly Float32Array[];
  readonly capacity: number;
  /** A running sequence writes it: it is never evicted, and it is searched only up to its length. */
  active: boolean;
  lastUsedMs: number;
}

/** What a prompt can reuse: the first `length` tokens of `entry`. */
export interface PrefixHit {
  readonly entry: KvEntry;
  readonly length: number;
}

export interface KvCacheStats {
  readonly budgetBytes: number;
  readonly activeBytes: number;
  readonly cachedBytes: number;
  readonly activeEntries: number;
  readonly cachedEntries: number;
  /** Totals since start. */
  readonly evictedBytes: number;
  readonly lookups: number;
  readonly hits: number;
  readonly reusedTokens: number;
}

export class KvCache {
  readonly #o: KvCacheOptions;
  readonly #entries = new Set<KvEntry>();
  readonly #blockBytes: number;
  readonly #totalBlocks: number;
  #usedBlocks = 0;
  #nextId = 1;
  #evictedBytes = 0;
  #lookups = 0;
  #hits = 0;
  #reusedTokens = 0;

  constructor(options: KvCacheOptions) {
    this.#o = options;
    this.#blockBytes = this.bytesPerToken * options.blockTokens;
    this.#totalBlocks = Math.floor(options.budgetBytes / this.#blockBytes);
  }

  /** Keys and values of one token over every layer and head. */
  get bytesPerToken(): number {
    const { layers, heads, headDim } = this.#o;
    return 2 * layers * heads * headDim * Float32Array.BYTES_PER_ELEMENT;
  }

  #blocksFor(tokens: number): number {
    return Math.max(1, Math.ceil(tokens / this.#o.blockTokens));
  }

  /** Whether a sequence of this many tokens could ever fit (with every inactive entry evicted). */
  fits(tokens: number): boolean {
    return this.#blocksFor(tokens) <= this.#totalBlocks - this.#activeBlocks();
  }

  #activeBlocks(): number {
    let n = 0;
    for (const e of this.#entries) if (e.active) n += this.#blocksFor(e.capacity);
    return n;
  }

  /**
   * The longest prefix of `tokens` that some entry holds, leaving at least the last token to compute
   * (its logits are what the next token comes from). Shorter than one block is not worth a copy.
   */
  lookup(tokens: readonly number[]): PrefixHit | undefined {
    const limit = tokens.length - 1;
    let best: PrefixHit | undefined;
    for (const entry of this.#entries) {
      const n = Math.min(limit, entry.tokens.length);
      let i = 0;
      while (i < n && entry.tokens[i] === tokens[i]) i++;
      if (i >= this.#o.blockTokens && i > (best?.length ?? 0)) best = { entry, length: i };
    }
    return best;
  }

  /**
   * An active entry with room for `capacity` tokens, its first tokens copied from `prefix` when given;
   * undefined when the budget cannot hold it even after evicting inactive entries (the sequence waits).
   * `prefix`'s entry is never evicted to make room for its own copy. Counts the lookup (and its hit).
   */
  allocate(capacity: number, prefix: PrefixHit | undefined, nowMs: number): KvEntry | undefined {
    const need = this.#blocksFor(capacity);
    if (!this.#makeRoom(need, prefix?.entry)) return undefined;
    this.#usedBlocks += need;
    this.#lookups++;
    if (prefix) {
      this.#hits++;
      this.#reusedTokens += prefix.length;
      prefix.entry.lastUsedMs = nowMs;
    }
    const { layers, heads, headDim } = this.#o;
    const make = (): Float32Array[] => Array.from({ length: layers }, () => new Float32Array(capacity * heads * headDim));
    const entry: KvEntry = { id: this.#nextId++, tokens: [], keys: make(), values: make(), capacity, active: true, lastUsedMs: nowMs };
    if (prefix) copyPrefix(prefix.entry, entry, prefix.length, this.#o);
    this.#entries.add(entry);
    return entry;
  }

  #makeRoom(need: number, keep: KvEntry | undefined): boolean {
    if (this.#usedBlocks + need <= this.#totalBlocks) return true;
    const victims = [...this.#entries].filter((e) => !e.active && e !== keep).sort((a, b) => a.lastUsedMs - b.lastUsedMs);
    let free = this.#totalBlocks - this.#usedBlocks;
    const chosen: KvEntry[] = [];
    for (const v of victims) {
      if (free >= need) break;
      chosen.push(v);
      free += this.#blocksFor(v.capacity);
    }
    if (free < need) return false;
    for (const v of chosen) {
      this.#evictedBytes += this.#blocksFor(v.capacity) * this.#blockBytes;
      this.#drop(v);
    }
    return true;
  }

  #drop(entry: KvEntry): void {
    if (this.#entries.delete(entry)) this.#usedBlocks -= this.#blocksFor(entry.capacity);
  }

  /**
   * A sequence ended. Kept, its entry shrinks to the blocks its tokens fill and becomes reusable, and
   * an inactive entry it wholly contains (the previous turn it was copied from) is dropped as a
   * duplicate. Not kept (cancelled, failed), it is freed.
   */
  finish(entry: KvEntry, keep: boolean, source: KvEntry | undefined, nowMs: number): KvEntry | undefined {
    this.#drop(entry);
    if (!keep || entry.tokens.length === 0) return undefined;
    if (source && !source.active && this.#entries.has(source) && isPrefix(source.tokens, entry.tokens)) this.#drop(source);
    const capacity = this.#blocksFor(entry.tokens.length) * this.#o.blockTokens;
    const token = this.#o.heads * this.#o.headDim;
    const shrink = (arrays: readonly Float32Array[]): Float32Array[] => arrays.map((a) => {
      const out = new Float32Array(capacity * token);
      out.set(a.subarray(0, entry.tokens.length * token));
      return out;
    });
    const kept: KvEntry = { id: entry.id, tokens: entry.tokens, keys: shrink(entry.keys), values: shrink(entry.values), capacity, active: false, lastUsedMs: nowMs };
    this.#usedBlocks += this.#blocksFor(capacity);
    this.#entries.add(kept);
    return kept;
  }

  stats(): KvCacheStats {
    let activeBytes = 0;
    let cachedBytes = 0;
    let activeEntries = 0;
    for (const e of this.#entries) {
      const bytes = this.#blocksFor(e.capacity) * this.#blockBytes;
      if (e.active) {
        activeBytes += bytes;
        activeEntries++;
      } else cachedBytes += bytes;
    }
    return {
      budgetBytes: this.#totalBlocks * this.#blockBytes, activeBytes, cachedBytes, activeEntries, cachedEntries: this.#entries.size - activeEntries,
      evictedBytes: this.#evictedBytes, lookups: this.#lookups, hits: this.#hits, reusedTokens: this.#reusedTokens,
    };
  }

  /** Frees everything (the model is unloaded). */
  clear(): void {
    this.#entries.clear();
    this.#usedBlocks = 0;
  }
}

function isPrefix(a: readonly number[], b: readonly number[]): boolean {
  if (a.length > b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function copyPrefix(from: KvEntry, to: KvEntry, length: number, shape: KvShape): void {
  const n = length * shape.heads * shape.headDim;
  for (let l = 0; l < shape.layers; l++) {
    to.keys[l]!.set(from.keys[l]!.subarray(0, n));
    to.values[l]!.set(from.values[l]!.subarray(0, n));
  }
  for (let i = 0; i < length; i++) to.tokens.push(from.tokens[i]!);
}
