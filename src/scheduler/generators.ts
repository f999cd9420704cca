/**
 * Opens generative models: each version gets its own ONNX Runtime session and a Generator (continuous
 * batching, KV cache) in the gateway process, beside the inline worker. A generative model is served by
 * no worker of the pool: its cache must stay with the session that computes it, step after step.
 */
import { intraOpThreads } from '../balancer/startup.ts';
import type { Config } from '../config/schema.ts';
import { toSluiceError } from '../core/errors.ts';
import type { ModelConfig } from '../core/model.ts';
import { Generator } from '../generation/engine.ts';
import type { GenerationMetrics } from '../telemetry/generation-metrics.ts';
import type { Logger } from '../telemetry/logger.ts';
import { SessionFactory, type SessionHandle } from '../worker/session.ts';

/** A generator and what closing it frees (its session). */
export interface LoadedGenerator {
  readonly generator: Generator;
  /** Lets running sequences finish, fails waiting ones, frees the cache and the session. */
  close(): Promise<void>;
}

export class GeneratorHost {
  readonly #factory: SessionFactory;
  readonly #metrics: GenerationMetrics;
  readonly #logger: Logger;
  readonly #open = new Set<Generator>();

  constructor(options: { readonly config: Config; readonly metrics: GenerationMetrics; readonly logger: Logger }) {
    const w = options.config.workers;
    this.#factory = new SessionFactory({ device: w.device, deviceId: w.gpus[0] ?? 0, cudaFallback: w.cudaFallback, intraOpThreads: intraOpThreads(options.config, 1), logger: options.logger });
    this.#metrics = options.metrics;
    this.#logger = options.logger;
    options.metrics.source = () => [...this.#open].map((g) => g.snapshot());
  }

  async open(model: string, version: string, config: ModelConfig, file: string): Promise<LoadedGenerator> {
    const session: SessionHandle = await this.#factory.open(model, file);
    const generator = new Generator({
      model, config: config.generation!, metrics: this.#metrics,
      runner: { run: async (inputs, outputs) => (await session.run(inputs, outputs)).outputs },
      onStepError: (err) => this.#logger.error({ model, version, err: err.message }, 'a generation step failed; its sequences fail'),
    });
    this.#open.add(generator);
    return {
      generator,
      close: async () => {
        try {
          await generator.close();
        } finally {
          this.#open.delete(generator);
          await session.release().catch((e: unknown) => this.#logger.warn({ model, version, err: toSluiceError(e).message }, 'releasing a generation session failed'));
        }
      },
    };
  }
}
