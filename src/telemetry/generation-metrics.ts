/**
 * The generation engine's metrics: time to first token and inter-token latency (histograms, so that
 * P50/P95/P99 aggregate across replicas), tokens by kind, steps, and the KV cache read at scrape time.
 */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

/** One generative model's live state, read at scrape time. */
export interface GenerationSnapshot {
  readonly model: string;
  readonly activeSequences: number;
  readonly waitingPrompts: number;
  readonly kvActiveBytes: number;
  readonly kvCachedBytes: number;
  readonly kvBudgetBytes: number;
  readonly kvEvictedBytes: number;
  readonly prefixLookups: number;
  readonly prefixHits: number;
}

export type TokenKind = 'prompt_computed' | 'prompt_cached' | 'generated';

// From 1 ms (a decode step of a tiny model) to 10 s (a first token behind a long queue).
const TOKEN_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export class GenerationMetrics {
  readonly timeToFirstToken: Histogram<'model'>;
  readonly interToken: Histogram<'model'>;
  readonly tokens: Counter<'model' | 'kind'>;
  readonly steps: Histogram<'model' | 'phase'>;
  /** Set by the composition root: every generative model's snapshot. */
  source: () => Iterable<GenerationSnapshot> = () => [];

  constructor(registry: Registry) {
    const registers = [registry];
    const snapshots = (): Iterable<GenerationSnapshot> => this.source();
    this.timeToFirstToken = new Histogram({ name: 'sluice_generation_time_to_first_token_seconds', help: 'From a generate request\'s arrival to its first token (queue wait and prefill).', labelNames: ['model'], buckets: TOKEN_BUCKETS, registers });
    this.interToken = new Histogram({ name: 'sluice_generation_inter_token_seconds', help: 'Between two consecutive tokens of one sequence.', labelNames: ['model'], buckets: TOKEN_BUCKETS, registers });
    this.tokens = new Counter({ name: 'sluice_generation_tokens_total', help: 'Tokens by kind: prompt_computed (prefilled), prompt_cached (taken from the KV cache), generated; rate() of generated is tokens per second.', labelNames: ['model', 'kind'], registers });
    this.steps = new Histogram({ name: 'sluice_generation_step_duration_seconds', help: 'One step of the running batch (phase prefill: new prompts; decode: one token for every running sequence).', labelNames: ['model', 'phase'], buckets: TOKEN_BUCKETS, registers });
    const gauge = (name: string, help: string, pick: (s: GenerationSnapshot) => number): void => {
      new Gauge({ name, help, labelNames: ['model'], registers, collect() { this.reset(); for (const s of snapshots()) this.set({ model: s.model }, pick(s)); } });
    };
    gauge('sluice_generation_active_sequences', 'Sequences in the running batch.', (s) => s.activeSequences);
    gauge('sluice_generation_waiting_prompts', 'Prompts waiting for a place in the running batch (the model\'s one queue).', (s) => s.waitingPrompts);
    gauge('sluice_generation_kv_cache_budget_bytes', 'The KV cache\'s budget (kvCacheBytes, whole blocks).', (s) => s.kvBudgetBytes);
    new Gauge({
      name: 'sluice_generation_kv_cache_bytes', help: 'KV cache bytes held, by state (active: running sequences; cached: finished ones kept for prefix reuse).', labelNames: ['model', 'state'], registers,
      collect() {
        this.reset();
        for (const s of snapshots()) {
          this.set({ model: s.model, state: 'active' }, s.kvActiveBytes);
          this.set({ model: s.model, state: 'cached' }, s.kvCachedBytes);
        }
      },
    });
    const counter = (name: string, help: string, pick: (s: GenerationSnapshot) => number): void => {
      new Counter({ name, help, labelNames: ['model'], registers, collect() { this.reset(); for (const s of snapshots()) this.inc({ model: s.model }, pick(s)); } });
    };
    counter('sluice_generation_kv_cache_evicted_bytes_total', 'KV cache bytes of finished sequences evicted, least recently used first, to make room.', (s) => s.kvEvictedBytes);
    counter('sluice_generation_prefix_lookups_total', 'Prompts looked up in the KV cache for a reusable prefix.', (s) => s.prefixLookups);
    counter('sluice_generation_prefix_hits_total', 'Prompts that reused a cached prefix (hits / lookups is the prefix-cache hit ratio).', (s) => s.prefixHits);
  }
}
