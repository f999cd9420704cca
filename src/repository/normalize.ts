import { BUILTIN_BACKENDS, DEFAULT_MAX_EXPECTED_WAIT_US, DEFAULT_MAX_QUEUE_SIZE, DEFAULT_PREFERRED_BATCH_SIZES } from '../core/model.ts';
import type { DynamicBatchingConfig, InstanceGroup, ModelConfig, QueuePolicy, TensorConfig, VersionPolicy, WarmupSpec } from '../core/model.ts';
import { configError } from './draft.ts';
import { generationConfig } from './generation.ts';
import { sequenceBatchingConfig } from './sequence-config.ts';
import type { ConfigDraft, QueuePolicyDraft } from './draft.ts';

/** The signature settled by autocomplete.ts: batch size and the full list of inputs and outputs. */
export interface Signature {
  readonly maxBatchSize: number;
  readonly inputs: readonly TensorConfig[];
  readonly outputs: readonly TensorConfig[];
}

// Messages name fields the way the config file spells them.
const PBTXT_NAMES: Readonly<Record<string, string>> = {
  maxBatchSize: 'max_batch_size',
  'dynamicBatching.preferredBatchSizes': 'dynamic_batching.preferred_batch_size',
  'dynamicBatching.allowedBatchSizes': 'dynamic_batching.allowed_batch_sizes',
  'dynamicBatching.priorityLevels': 'dynamic_batching.priority_levels',
  'dynamicBatching.defaultPriorityLevel': 'dynamic_batching.default_priority_level',
  'dynamicBatching.priorityQueuePolicy': 'dynamic_batching.priority_queue_policy',
  instanceGroups: 'instance_group',
  warmup: 'model_warmup',
  ensembleScheduling: 'ensemble_scheduling',
};

function spell(source: ConfigDraft['source'] | undefined, path: string): string {
  if (source !== 'pbtxt') return path;
  for (const key of Object.keys(PBTXT_NAMES).sort((a, b) => b.length - a.length)) {
    if (path === key || path.startsWith(`${key}.`) || path.startsWith(`${key}[`)) return (PBTXT_NAMES[key] ?? key) + path.slice(key.length);
  }
  return path;
}

class Checker {
  readonly #draft: ConfigDraft | undefined;
  constructor(draft: ConfigDraft | undefined) {
    this.#draft = draft;
  }

  fail(path: string, reason: string): never {
    throw configError(this.#draft?.file ?? 'the auto-completed config', spell(this.#draft?.source, path), reason);
  }
}

/**
 * Checks what the config says about the model itself before anything reads the model file: the name
 * must be the folder's, and the platform / backend must be ONNX Runtime.
 */
export function checkIdentity(folderName: string, draft: ConfigDraft | undefined): void {
  if (draft === undefined) return;
  const check = new Checker(draft);
  if (draft.name !== undefined && draft.name !== '' && draft.name !== folderName) {
    check.fail('name', `the config names model '${draft.name}' but it lies in the folder '${folderName}'`);
  }
  const ensemble = draft.platform === 'ensemble';
  if (draft.platform !== undefined && draft.platform !== '' && draft.platform !== 'onnxruntime_onnx' && !ensemble) {
    check.fail('platform', `'${draft.platform}' is not supported: sluice serves ONNX models (platform onnxruntime_onnx) and ensembles of them (platform ensemble)`);
  }
  if (ensemble !== (draft.ensembleScheduling !== undefined)) {
    check.fail(ensemble ? 'platform' : 'ensembleScheduling', ensemble ? 'an ensemble needs ensemble_scheduling' : 'ensemble_scheduling needs platform "ensemble"');
  }
  if (ensemble) return;
  if (draft.backend !== undefined && draft.backend !== '' && draft.backend !== 'onnxruntime' && !BUILTIN_BACKENDS.includes(draft.backend)) {
    check.fail('backend', `'${draft.backend}' is not supported: sluice serves ONNX models (backend onnxruntime) and the built-in backend ${BUILTIN_BACKENDS.map((b) => `'${b}'`).join(', ')}`);
  }
}

/** Sorted, without repeats, each within 1..max. */
function batchSizes(check: Checker, path: string, sizes: readonly number[], maxBatchSize: number): number[] {
  if (sizes.length > 0 && maxBatchSize === 0) check.fail(path, 'batch sizes need max_batch_size > 0 (this model does not batch)');
  for (const s of sizes) if (s > maxBatchSize) check.fail(path, `${s} exceeds max_batch_size ${maxBatchSize}`);
  return [...new Set(sizes)].sort((a, b) => a - b);
}

/**
 * Sluice's default preferred sizes (8, 16, 32) clipped to the model's maximum: sizes above it become the
 * maximum itself, so a full batch always counts as preferred (max 20 gives 8, 16, 20; max 4 gives 4).
 */
export function defaultPreferredBatchSizes(maxBatchSize: number): number[] {
  if (maxBatchSize === 0) return [];
  return [...new Set(DEFAULT_PREFERRED_BATCH_SIZES.map((s) => Math.min(s, maxBatchSize)))];
}

function queuePolicy(q: QueuePolicyDraft | undefined, base: QueuePolicy): QueuePolicy {
  return {
    timeoutAction: q?.timeoutAction ?? base.timeoutAction,
    defaultTimeoutUs: q?.defaultTimeoutUs ?? base.defaultTimeoutUs,
    allowTimeoutOverride: q?.allowTimeoutOverride ?? base.allowTimeoutOverride,
    // Triton's 0 means unbounded; sluice always bounds its queues.
    maxQueueSize: q?.maxQueueSize === undefined || q.maxQueueSize === 0 ? base.maxQueueSize : q.maxQueueSize,
    maxExpectedWaitUs: q?.maxExpectedWaitUs ?? base.maxExpectedWaitUs,
  };
}

const BASE_QUEUE_POLICY: QueuePolicy = { timeoutAction: 'REJECT', defaultTimeoutUs: 0, allowTimeoutOverride: false, maxQueueSize: DEFAULT_MAX_QUEUE_SIZE, maxExpectedWaitUs: DEFAULT_MAX_EXPECTED_WAIT_US };

function dynamicBatching(check: Checker, draft: ConfigDraft | undefined, maxBatchSize: number): DynamicBatchingConfig {
  const db = draft?.dynamicBatching;
  const preferred = db?.preferredBatchSizes;
  const preferredBatchSizes = preferred === undefined ? defaultPreferredBatchSizes(maxBatchSize) : batchSizes(check, 'dynamicBatching.preferredBatchSizes', preferred, maxBatchSize);
  const allowedBatchSizes = batchSizes(check, 'dynamicBatching.allowedBatchSizes', db?.allowedBatchSizes ?? [], maxBatchSize);
  const priorityLevels = db?.priorityLevels ?? 0;
  let defaultPriorityLevel = db?.defaultPriorityLevel ?? 0;
  if (priorityLevels === 0 && defaultPriorityLevel !== 0) {
    check.fail('dynamicBatching.defaultPriorityLevel', `is ${defaultPriorityLevel} but priority levels are not enabled (priority_levels is 0)`);
  }
  if (defaultPriorityLevel > priorityLevels) {
    check.fail('dynamicBatching.defaultPriorityLevel', `must be between 1 and priority_levels (${priorityLevels}), got ${defaultPriorityLevel}`);
  }
  // Without a default level, requests that name none go last: an explicit priority can only raise them.
  if (priorityLevels > 0 && defaultPriorityLevel === 0) defaultPriorityLevel = priorityLevels;
  const defaultQueuePolicy = queuePolicy(db?.defaultQueuePolicy, BASE_QUEUE_POLICY);
  const priorityQueuePolicy: Record<number, QueuePolicy> = {};
  for (const [key, q] of Object.entries(db?.priorityQueuePolicy ?? {})) {
    const level = Number(key);
    if (level < 1 || level > priorityLevels) {
      check.fail('dynamicBatching.priorityQueuePolicy', `has a policy for priority level ${level}, but levels are 1..${priorityLevels}` + (priorityLevels === 0 ? ' (priority_levels is 0)' : ''));
    }
    // Fields a level's policy leaves out come from the default policy, not from protobuf's zeros.
    priorityQueuePolicy[level] = queuePolicy(q, defaultQueuePolicy);
  }
  return {
    preferredBatchSizes,
    maxQueueDelayUs: db?.maxQueueDelayUs ?? 0,
    preserveOrdering: db?.preserveOrdering ?? false,
    priorityLevels,
    defaultPriorityLevel,
    defaultQueuePolicy,
    priorityQueuePolicy,
    allowedBatchSizes,
  };
}

function instanceGroups(check: Checker, draft: ConfigDraft | undefined): InstanceGroup[] {
  const groups = draft?.instanceGroups ?? [{}];
  return groups.map((g, i) => {
    const kind = g.kind ?? 'KIND_AUTO';
    const gpus = [...(g.gpus ?? [])];
    if (kind === 'KIND_CPU' && gpus.length > 0) check.fail(`instanceGroups[${i}]`, 'KIND_CPU instances cannot list gpus');
    return { count: g.count ?? 1, kind, gpus };
  });
}

function versionPolicy(draft: ConfigDraft | undefined): VersionPolicy {
  const p = draft?.versionPolicy;
  if (p === undefined) return { latest: { numVersions: 1 } };
  if ('specific' in p) return { specific: { versions: [...new Set(p.specific.versions)].sort((a, b) => a - b) } };
  return p;
}

function warmup(check: Checker, draft: ConfigDraft | undefined, sig: Signature): WarmupSpec[] {
  return (draft?.warmup ?? []).map((w, i) => {
    const at = `warmup[${i}]`;
    const batchSize = w.batchSize ?? 1;
    if (batchSize < 1) check.fail(`${at}`, `warmup '${w.name}': batch size must be at least 1`);
    if (sig.maxBatchSize === 0 && batchSize !== 1) check.fail(at, `warmup '${w.name}': batch size must be 1 for a model that does not batch`);
    if (sig.maxBatchSize > 0 && batchSize > sig.maxBatchSize) check.fail(at, `warmup '${w.name}': batch size ${batchSize} exceeds max_batch_size ${sig.maxBatchSize}`);
    for (const [name, input] of Object.entries(w.inputs)) {
      const tensor = sig.inputs.find((t) => t.name === name);
      if (tensor === undefined) check.fail(at, `warmup '${w.name}' feeds '${name}', which is not an input of the model`);
      if (input.datatype !== tensor.datatype) check.fail(at, `warmup '${w.name}' gives input '${name}' datatype ${input.datatype}, but the model expects ${tensor.datatype}`);
      if (input.dims.length !== tensor.dims.length || input.dims.some((d, k) => d < 0 || (tensor.dims[k] !== -1 && tensor.dims[k] !== d))) {
        check.fail(at, `warmup '${w.name}' gives input '${name}' dims [${input.dims.join(', ')}], which must be concrete and fit the model's [${tensor.dims.join(', ')}]`);
      }
      if ((input.zeroData === true) === (input.randomData === true)) check.fail(at, `warmup '${w.name}' input '${name}': give exactly one of zero_data or random_data`);
    }
    for (const t of sig.inputs) {
      if (t.optional !== true && !Object.hasOwn(w.inputs, t.name)) check.fail(at, `warmup '${w.name}' does not feed the model's input '${t.name}'`);
    }
    // Triton's count 0 means "once".
    return { name: w.name, batchSize, inputs: { ...w.inputs }, count: Math.max(1, w.count ?? 1) };
  });
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

/**
 * Fills every field the draft left out with sluice's defaults and checks the fields against each
 * other (batch sizes against max_batch_size, priority levels, warmup inputs against the model's).
 * Throws InvalidModelConfig naming the field. The result is deeply frozen.
 */
export function normalizeConfig(name: string, draft: ConfigDraft | undefined, sig: Signature): ModelConfig {
  const check = new Checker(draft);
  const sequence = draft?.sequenceBatching && sequenceBatchingConfig(draft.sequenceBatching, sig, (draft.instanceGroups ?? [{}]).reduce((n, g) => n + (g.count ?? 1), 0),
    draft.source === 'pbtxt' ? undefined : { file: draft.file, path: 'sequenceBatching' });
  const builtin = draft?.backend !== undefined && BUILTIN_BACKENDS.includes(draft.backend);
  const config: ModelConfig = {
    name,
    platform: draft?.ensembleScheduling ? 'ensemble' : builtin ? '' : 'onnxruntime_onnx',
    backend: draft?.ensembleScheduling ? '' : builtin ? draft.backend : 'onnxruntime',
    maxBatchSize: sig.maxBatchSize,
    inputs: sequence ? sequence.inputs : sig.inputs,
    outputs: sequence ? sequence.outputs : sig.outputs,
    dynamicBatching: dynamicBatching(check, draft, sig.maxBatchSize),
    instanceGroups: instanceGroups(check, draft),
    versionPolicy: versionPolicy(draft),
    warmup: warmup(check, draft, sig),
    pinned: draft?.pinned ?? false,
    responseCache: { enable: draft?.responseCache?.enable ?? false },
    ...(draft?.ensembleScheduling && { ensembleScheduling: draft.ensembleScheduling }),
    ...(sequence && { sequenceBatching: sequence.config }),
    decoupled: draft?.decoupled ?? false,
    ...(draft?.generation && { generation: generationConfig(draft.file, draft.generation, sig) }),
    source: draft?.source ?? 'auto',
    unknownFields: [...(draft?.unknownFields ?? [])],
  };
  return deepFreeze(config);
}
