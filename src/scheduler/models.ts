import type { Config } from '../config/schema.ts';
import { ModelLoadFailed, ModelNotFound, ModelNotReady, ModelVersionNotFound, NoWorkerAvailable, toSluiceError } from '../core/errors.ts';
import type { Executor } from '../core/execution.ts';
import { runsOnWorkers, type ModelConfig, type ModelState } from '../core/model.ts';
import { readModelEntry, scanRepository, type ModelEntry } from '../repository/repository.ts';
import type { Logger } from '../telemetry/logger.ts';
import type { Metrics } from '../telemetry/metrics.ts';
import { DynamicBatcher } from './batcher.ts';
import type { ModelScheduler, Scheduler } from './scheduler.ts';
import { SequenceBatcher } from './sequence-batcher.ts';
import { RepeatScheduler } from './repeat.ts';
import type { Tenancy } from '../core/tenancy.ts';
import type { RequestMemory } from './memory.ts';
import { ModelStatsRecorder } from './stats.ts';
import { compareVersions } from './versions.ts';
import type { GeneratorHost, LoadedGenerator } from './generators.ts';
import { configFingerprintOf, fileFingerprintOf, fingerprintOf, sameExceptScheduling, unusableReason, versionStrings } from './model-entry.ts';
import { stepVersion } from './ensemble.ts';
import { withSource } from './sourced-executor.ts';
import { drainThenClose } from './drain.ts';

/** One version of a model as the service serves it. */
export interface VersionSlot {
  readonly version: string;
  state: ModelState;
  /** Why the version is not READY ('' when it is). */
  reason: string;
  /** The config it was loaded with (set once READY). */
  config: ModelConfig | undefined;
  /** The model file it was loaded from (size and mtime): a replaced file reloads the version. */
  file: string;
  /** Files uploaded with its load request (src/repository/uploads.ts): what workers are told to run. */
  source: string | undefined;
  batcher: ModelScheduler | undefined;
  /** A generative model's engine (config.generation), in place of a batcher. */
  generator?: LoadedGenerator;
}

/** One model name of the repository and what is loaded of it. */
export interface ModelSlot {
  readonly name: string;
  /** The entry last applied (undefined for a name only seen in a scan, never loaded). */
  entry: ModelEntry | undefined;
  /** Whether the control mode wants it loaded (readiness waits only on wanted models). */
  wanted: boolean;
  /** Why no version serves, when that is the model's fault rather than one version's. */
  reason: string;
  readonly versions: Map<string, VersionSlot>;
  /** Fingerprint of the applied entry: a poll reloads the model only when it changes. */
  fingerprint: string;
  /** Serializes load and unload of this model. */
  op: Promise<void>;
}

export interface ModelTableOptions {
  readonly config: Config;
  readonly executor: Executor;
  readonly metrics: Metrics;
  readonly logger: Logger;
  readonly memory?: RequestMemory;
  /** Where a batcher goes when it holds work and no slot is free (the service's ready list). */
  readonly onBlocked?: (batcher: Scheduler) => void;
  /** Told of a model whose load found no worker (starved.ts loads it again when workers change). */
  readonly onStarved?: (model: string) => void;
  /** Tenants' fair-queuing weights; absent (or config.fairQueuing off), every queue is one flow. */
  readonly tenancy?: Tenancy;
  /** Opens generative models; without it, a model with a generation section fails to load. */
  readonly generators?: GeneratorHost;
}

/**
 * The models of the repository and their loaded versions: loading (executor.load, so the model is hot
 * before the first request), unloading (after the version's queue drains), and reloading what a poll
 * found changed. A broken model or version is UNAVAILABLE with its reason while the rest serve.
 */
export class ModelTable {
  readonly #o: ModelTableOptions;
  readonly #slots = new Map<string, ModelSlot>();
  readonly #stats = new Map<string, ModelStatsRecorder>();
  readonly #retiring = new Set<ModelScheduler>();
  #closedError: Error | undefined;

  constructor(options: ModelTableOptions) {
    this.#o = options;
  }

  get(name: string): ModelSlot | undefined {
    return this.#slots.get(name);
  }

  slots(): IterableIterator<ModelSlot> {
    return this.#slots.values();
  }

  /** Every batcher that may still hold requests (READY and UNLOADING versions). */
  batchers(): ModelScheduler[] {
    const out: ModelScheduler[] = [];
    for (const slot of this.#slots.values()) for (const v of slot.versions.values()) if (v.batcher) out.push(v.batcher);
    // Batchers replaced by a scheduling change still send what they hold.
    out.push(...this.#retiring);
    return out;
  }

  /** Stats of a version; kept across reloads, as counters should be. */
  statsFor(name: string, version: string): ModelStatsRecorder {
    const key = `${name}\u0000${version}`;
    let s = this.#stats.get(key);
    if (!s) {
      s = new ModelStatsRecorder(name, version);
      this.#stats.set(key, s);
    }
    return s;
  }

  hasStats(name: string, version: string): boolean {
    return this.#stats.has(`${name}\u0000${version}`);
  }

  /** Scans the repository and records every name it finds (without loading anything). */
  async scan(): Promise<Map<string, ModelEntry>> {
    const entries = await scanRepository(this.#o.config.modelRepository);
    for (const [name, entry] of entries) {
      const slot = this.#ensure(name);
      // A loaded model keeps the entry it was loaded from; others show what is on disk now.
      if (!slot.wanted) slot.entry = entry;
    }
    // Names gone from disk that hold nothing loaded are forgotten (loaded ones leave through unload).
    for (const slot of [...this.#slots.values()]) {
      if (!entries.has(slot.name) && !slot.wanted && slot.versions.size === 0) this.#slots.delete(slot.name);
    }
    return entries;
  }

  /** Whether any wanted model still has a version loading. */
  loading(): boolean {
    for (const slot of this.#slots.values()) {
      if (!slot.wanted) continue;
      for (const v of slot.versions.values()) if (v.state === 'LOADING') return true;
    }
    return false;
  }

  /**
   * Loads a model (reading its entry from disk when none is given); queued behind any other change to
   * it. Resolves with why the entry was not applied when the versions already serving were kept.
   */
  async load(name: string, entry?: ModelEntry): Promise<string | undefined> {
    // A name the repository lacks must not become a slot: hasModel() bounds metric labels by it.
    const first = entry ?? (this.#slots.has(name) ? undefined : await readModelEntry(this.#o.config.modelRepository, name));
    const slot = this.#ensure(name);
    let kept: string | undefined;
    await this.#serialize(slot, async () => {
      kept = await this.#apply(slot, first ?? (await readModelEntry(this.#o.config.modelRepository, name)));
    });
    return kept;
  }

  /** Unloads every version once its queue drains; the name stays known (state UNAVAILABLE, 'unloaded'). */
  unload(name: string, forget = false): Promise<void> {
    const slot = this.#slots.get(name);
    if (!slot) return Promise.resolve();
    return this.#serialize(slot, async () => {
      slot.wanted = false;
      await Promise.all([...slot.versions.keys()].map((v) => this.#retire(slot, v)));
      slot.reason = 'unloaded';
      if (forget) this.#slots.delete(name);
    });
  }

  /** Applies a rescan: new and changed models load, vanished ones unload. */
  async sync(entries: ReadonlyMap<string, ModelEntry>, wanted: (name: string) => boolean): Promise<void> {
    const work: Promise<void>[] = [];
    for (const slot of [...this.#slots.values()]) {
      if (!entries.has(slot.name)) work.push(this.unload(slot.name, true));
    }
    for (const [name, entry] of entries) {
      const slot = this.#ensure(name);
      if (!wanted(name)) continue;
      if (!slot.wanted || slot.fingerprint !== fingerprintOf(entry)) work.push(this.load(name, entry).then(() => undefined));
    }
    await Promise.all(work);
  }

  /**
   * The ready version a request for `version` ('' = the latest ready one) runs on. Throws
   * ModelVersionNotFound for a version the model does not serve, ModelNotReady for one not READY.
   */
  resolve(slot: ModelSlot, version: string): VersionSlot {
    const name = slot.name;
    if (version === '') {
      let best: VersionSlot | undefined;
      for (const v of slot.versions.values()) {
        if (v.state === 'READY' && (!best || compareVersions(v.version, best.version) > 0)) best = v;
      }
      if (!best) throw ModelNotReady(name, this.whyNotReady(slot));
      return best;
    }
    const v = slot.versions.get(version);
    if (!v) {
      // On disk but not loaded (unloaded, or its model failed as a whole): not ready, rather than unknown.
      if (slot.entry?.versions.some((e) => e.version === version)) throw ModelNotReady(name, this.whyNotReady(slot));
      throw ModelVersionNotFound(name, version);
    }
    if (v.state !== 'READY') throw ModelNotReady(name, `version ${version} is ${v.state}${v.reason ? `: ${v.reason}` : ''}`);
    return v;
  }

  whyNotReady(slot: ModelSlot): string {
    if (slot.reason) return slot.reason;
    const reasons = [...slot.versions.values()].filter((v) => v.state !== 'READY').map((v) => `version ${v.version} is ${v.state}${v.reason ? `: ${v.reason}` : ''}`);
    return reasons.length > 0 ? reasons.join('; ') : 'not loaded';
  }

  /** Rejects every queued request and stops the batchers' timers. */
  close(error: Error): void {
    this.#closedError = error;
    for (const b of this.batchers()) b.close(error);
  }

  #ensure(name: string): ModelSlot {
    let slot = this.#slots.get(name);
    if (!slot) {
      slot = { name, entry: undefined, wanted: false, reason: 'unloaded', versions: new Map(), fingerprint: '', op: Promise.resolve() };
      this.#slots.set(name, slot);
    }
    return slot;
  }

  #serialize(slot: ModelSlot, fn: () => Promise<void>): Promise<void> {
    const run = slot.op.then(fn);
    // The chain continues past a failure; the caller still sees it through `run`.
    slot.op = run.catch(() => undefined);
    return run;
  }

  /**
   * Brings a model to its entry. New versions load while the old ones keep serving, and the old ones
   * retire only once a wanted version is ready: a version rollover has no gap, and when every new
   * version fails to load the old ones stay (as Triton keeps a model whose reload failed). A changed
   * configuration applies to every version, so versions already serving reload in place, with a gap.
   */
  async #apply(slot: ModelSlot, entry: ModelEntry): Promise<string | undefined> {
    const { logger } = this.#o;
    const config = entry.config;
    // The repository already applied the version policy: these are the versions to serve.
    const want = config && !entry.error ? versionStrings(entry) : [];
    const serving = [...slot.versions.values()].filter((v) => v.state === 'READY').map((v) => v.version);
    const unusable = unusableReason(entry, want);
    if (slot.wanted && unusable !== '' && serving.length > 0) {
      // A model that serves and then reads back broken (a bad file or config dropped in) keeps what it
      // has until the repository changes again; the fingerprint is taken so that polls stay quiet.
      slot.fingerprint = fingerprintOf(entry);
      const reason = unusable;
      logger.error({ model: slot.name, reason, keeping: serving }, 'the model in the repository cannot be loaded; the versions already serving keep serving');
      return `${reason}; version(s) ${serving.join(', ')} keep serving`;
    }
    const configChanged = configFingerprintOf(slot.entry) !== configFingerprintOf(entry);
    const previous = slot.entry?.error === '' ? slot.entry.config : undefined;
    const schedulingOnly = configChanged && previous !== undefined && config !== undefined && sameExceptScheduling(previous, config);
    slot.entry = entry;
    slot.wanted = true;
    slot.fingerprint = fingerprintOf(entry);
    for (const w of entry.warnings) logger.warn({ model: slot.name }, w);
    if (!config || unusable !== '') {
      slot.reason = unusable;
      logger.error({ model: slot.name, reason: slot.reason }, 'model is unavailable');
      await Promise.all([...slot.versions.keys()].map((v) => this.#retire(slot, v)));
      return;
    }
    slot.reason = '';
    // Same version, new content (its file was replaced, or the configuration changed in what the
    // workers use): reloaded in place. A change to scheduling alone swaps the batcher, with no gap.
    const reload = [...slot.versions.values()].filter((v) => want.includes(v.version) && v.state !== 'LOADING' && ((configChanged && !schedulingOnly) || v.file !== fileFingerprintOf(entry, v.version)));
    await Promise.all(reload.map((v) => this.#retire(slot, v.version)));
    // An ensemble loads the models of its steps first (as Triton does), and serves only with them.
    slot.reason = config.ensembleScheduling ? await this.#loadSteps(config) : '';
    if (slot.reason !== '') return void logger.error({ model: slot.name, reason: slot.reason }, 'ensemble is unavailable');
    if (schedulingOnly) {
      for (const v of slot.versions.values()) if (want.includes(v.version) && v.state === 'READY') this.#swapBatcher(slot, v, config);
    }
    await Promise.all(want.map((v) => this.#loadVersion(slot, v, config, fileFingerprintOf(entry, v))));
    const old = [...slot.versions.values()].filter((v) => !want.includes(v.version));
    if (!want.some((v) => slot.versions.get(v)?.state === 'READY') && old.some((v) => v.state === 'READY')) {
      const keeping = old.filter((v) => v.state === 'READY').map((v) => v.version);
      const why = want.map((v) => `version ${v}: ${slot.versions.get(v)?.reason ?? 'not loaded'}`).join('; ');
      logger.error({ model: slot.name, wanted: want, keeping }, 'no wanted version loaded; the versions already serving keep serving');
      return `${why}; version(s) ${keeping.join(', ')} keep serving`;
    }
    await Promise.all(old.map((v) => this.#retire(slot, v.version)));
    return undefined;
  }

  async #loadVersion(slot: ModelSlot, version: string, config: ModelConfig, file: string): Promise<void> {
    const existing = slot.versions.get(version);
    if (existing && existing.state === 'READY') return;
    const source = slot.entry?.versions.find((v) => v.version === version)?.source;
    const vs: VersionSlot = { version, state: 'LOADING', reason: '', config: undefined, file, source, batcher: undefined };
    slot.versions.set(version, vs);
    const started = performance.now();
    try {
      // An ensemble runs on no worker: the models of its steps do. A generative model runs beside the
      // gateway, where its KV cache stays between steps.
      if (config.generation) vs.generator = await this.#openGenerator(slot, version, config);
      else if (runsOnWorkers(config)) await this.#executorOf(vs).load(slot.name, version);
    } catch (e) {
      const err = toSluiceError(e);
      vs.state = 'UNAVAILABLE';
      vs.reason = err.message;
      if (err.code === NoWorkerAvailable.code) this.#o.onStarved?.(slot.name);
      this.#o.logger.error({ model: slot.name, version, reason: vs.reason }, 'model version failed to load');
      return;
    }
    if (this.#closedError) {
      await vs.generator?.close();
      vs.state = 'UNAVAILABLE';
      vs.reason = 'the server is shutting down';
      return;
    }
    vs.config = config;
    vs.batcher = config.ensembleScheduling || config.generation ? undefined : this.#newBatcher(slot.name, vs, config);
    vs.state = 'READY';
    this.#o.logger.info({ model: slot.name, version, ms: Math.round(performance.now() - started) }, 'model version is ready');
  }

  async #openGenerator(slot: ModelSlot, version: string, config: ModelConfig): Promise<LoadedGenerator> {
    const file = slot.entry?.versions.find((v) => v.version === version)?.file;
    if (!this.#o.generators || file === undefined) throw ModelLoadFailed(slot.name, 'generative models are not served here');
    return this.#o.generators.open(slot.name, version, config, file);
  }

  /** Loads the step models of an ensemble that nothing loads yet; why one cannot serve ('' when all can). */
  async #loadSteps(config: ModelConfig): Promise<string> {
    const steps = config.ensembleScheduling?.steps ?? [];
    // A step model already wanted may be loading right now (every model loads at start): wait for that.
    await Promise.all([...new Set(steps.map((s) => s.modelName))].map((n) => this.#slots.get(n)?.wanted ? this.#slots.get(n)!.op : this.load(n).catch(() => undefined)));
    for (const s of steps) {
      const slot = this.#slots.get(s.modelName);
      try {
        if (!slot) throw ModelNotFound(s.modelName);
        this.resolve(slot, stepVersion(s));
      } catch (e) {
        return `step model '${s.modelName}' cannot serve: ${toSluiceError(e).message}`;
      }
    }
    return '';
  }

  /** What a version's batches, load and unload go to: the pool, told the upload's source when it has one. */
  #executorOf(vs: VersionSlot): Executor {
    return vs.source === undefined ? this.#o.executor : withSource(this.#o.executor, vs.source);
  }

  #newBatcher(model: string, vs: VersionSlot, config: ModelConfig): ModelScheduler {
    const { version } = vs;
    const executor = this.#executorOf(vs);
    if (config.backend === 'repeat') return new RepeatScheduler({ model, version, config, stats: this.statsFor(model, version) });
    if (config.sequenceBatching) {
      const { metrics, logger, onBlocked } = this.#o;
      return new SequenceBatcher({ model, version, config, executor, metrics, logger, stats: this.statsFor(model, version), ...(onBlocked ? { onBlocked } : {}) });
    }
    return new DynamicBatcher({
      model, version, config,
      executor, metrics: this.#o.metrics, stats: this.statsFor(model, version),
      logger: this.#o.logger, ...(this.#o.memory ? { memory: this.#o.memory } : {}),
      ...(this.#o.onBlocked ? { onBlocked: this.#o.onBlocked } : {}),
      ...(this.#o.tenancy && this.#o.config.fairQueuing ? { weightOf: this.#o.tenancy.weightOf.bind(this.#o.tenancy) } : {}),
    });
  }

  /**
   * New requests go to a batcher built from the new config at once; the old one keeps dispatching
   * what it already holds (batchers() still lists it) until it is empty.
   */
  #swapBatcher(slot: ModelSlot, vs: VersionSlot, config: ModelConfig): void {
    const old = vs.batcher;
    vs.config = config;
    vs.batcher = config.ensembleScheduling || config.generation ? undefined : this.#newBatcher(slot.name, vs, config);
    this.#o.logger.info({ model: slot.name, version: vs.version }, 'scheduling settings changed; new requests use them');
    if (!old) return;
    this.#retiring.add(old);
    void drainThenClose(old, this.#o.config.drainTimeoutMs, ModelNotReady(slot.name, `version ${vs.version} was reconfigured`)).finally(() => this.#retiring.delete(old));
  }

  /** Stops routing to a version, lets its queue drain (bounded by the drain timeout), then unloads it. */
  async #retire(slot: ModelSlot, version: string): Promise<void> {
    const vs = slot.versions.get(version);
    if (!vs) return;
    vs.state = 'UNLOADING';
    if (vs.batcher) await drainThenClose(vs.batcher, this.#o.config.drainTimeoutMs, ModelNotReady(slot.name, `version ${version} was unloaded`));
    try {
      if (vs.generator) await vs.generator.close();
      else if (!vs.config || runsOnWorkers(vs.config)) await this.#executorOf(vs).unload(slot.name, version);
    } catch (e) {
      this.#o.logger.warn({ model: slot.name, version, err: toSluiceError(e).message }, 'unloading a model version failed');
    }
    if (slot.versions.get(version) === vs) slot.versions.delete(version);
  }
}
