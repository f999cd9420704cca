/**
 * Continuous (iteration-level) batching for one generative model. Each step runs one token for every
 * running sequence; sequences join between steps (a prefill of new prompts, bounded by
 * prefillTokenBudget, a longer prompt in chunks over several steps, then the decode step of everyone
 * else) and leave as soon as they end, so nobody
 * waits for the longest sequence. The waiting list is this model's one queue: bounded, and shed at once
 * when full. Keys and values stay in the KvCache between steps and after a sequence ends, so a prompt
 * that starts with cached tokens prefills only the rest.
 */
import { GenerationQueueFull, Internal, RequestCancelled, ShuttingDown, toSluiceError, type SluiceError } from '../core/errors.ts';
import type { GenerationConfig } from '../core/model.ts';
import type { Tensor } from '../core/tensor.ts';
import type { GenerationMetrics, GenerationSnapshot } from '../telemetry/generation-metrics.ts';
import { DecodeBatch } from './decode-batch.ts';
import { KvCache, type KvEntry } from './kv-cache.ts';
import { sampleToken, seededRandom } from './sampler.ts';
import { absorbStep, buildStep, stepOutputs, type StepRow } from './step.ts';
import { StopMatcher } from './stop.ts';

/** Runs one step: the model's session (inline, on a thread, or anything that answers the same). */
export interface StepRunner {
  run(inputs: readonly Tensor[], outputs: readonly string[]): Promise<readonly Tensor[]>;
}

export interface GenerateParams {
  readonly prompt: readonly number[];
  readonly maxTokens: number;
  /** 0 = greedy (argmax). */
  readonly temperature: number;
  /** Sample among the K likeliest tokens only (0 = every token). */
  readonly topK: number;
  /** Sample among the likeliest tokens whose probability reaches this (1 = every token). */
  readonly topP: number;
  readonly seed: number;
  readonly stop: readonly string[];
  readonly ignoreEos: boolean;
  readonly signal?: AbortSignal;
  /** performance.now() at arrival. */
  readonly arrivalMs: number;
  /** Each piece of text as soon as it is certain (held back while it may begin a stop string). */
  readonly onText?: (text: string) => void;
}

export type FinishReason = 'length' | 'stop' | 'eos';

export interface GenerateResult {
  readonly text: string;
  readonly tokens: readonly number[];
  readonly finishReason: FinishReason;
  readonly promptTokens: number;
  /** Prompt tokens whose keys and values came from the cache instead of a prefill. */
  readonly cachedTokens: number;
}

interface Sequence {
  readonly params: GenerateParams;
  readonly random: () => number;
  readonly stop: StopMatcher;
  readonly out: number[];
  entry: KvEntry | undefined;
  source: KvEntry | undefined;
  feed: number[];
  /** Prompt tokens not yet prefilled: a prompt longer than the prefill budget goes in one chunk per step. */
  rest: number[];
  /** Its whole prompt is in the cache: it decodes. */
  prefilled: boolean;
  cachedTokens: number;
  lastTokenMs: number;
  resolve(result: GenerateResult): void;
  reject(error: SluiceError): void;
}

export interface GeneratorOptions {
  readonly model: string;
  readonly config: GenerationConfig;
  readonly runner: StepRunner;
  readonly metrics?: GenerationMetrics;
  /** Called when a step fails (the sequences in it fail with the error). */
  readonly onStepError?: (error: SluiceError) => void;
}

export class Generator {
  readonly #o: GeneratorOptions;
  readonly #kv: KvCache;
  readonly #outputs: string[];
  readonly #waiting: Sequence[] = [];
  readonly #running: Sequence[] = [];
  readonly #batch: DecodeBatch<Sequence>;
  #loop: Promise<void> | undefined;
  #closed = false;

  constructor(options: GeneratorOptions) {
    this.#o = options;
    const c = options.config;
    this.#kv = new KvCache({ layers: c.layers, heads: c.heads, headDim: c.headDim, budgetBytes: c.kvCacheBytes, blockTokens: c.kvBlockTokens });
    this.#outputs = stepOutputs(c.layers);
    this.#batch = new DecodeBatch(c, c.maxContext, c.maxActiveSequences);
  }

  /** Queues a prompt; the caller has checked it (tokens in the vocabulary, context within maxContext). */
  generate(params: GenerateParams): Promise<GenerateResult> {
    if (this.#closed) return Promise.reject(ShuttingDown());
    const { config, model } = this.#o;
    if (this.#waiting.length >= config.maxQueuedPrompts) return Promise.reject(GenerationQueueFull(model, this.#waiting.length));
    if (params.signal?.aborted) return Promise.reject(RequestCancelled(model));
    return new Promise<GenerateResult>((resolve, reject) => {
      const seq: Sequence = {
        params, random: seededRandom(params.seed), stop: new StopMatcher(params.stop), out: [], entry: undefined, source: undefined,
        feed: [], rest: [], prefilled: false, cachedTokens: 0, lastTokenMs: 0, resolve, reject,
      };
      this.#waiting.push(seq);
      params.signal?.addEventListener('abort', () => this.#cancelWaiting(seq), { once: true });
      this.#loop ??= this.#run().finally(() => {
        this.#loop = undefined;
      });
    });
  }

  #cancelWaiting(seq: Sequence): void {
    const at = this.#waiting.indexOf(seq);
    if (at < 0) return;
    this.#waiting.splice(at, 1);
    seq.reject(RequestCancelled(this.#o.model));
  }

  async #run(): Promise<void> {
    while (this.#running.length > 0 || this.#waiting.length > 0) {
      this.#reapCancelled();
      const decoding = this.#running.filter((s) => s.prefilled);
      const prefill = this.#admit();
      if (prefill.length > 0) await this.#step(prefill, 'prefill');
      const stillRunning = decoding.filter((s) => this.#running.includes(s));
      if (stillRunning.length > 0) await this.#step(stillRunning, 'decode');
      if (prefill.length === 0 && decoding.length === 0) {
        // Nothing runs and the head cannot be placed: only a cache too small for it does that (the
        // config check rules it out); fail it rather than leave it waiting for nothing.
        const head = this.#waiting.shift();
        head?.reject(Internal(`the KV cache of model '${this.#o.model}' cannot hold a sequence of ${(head.params.prompt.length + head.params.maxTokens)} tokens`));
        continue;
      }
      // Between steps the event loop takes new prompts, cancels and other requests.
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
  }

  #reapCancelled(): void {
    for (const seq of [...this.#running]) {
      if (seq.params.signal?.aborted) this.#end(seq, RequestCancelled(this.#o.model));
    }
  }

  /**
   * The prefill of this step, within the prefill budget: first the next chunk of each prompt part-way
   * through its prefill, then waiting prompts moved into the running batch while there is room in it,
   * in the cache and in the budget (the last one taken may start with a chunk of its prompt).
   */
  #admit(): Sequence[] {
    const { config } = this.#o;
    const rows: Sequence[] = [];
    let budget = config.prefillTokenBudget;
    for (const seq of this.#running) {
      if (seq.prefilled || budget <= 0) continue;
      seq.feed = seq.rest.splice(0, budget);
      budget -= seq.feed.length;
      rows.push(seq);
    }
    const now = performance.now();
    while (budget > 0 && this.#waiting.length > 0 && this.#running.length < config.maxActiveSequences) {
      const seq = this.#waiting[0]!;
      const { prompt, maxTokens } = seq.params;
      const hit = this.#kv.lookup(prompt);
      const entry = this.#kv.allocate(prompt.length + maxTokens, hit, now);
      if (!entry) break;
      this.#waiting.shift();
      seq.entry = entry;
      seq.source = hit?.entry;
      seq.cachedTokens = entry.tokens.length;
      seq.rest = prompt.slice(entry.tokens.length);
      seq.feed = seq.rest.splice(0, budget);
      budget -= seq.feed.length;
      this.#o.metrics?.tokens.inc({ model: this.#o.model, kind: 'prompt_cached' }, seq.cachedTokens);
      this.#o.metrics?.tokens.inc({ model: this.#o.model, kind: 'prompt_computed' }, prompt.length - seq.cachedTokens);
      this.#running.push(seq);
      rows.push(seq);
    }
    return rows;
  }

  /** Runs a step; a prefill lays its rows out from their entries, a decode continues the running batch. */
  async #step(seqs: readonly Sequence[], phase: 'prefill' | 'decode'): Promise<void> {
    const { config, runner, model, metrics } = this.#o;
    const started = performance.now();
    let logits: (Float32Array | undefined)[];
    try {
      if (phase === 'prefill') {
        const rows: StepRow[] = seqs.map((s) => ({ entry: s.entry!, feed: s.feed }));
        const step = buildStep(rows, config);
        logits = absorbStep(rows, step, await runner.run(step.tensors, this.#outputs), config, config.vocab);
      } else {
        const batch = this.#batch;
        const entry = (s: Sequence): KvEntry => s.entry!;
        const token = (s: Sequence): number => s.feed[0]!;
        batch.arrange(seqs, entry);
        const members = batch.members();
        const outputs = await runner.run(batch.inputs(token, (s) => s.entry!.tokens.length), this.#outputs);
        const byRow = batch.advance(outputs, entry, token, config.vocab);
        logits = seqs.map((s) => byRow[members.indexOf(s)]);
      }
    } catch (e) {
      const err = toSluiceError(e);
      this.#o.onStepError?.(err);
      for (const s of seqs) this.#end(s, err);
      return;
    }
    const now = performance.now();
    metrics?.steps.observe({ model, phase }, (now - started) / 1000);
    seqs.forEach((s, i) => {
      if (!this.#running.includes(s)) return;
      if (s.params.signal?.aborted) return this.#end(s, RequestCancelled(model));
      // A chunk that leaves some of the prompt to prefill answers no token yet.
      if (phase === 'prefill' && s.rest.length > 0) return;
      const row = logits[i];
      if (!row) return this.#end(s, Internal(`generation step of model '${model}' lost a sequence's row`));
      s.prefilled = true;
      this.#emit(s, sampleToken(row, s.params, s.random), now);
    });
  }

  #emit(seq: Sequence, token: number, now: number): void {
    const { config, metrics, model } = this.#o;
    const { params } = seq;
    if (seq.out.length === 0) metrics?.timeToFirstToken.observe({ model }, (now - params.arrivalMs) / 1000);
    else metrics?.interToken.observe({ model }, (now - seq.lastTokenMs) / 1000);
    seq.lastTokenMs = now;
    if (token === config.eosToken && !params.ignoreEos) return this.#end(seq, 'eos');
    seq.out.push(token);
    metrics?.tokens.inc({ model, kind: 'generated' });
    const ready = seq.stop.push(token);
    if (ready !== '') params.onText?.(ready);
    if (seq.stop.stopped) return this.#end(seq, 'stop');
    if (seq.out.length >= params.maxTokens) return this.#end(seq, 'length');
    seq.feed = [token];
  }

  /** Takes a sequence out of the running batch: answered with its reason, or failed with an error. */
  #end(seq: Sequence, outcome: FinishReason | SluiceError): void {
    const at = this.#running.indexOf(seq);
    if (at >= 0) this.#running.splice(at, 1);
    this.#batch.drop(seq);
    const ok = typeof outcome === 'string';
    if (seq.entry) this.#kv.finish(seq.entry, ok, seq.source, performance.now());
    seq.entry = undefined;
    if (!ok) return seq.reject(outcome);
    const rest = seq.stop.flush();
    if (rest !== '') seq.params.onText?.(rest);
    seq.resolve({ text: seq.stop.text, tokens: seq.out, finishReason: outcome, promptTokens: seq.params.prompt.length, cachedTokens: seq.cachedTokens });
  }

  snapshot(): GenerationSnapshot {
    const kv = this.#kv.stats();
    return {
      model: this.#o.model, activeSequences: this.#running.length, waitingPrompts: this.#waiting.length,
      kvActiveBytes: kv.activeBytes, kvCachedBytes: kv.cachedBytes, kvBudgetBytes: kv.budgetBytes, kvEvictedBytes: kv.evictedBytes,
      prefixLookups: kv.lookups, prefixHits: kv.hits,
    };
  }

  /**
   * Stops taking prompts: waiting ones fail with ShuttingDown, running ones finish (each within its
   * max_tokens steps); resolves when the last has, and frees the cache.
   */
  async close(): Promise<void> {
    this.#closed = true;
    for (const seq of this.#waiting.splice(0)) seq.reject(ShuttingDown());
    await this.#loop;
    this.#batch.clear();
    this.#kv.clear();
  }
}
