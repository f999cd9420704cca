import type { DataType } from '../core/datatypes.ts';
import { InvalidModelConfig } from '../core/errors.ts';
import type { SluiceError } from '../core/errors.ts';
import type { EnsembleStep, InstanceGroup, VersionPolicy, WarmupInput } from '../core/model.ts';

/**
 * A model configuration as read from config.json or config.pbtxt, before defaults and auto-complete:
 * every field the source left out is undefined. Both readers check types and ranges of single fields;
 * normalize.ts and autocomplete.ts check fields against each other and against the ONNX file.
 */
export interface ConfigDraft {
  readonly source: 'json' | 'pbtxt';
  /** The config file's name, for messages ('config.pbtxt'). */
  readonly file: string;
  readonly name?: string;
  readonly platform?: string;
  readonly backend?: string;
  readonly maxBatchSize?: number;
  readonly inputs?: readonly TensorDraft[];
  readonly outputs?: readonly TensorDraft[];
  readonly dynamicBatching?: DynamicBatchingDraft;
  readonly instanceGroups?: readonly InstanceGroupDraft[];
  readonly versionPolicy?: VersionPolicy;
  readonly warmup?: readonly WarmupDraft[];
  readonly pinned?: boolean;
  readonly responseCache?: { readonly enable?: boolean };
  /** model_transaction_policy.decoupled. */
  readonly decoupled?: boolean;
  /** ensemble_scheduling, read as written; src/repository/ensemble.ts checks it. */
  readonly ensembleScheduling?: { readonly steps: readonly EnsembleStep[] };
  /** sequence_batching (config.pbtxt), read as written; src/repository/sequence-config.ts checks it. */
  readonly sequenceBatching?: SequenceBatchingDraft;
  /** sluice's generation section (config.json only); src/repository/generation.ts checks it. */
  readonly generation?: GenerationDraft;
  /** Paths of fields read but not acted on ('input[0].reshape'), reported as warnings. */
  readonly unknownFields: readonly string[];
}

export interface SequenceBatchingDraft {
  readonly strategy: 'direct' | 'oldest';
  readonly maxCandidateSequences?: number;
  readonly preferredBatchSizes?: readonly number[];
  readonly maxQueueDelayUs?: number;
  readonly maxSequenceIdleUs?: number;
  readonly controls: readonly { readonly tensor: string; readonly kind: 'START' | 'END' | 'READY' | 'CORRID'; readonly datatype: DataType; readonly falseTrue: readonly [number, number] }[];
  readonly states: readonly { readonly inputName: string; readonly outputName: string; readonly datatype: DataType; readonly dims: readonly number[] }[];
}

/** The generation section as written: every field is optional, with defaults in generation.ts. */
export interface GenerationDraft {
  readonly tokenizer?: string;
  readonly eosToken?: number;
  readonly maxContext?: number;
  readonly maxActiveSequences?: number;
  readonly maxQueuedPrompts?: number;
  readonly kvCacheBytes?: number;
  readonly kvBlockTokens?: number;
  readonly prefillTokenBudget?: number;
}

/** An input or output of a config; a missing datatype or dims is taken from the ONNX file. */
export interface TensorDraft {
  readonly name: string;
  readonly datatype?: DataType;
  readonly dims?: readonly number[];
  readonly optional?: boolean;
  readonly labelFilename?: string;
}

export interface QueuePolicyDraft {
  readonly timeoutAction?: 'REJECT' | 'DELAY';
  readonly defaultTimeoutUs?: number;
  readonly allowTimeoutOverride?: boolean;
  readonly maxQueueSize?: number;
  readonly maxExpectedWaitUs?: number;
}

export interface DynamicBatchingDraft {
  readonly preferredBatchSizes?: readonly number[];
  readonly maxQueueDelayUs?: number;
  readonly preserveOrdering?: boolean;
  readonly priorityLevels?: number;
  readonly defaultPriorityLevel?: number;
  readonly defaultQueuePolicy?: QueuePolicyDraft;
  readonly priorityQueuePolicy?: Readonly<Record<number, QueuePolicyDraft>>;
  readonly allowedBatchSizes?: readonly number[];
}

export interface InstanceGroupDraft {
  readonly count?: number;
  readonly kind?: InstanceGroup['kind'];
  readonly gpus?: readonly number[];
}

export interface WarmupDraft {
  readonly name: string;
  readonly batchSize?: number;
  readonly inputs: Readonly<Record<string, WarmupInput>>;
  readonly count?: number;
}

export const INSTANCE_KINDS: readonly InstanceGroup['kind'][] = ['KIND_CPU', 'KIND_GPU', 'KIND_AUTO'];
export const TIMEOUT_ACTIONS: readonly QueuePolicyDraft['timeoutAction'][] = ['REJECT', 'DELAY'];

/** The upper bound used for "unsigned 64-bit" config fields: beyond it a JS number is no longer exact. */
export const MAX_SAFE = Number.MAX_SAFE_INTEGER;

/** A config error naming the file and the field path. */
export function configError(file: string, path: string, reason: string): SluiceError {
  return InvalidModelConfig(path === '' ? `in ${file}` : `in ${file} at '${path}'`, reason);
}

/** Why an integer does not lie in [min, max], or undefined when it does. */
export function intProblem(value: number, min: number, max: number = MAX_SAFE): string | undefined {
  if (!Number.isSafeInteger(value)) return `expected an integer, got ${String(value)}`;
  if (value >= min && value <= max) return undefined;
  return `must be ${max === MAX_SAFE ? `>= ${min}` : `between ${min} and ${max}`}, got ${value}`;
}

/** Checks an integer lies in [min, max]; the message says what was expected and what was given. */
export function checkInt(file: string, path: string, value: number, min: number, max: number = MAX_SAFE): number {
  const problem = intProblem(value, min, max);
  if (problem !== undefined) throw configError(file, path, problem);
  return value;
}

/** Checks each dimension is -1 (dynamic) or a non-negative size. */
export function checkDims(file: string, path: string, dims: readonly number[]): readonly number[] {
  dims.forEach((d, i) => checkInt(file, `${path}[${i}]`, d, -1));
  return dims;
}

/** What the version-policy reader needs from either config reader (config.json or config.pbtxt). */
export interface FieldReader<R> {
  readonly path: string;
  int(key: string, min: number, max?: number): number | undefined;
  ints(key: string, min: number, max?: number): number[] | undefined;
  finish(): void;
  child(key: string): R | undefined;
}

/** version_policy: exactly one of latest { num_versions }, all {}, specific { versions }. */
export function readVersionPolicy<R extends FieldReader<R>>(file: string, r: R, numVersionsKey: string): VersionPolicy {
  const latest = r.child('latest');
  const all = r.child('all');
  const specific = r.child('specific');
  r.finish();
  const given = [latest, all, specific].filter((m) => m !== undefined).length;
  if (given !== 1) throw configError(file, r.path, `give exactly one of latest, all, specific (found ${given})`);
  if (latest !== undefined) {
    const numVersions = latest.int(numVersionsKey, 1) ?? 1;
    latest.finish();
    return { latest: { numVersions } };
  }
  if (specific !== undefined) {
    const versions = specific.ints('versions', 1) ?? [];
    specific.finish();
    if (versions.length === 0) throw configError(file, specific.path, 'list at least one version');
    return { specific: { versions } };
  }
  all?.finish();
  return { all: {} };
}
