import type { Config } from '../config/schema.ts';
import {
  ConfigOverrideRejected,
  DecoupledModel,
  InvalidModelName,
  ModelControlDisabled,
  ModelLoadFailed,
  SequenceParameter,
  ShuttingDown,
  isSluiceError,
  type SluiceError,
} from '../core/errors.ts';
import type { Executor } from '../core/execution.ts';
import type { GenerateRequest, GenerateResponse, InferRequest, InferResponse, InferenceService, ServerMetadata } from '../core/inference.ts';
import { MODEL_NAME_PATTERN, type ModelConfig, type ModelMetadata, type ModelStats, type RepositoryIndexEntry } from '../core/model.ts';
import type { Logger } from '../telemetry/logger.ts';
import type { Metrics, ResponseCacheSnapshot } from '../telemetry/metrics.ts';
import type { Tenancy } from '../core/tenancy.ts';
import { ModelTable, type VersionSlot } from './models.ts';
import { ResponseCache, type CacheTarget } from './response-cache.ts';
import { checkClassification, classify } from './classify.ts';
import { reloadWanted, StarvedLoads } from './starved.ts';
import { runEnsemble, stepVersion } from './ensemble.ts';
import { refuseInferOnGenerative, runGenerate } from './generate.ts';
import type { GeneratorHost } from './generators.ts';
import { readConfigOverride } from '../repository/config-override.ts';
import { readModelEntry } from '../repository/repository.ts';
import type { UploadStore } from '../repository/uploads.ts';
import { sourcesOf, stageUpload } from './uploads.ts';
import { RequestMemory } from './memory.ts';
import { ReadyList } from './ready-list.ts';
import { activeSequences, queueDepths, queueLimits, repositoryIndexOf } from './table-views.ts';
import { validateRequest } from './validate.ts';
import { levelCount } from './policy.ts';
import { EXTENSIONS, packageVersion } from './server-info.ts';
import { checkVersion, configOf, metadataOf, slotOf, statsOf } from './lookup.ts';

/** What GatewayService is built from (the composition root passes the balancer's WorkerPool as executor). */
export interface GatewayServiceOptions {
  readonly config: Config;
  readonly executor: Executor;
  readonly metrics: Metrics;
  readonly logger: Logger;
  /** Tenants' rate limits and fair-queuing weights (the access layer's); absent = everyone anonymous. */
  readonly tenancy?: Tenancy;
  /** Opens generative models (the generate extension); absent, they fail to load. */
  readonly generators?: GeneratorHost;
  /** Where model files sent with a load are staged; absent, such a load is refused. */
  readonly uploads?: UploadStore;
}


/**
 * The InferenceService behind both front doors: model lifecycle per the control mode (none | explicit
 * | poll), readiness, metadata, statistics, and inference through each version's dynamic batcher.
 * Free slots go round-robin to the models whose queues wait for one (the ready list), so none starves.
 */
export class GatewayService implements InferenceService {
  readonly #o: GatewayServiceOptions;
  readonly #table: ModelTable;
  readonly #memory: RequestMemory;
  readonly #version = packageVersion();
  #started = false;
  #draining = false;
  #closed = false;
  #accepted = 0;
  #drainWaiters: (() => void)[] = [];
  #pollTimer: NodeJS.Timeout | undefined;
  #polling = false;
  readonly #ready = new ReadyList();
  /** Absent without --cache-config: then no model is cached, whatever its config says (as in Triton). */
  readonly #cache: ResponseCache | undefined;
  /** Numbers each load of a version, so that a reload in place never serves the old load's answers. */
  readonly #generations = new WeakMap<VersionSlot, number>();
  #generation = 0;
  readonly #starved: StarvedLoads;

  constructor(options: GatewayServiceOptions) {
    this.#o = options;
    const cacheBytes = options.config.responseCache.sizeBytes;
    this.#cache = cacheBytes > 0 ? new ResponseCache({ limitBytes: cacheBytes, metrics: options.metrics }) : undefined;
    this.#memory = new RequestMemory(options.config.maxRequestMemoryBytes);
    // A model whose load found no worker loads again once workers change (the drain signal says so).
    this.#starved = new StarvedLoads((name) => (this.#draining || this.#closed ? Promise.resolve() : reloadWanted(this.#table, name, options.logger)));
    this.#table = new ModelTable({ ...options, memory: this.#memory, onBlocked: (b) => this.#ready.add(b), onStarved: (name) => this.#starved.add(name) });
    options.executor.onDrain(() => {
      this.#ready.drain();
      this.#starved.kick();
    });
  }

  /** Scans the repository and loads models per the control mode; resolves once every load settled. */
  async start(): Promise<void> {
    const { config, logger } = this.#o;
    const entries = await this.#table.scan();
    for (const name of config.loadModels) {
      if (!entries.has(name)) logger.error({ model: name }, `--load-model: '${name}' is not in the model repository`);
    }
    await Promise.all([...entries].filter(([name]) => this.#wanted(name)).map(([name, entry]) => this.#table.load(name, entry).catch(() => undefined)));
    this.#started = true;
    this.#reportCache();
    if (config.modelControlMode === 'poll' && !this.#closed) {
      this.#pollTimer = setInterval(() => void this.#poll(), config.repositoryPollSeconds * 1000);
      this.#pollTimer.unref();
    }
  }

  serverMetadata(): ServerMetadata {
    return { name: this.#o.config.serverName, version: this.#version, extensions: this.#o.config.sharedMemory === 'system' ? [...EXTENSIONS, 'system_shared_memory'] : EXTENSIONS };
  }

  isLive(): boolean {
    return !this.#closed;
  }

  isReady(): boolean {
    return this.#started && !this.#draining && !this.#closed && !this.#table.loading();
  }

  hasModel(name: string): boolean {
    return this.#table.get(name) !== undefined;
  }

  modelMetadata(name: string, version: string): ModelMetadata {
    return metadataOf(this.#table, name, version);
  }

  modelConfig(name: string, version: string): ModelConfig {
    return configOf(this.#table, name, version).config;
  }

  modelStats(name: string, version: string): readonly ModelStats[] {
    return statsOf(this.#table, name, version);
  }

  modelReady(name: string, version: string): boolean {
    return !this.#draining && this.#versionReady(name, version);
  }

  /** Whether the version is loaded and, for an ensemble, the models of all its steps are ready. */
  #versionReady(name: string, version: string): boolean {
    const slot = this.#table.get(name);
    if (!slot) return false;
    const v = version === '' ? [...slot.versions.values()].find((x) => x.state === 'READY') : slot.versions.get(version);
    if (v?.state !== 'READY') return false;
    return v.config?.ensembleScheduling?.steps.every((s) => this.#versionReady(s.modelName, stepVersion(s))) ?? true;
  }

  async repositoryIndex(readyOnly: boolean): Promise<readonly RepositoryIndexEntry[]> {
    // A fresh scan, so models added to the repository since start show up (as Triton's index does).
    await this.#table.scan().catch((e: unknown) => this.#o.logger.warn({ err: String(e) }, 'repository scan failed'));
    return repositoryIndexOf(this.#table.slots(), readyOnly, (m, ver) => this.#versionReady(m, ver));
  }

  async loadModel(name: string, options: { readonly config?: string; readonly files?: ReadonlyMap<string, Uint8Array> } = {}): Promise<void> {
    this.#checkControl(name);
    if (this.#draining || this.#closed) throw ShuttingDown();
    let kept: string | undefined;
    try {
      // An override that does not parse is the request's error (400); the model is not touched.
      const override = options.config === undefined ? undefined : readConfigOverride(options.config);
      const entry = options.files !== undefined && options.files.size > 0
        ? await stageUpload(this.#o.uploads, this.#o.config.modelRepository, name, options.config, options.files)
        : override && (await readModelEntry(this.#o.config.modelRepository, name, override));
      kept = await this.#table.load(name, entry);
    } catch (e) {
      // An unknown or invalid name keeps its own error (404 / 400); anything else is a failed load.
      if (isSluiceError(e) && (e.kind === 'NOT_FOUND' || e.kind === 'INVALID_ARG' || e.kind === 'RESOURCE_EXHAUSTED')) throw e;
      throw ModelLoadFailed(name, e instanceof Error ? e.message : String(e));
    } finally {
      // Staged files no version runs any more (replaced, or an upload that did not load) go.
      await this.#o.uploads?.retain(name, sourcesOf(this.#table.get(name)));
    }
    // A failed reload leaves the model as it was, serving, and says so. With an override, the override
    // is what did not fit the files (the same files load without it).
    const failed = options.config === undefined ? ModelLoadFailed : ConfigOverrideRejected;
    if (kept !== undefined) throw failed(name, kept);
    const slot = slotOf(this.#table, name);
    if (![...slot.versions.values()].some((v) => v.state === 'READY')) throw failed(name, this.#table.whyNotReady(slot));
  }

  async unloadModel(name: string): Promise<void> {
    this.#checkControl(name);
    slotOf(this.#table, name);
    await this.#table.unload(name);
    await this.#o.uploads?.retain(name, sourcesOf(this.#table.get(name)));
  }

  // Not async itself: an ordinary request pays one plain call here, no extra promise.
  infer(request: InferRequest): Promise<InferResponse> {
    if (this.#draining || this.#closed) return Promise.reject(ShuttingDown());
    return this.#infer(request, false);
  }

  async generate(request: GenerateRequest): Promise<GenerateResponse> {
    if (this.#draining || this.#closed) throw ShuttingDown();
    const slot = slotOf(this.#table, request.model);
    if (request.version !== '') checkVersion(slot, request.version);
    const v = this.#table.resolve(slot, request.version);
    const tenancy = request.tenant ? this.#o.tenancy : undefined;
    admitTenant(tenancy, request.tenant, 1);
    this.#accepted++;
    try {
      return await runGenerate(v, request);
    } finally {
      tenancy?.leave(request.tenant!);
      this.#release();
    }
  }

  async inferStream(request: InferRequest, emit: (response: InferResponse, final: boolean) => void): Promise<void> {
    if (this.#draining || this.#closed) throw ShuttingDown();
    const slot = slotOf(this.#table, request.model);
    if (request.version !== '') checkVersion(slot, request.version);
    const v = this.#table.resolve(slot, request.version);
    const stream = v.batcher?.stream?.bind(v.batcher);
    if (!v.config!.decoupled || !stream) return emit(await this.#infer(request, false), true);
    const plan = validateRequest(v.config!, request);
    this.#accepted++;
    try {
      await stream(request, plan, (r) => emit(r, false));
    } finally {
      this.#release();
    }
  }

  /**
   * A request past the drain check. A step of an ensemble comes here too: it was accepted with its
   * ensemble (a drain must let it finish) and its rows were charged to the tenant once, there.
   */
  async #infer(request: InferRequest, step: boolean): Promise<InferResponse> {
    const slot = slotOf(this.#table, request.model);
    if (request.version !== '') checkVersion(slot, request.version);
    const v = this.#table.resolve(slot, request.version);
    refuseInferOnGenerative(v, request.model);
    if (v.config!.decoupled) throw DecoupledModel(request.model);
    if (request.sequence && !v.config!.sequenceBatching) throw SequenceParameter('sequence_id', `model '${request.model}' has no sequence_batching: its requests stand alone`);
    const plan = validateRequest(v.config!, request);
    if (request.classification) checkClassification(v.config!, request.classification);
    // A tenant's request counts against its bounds once (an ensemble's steps ride on the ensemble's).
    const tenancy = request.tenant && !step ? this.#o.tenancy : undefined;
    if (tenancy) {
      admitTenant(tenancy, request.tenant, plan.rows);
      this.#o.metrics.tenantRows.inc({ tenant: request.tenant! }, plan.rows);
    }
    request.trace?.mark('VALIDATE_END');
    this.#accepted++;
    try {
      // One property test for a model without the cache: no key, no hash, no allocation on its path.
      const cache = this.#cache;
      // An ensemble request is never cached itself (its steps may be): it runs its steps here.
      const response = v.config!.ensembleScheduling !== undefined
        ? await runEnsemble({ config: v.config!, version: v.version, rows: plan.rows, stats: this.#table.statsFor(request.model, v.version), infer: (r) => this.#infer(r, true), levelsOf: (m, ver) => this.#levelsOf(m, ver) }, request)
        : cache !== undefined && v.config!.responseCache?.enable === true
        ? await cache.serve(this.#cacheTarget(request.model, v), request, plan, () => v.batcher!.enqueue(request, plan))
        : await v.batcher!.enqueue(request, plan);
      // The classification extension answers the top K in place of the outputs that asked for it.
      return request.classification ? { ...response, outputs: classify(v.config!, response.outputs, request.classification) } : response;
    } finally {
      tenancy?.leave(request.tenant!);
      this.#release();
    }
  }

  /**
   * Sheds a request from its headers alone when its model's queue would refuse it anyway (full, or a
   * wait past the budget): the front door answers without reading or decoding the body. Anything the
   * headers cannot settle (an unknown model or version, a draining gateway) is left to infer().
   */
  refuseOnArrival(model: string, version: string, arrivalMs: number, tenant = ''): SluiceError | undefined {
    if (this.#draining || this.#closed) return undefined;
    // The tenant's own limit first: it is charged whatever the model's queue would say.
    const limited = tenant === '' ? undefined : this.#o.tenancy?.arrive(tenant, arrivalMs);
    if (limited) return limited;
    if (!this.hasModel(model)) return undefined;
    try {
      const slot = slotOf(this.#table, model);
      if (version !== '') checkVersion(slot, version);
      return this.#table.resolve(slot, version).batcher?.refuseOnArrival(arrivalMs, tenant);
    } catch {
      return undefined;
    }
  }

  /** The response cache's occupancy (sluice_response_cache_* gauges); undefined without --cache-config. */
  responseCacheStats(): ResponseCacheSnapshot | undefined {
    return this.#cache?.snapshot();
  }

  /** Input bytes held by accepted, unanswered requests, and the limit (--max-request-memory). */
  requestMemory(): { readonly heldBytes: number; readonly limitBytes: number } {
    return { heldBytes: this.#memory.heldBytes, limitBytes: this.#memory.limitBytes };
  }

  /** Queue depth per model (summed over its versions), for the sluice_queue_depth gauge. */
  queueDepths(): IterableIterator<readonly [string, number]> {
    return queueDepths(this.#table.slots());
  }

  /** Queue capacity per model (every level of every live version), for the sluice_queue_max_size gauge. */
  queueLimits(): IterableIterator<readonly [string, number]> {
    return queueLimits(this.#table.slots());
  }

  /** Active sequences per sequence model, for the sluice_sequences_active gauge. */
  activeSequences(): IterableIterator<readonly [string, number]> {
    return activeSequences(this.#table.slots());
  }

  /** Refuses new requests (ShuttingDown, and not ready) and resolves once every accepted request is answered. */
  drain(): Promise<void> {
    this.#draining = true;
    if (this.#accepted === 0) return Promise.resolve();
    return new Promise((resolve) => this.#drainWaiters.push(resolve));
  }

  /** Stops the poll timer and the batchers' timers; anything still queued is rejected with ShuttingDown. */
  close(): void {
    this.#closed = true;
    this.#starved.close();
    if (this.#pollTimer) clearInterval(this.#pollTimer);
    this.#pollTimer = undefined;
    this.#table.close(ShuttingDown());
  }

  #wanted(name: string): boolean {
    const { modelControlMode, loadModels } = this.#o.config;
    if (modelControlMode === 'explicit') return loadModels.includes(name);
    return loadModels.length === 0 || loadModels.includes(name);
  }

  async #poll(): Promise<void> {
    if (this.#polling || this.#closed || this.#draining) return;
    this.#polling = true;
    try {
      const entries = await this.#table.scan();
      if (!this.#closed) await this.#table.sync(entries, (name) => this.#wanted(name));
    } catch (e) {
      this.#o.logger.warn({ err: e instanceof Error ? e.message : String(e) }, 'repository poll failed');
    } finally {
      this.#polling = false;
    }
  }

  #cacheTarget(model: string, v: VersionSlot): CacheTarget {
    let generation = this.#generations.get(v);
    if (generation === undefined) {
      generation = ++this.#generation;
      this.#generations.set(v, generation);
    }
    return { model, version: v.version, generation, stats: this.#table.statsFor(model, v.version) };
  }

  /** Said once at start: a model that enables response_cache on a gateway without one would be a silent surprise. */
  #reportCache(): void {
    const { config, logger } = this.#o;
    const asking = [...this.#table.slots()].filter((s) => s.entry?.config?.responseCache?.enable === true).map((s) => s.name).sort();
    if (this.#cache) logger.info({ sizeBytes: config.responseCache.sizeBytes, models: asking }, 'response cache is on');
    else if (asking.length > 0) logger.warn({ models: asking }, 'these models enable response_cache, but the gateway has no response cache (no --cache-config): their answers are not cached');
  }

  /** A model's priority levels, for an ensemble step; undefined where its config cannot be read. */
  #levelsOf(model: string, version: string): number | undefined {
    try {
      return levelCount(configOf(this.#table, model, version).config);
    } catch {
      return undefined;
    }
  }

  /** An accepted request was answered: the last one wakes a drain. */
  #release(): void {
    if (--this.#accepted === 0 && this.#draining) this.#wakeDrain();
  }

  #wakeDrain(): void {
    const waiters = this.#drainWaiters;
    this.#drainWaiters = [];
    for (const w of waiters) w();
  }

  #checkControl(name: string): void {
    if (this.#o.config.modelControlMode !== 'explicit') throw ModelControlDisabled();
    if (!MODEL_NAME_PATTERN.test(name)) throw InvalidModelName(name);
  }
}

/**
 * Counts a request against its tenant's bounds: one more in flight (leave() once it is answered), its
 * rows from the row bucket. Throws the refusal (RATE_LIMITED) with nothing counted.
 */
function admitTenant(tenancy: Tenancy | undefined, tenant: string | undefined, rows: number): void {
  if (!tenancy || !tenant) return;
  const busy = tenancy.enter(tenant);
  if (busy) throw busy;
  const refused = tenancy.takeRows(tenant, rows, performance.now());
  if (!refused) return;
  tenancy.leave(tenant);
  throw refused;
}
