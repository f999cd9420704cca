import type { DataType } from './datatypes.ts';

/**
 * The normalized configuration of one model, whatever it was read from (sluice's JSON config, Triton's
 * config.pbtxt, or auto-complete from the ONNX file). Field meanings follow Triton's model configuration.
 */
export interface TensorConfig {
  readonly name: string;
  readonly datatype: DataType;
  /** Dims without the batch dimension when maxBatchSize > 0; -1 marks a dynamic dimension. */
  readonly dims: readonly number[];
  readonly optional?: boolean;
  /** An output's label file, relative to the model folder (the classification extension's labels). */
  readonly labelFilename?: string;
  /** The label file's lines, read when the model is read (index i names class i). */
  readonly labels?: readonly string[];
}

export interface QueuePolicy {
  readonly timeoutAction: 'REJECT' | 'DELAY';
  /** 0 = no timeout. */
  readonly defaultTimeoutUs: number;
  readonly allowTimeoutOverride: boolean;
  /** 0 = unbounded in Triton; sluice always applies a bound (see DEFAULT_MAX_QUEUE_SIZE). */
  readonly maxQueueSize: number;
  /**
   * sluice's admission bound (not in Triton): a request whose expected wait (rows queued ahead of it
   * times the measured cost per row, over the workers) passes this many microseconds is refused at
   * once with RESOURCE_EXHAUSTED, so the requests that are accepted keep their latency under
   * overload. 0 = off; DEFAULT_MAX_EXPECTED_WAIT_US when a model does not say.
   */
  readonly maxExpectedWaitUs: number;
}

export interface DynamicBatchingConfig {
  readonly preferredBatchSizes: readonly number[];
  /** 0 = work-conserving: never wait for a batch to grow while a worker is idle. */
  readonly maxQueueDelayUs: number;
  readonly preserveOrdering: boolean;
  /** 0 = a single level. */
  readonly priorityLevels: number;
  readonly defaultPriorityLevel: number;
  readonly defaultQueuePolicy: QueuePolicy;
  readonly priorityQueuePolicy: Readonly<Record<number, QueuePolicy>>;
  /** Pad every batch up to the next of these sizes (empty = no padding). */
  readonly allowedBatchSizes: readonly number[];
}

export interface InstanceGroup {
  readonly count: number;
  readonly kind: 'KIND_CPU' | 'KIND_GPU' | 'KIND_AUTO';
  readonly gpus: readonly number[];
}

export type VersionPolicy =
  | { readonly latest: { readonly numVersions: number } }
  | { readonly all: Record<string, never> }
  | { readonly specific: { readonly versions: readonly number[] } };

export interface WarmupInput {
  readonly datatype: DataType;
  readonly dims: readonly number[];
  readonly zeroData?: boolean;
  readonly randomData?: boolean;
}

export interface WarmupSpec {
  readonly name: string;
  readonly batchSize: number;
  readonly inputs: Readonly<Record<string, WarmupInput>>;
  readonly count: number;
}

/** Triton's response_cache setting of a model: whether its successful answers may be cached. */
export interface ResponseCacheConfig {
  /** Serves repeated identical requests from the gateway's response cache (needs --cache-config too). */
  readonly enable: boolean;
}

/**
 * One step of an ensemble (Triton's ModelEnsembling.Step): a model run on tensors of the ensemble.
 * Map keys are the step model's own tensor names, values the ensemble's tensor names.
 */
export interface EnsembleStep {
  readonly modelName: string;
  /** -1 = the latest ready version (Triton's default), else that version. */
  readonly modelVersion: number;
  /** Step model input -> the ensemble tensor that feeds it. */
  readonly inputMap: Readonly<Record<string, string>>;
  /** Step model output -> the ensemble tensor it becomes (outputs not listed are dropped). */
  readonly outputMap: Readonly<Record<string, string>>;
}

/** Triton's ensemble_scheduling: the steps of a model whose platform is "ensemble". */
export interface EnsembleScheduling {
  readonly steps: readonly EnsembleStep[];
}

/**
 * sluice's generation contract (docs/generation.md): a decoder-only model that takes input_ids,
 * position_ids, attention_bias and each layer's past_key_i / past_value_i, and answers logits and
 * present_key_i / present_value_i. The server keeps the KV cache and batches steps across sequences.
 */
export interface GenerationConfig {
  /** How text becomes tokens: 'ascii' = ' '..'~' as 0..94, '\n' as 95, then the end token. */
  readonly tokenizer: 'ascii';
  /** The token that ends a sequence (the vocabulary's last one for 'ascii'). */
  readonly eosToken: number;
  /** Positions the model has (its position embedding): prompt plus generated tokens stay under it. */
  readonly maxContext: number;
  /** Sequences in the running batch at once (1 = one sequence at a time). */
  readonly maxActiveSequences: number;
  /** Prompts waiting for a place in the running batch; past it a new one is refused at once. */
  readonly maxQueuedPrompts: number;
  /** The KV cache's budget in bytes (running sequences and finished ones kept for prefix reuse). */
  readonly kvCacheBytes: number;
  /** Tokens per cache block: memory is counted in blocks, and a reused prefix is at least one. */
  readonly kvBlockTokens: number;
  /** Prompt tokens prefilled between two decode steps (at least one prompt always is). */
  readonly prefillTokenBudget: number;
  /** Derived from the model's inputs: layers, heads, head size, vocabulary. */
  readonly layers: number;
  readonly heads: number;
  readonly headDim: number;
  readonly vocab: number;
}

/** A control input of Triton's sequence batcher: a tensor the scheduler fills for every row it batches. */
export interface SequenceControl {
  readonly tensor: string;
  readonly kind: 'START' | 'END' | 'READY' | 'CORRID';
  readonly datatype: DataType;
  /** The values for false and true (START, END, READY). */
  readonly falseTrue: readonly [number, number];
}

/** Implicit state: the output of one request of a sequence feeds this input of its next request. */
export interface SequenceState {
  readonly inputName: string;
  readonly outputName: string;
  readonly datatype: DataType;
  /** Dims without the batch dimension; the first request of a sequence gets zeros. */
  readonly dims: readonly number[];
}

/** Triton's sequence_batching: requests carrying a correlation ID run in order, one at a time per sequence. */
export interface SequenceBatchingConfig {
  /** direct: a sequence keeps a slot (max_batch_size slots); oldest: up to max_candidate_sequences. */
  readonly strategy: 'direct' | 'oldest';
  /** Sequences that may be active at once; a new one past it is refused (RESOURCE_EXHAUSTED). */
  readonly maxActiveSequences: number;
  readonly preferredBatchSizes: readonly number[];
  /** How long a batch may wait to grow while fewer sequences than preferred have a request (oldest only). */
  readonly maxQueueDelayUs: number;
  /** A sequence with no request for this long ends (its slot and state are freed). */
  readonly maxSequenceIdleUs: number;
  readonly controls: readonly SequenceControl[];
  readonly states: readonly SequenceState[];
}

export interface ModelConfig {
  readonly name: string;
  readonly platform: string;
  readonly backend: string;
  /** 0 = the model does not batch (no batch dimension). */
  readonly maxBatchSize: number;
  readonly inputs: readonly TensorConfig[];
  readonly outputs: readonly TensorConfig[];
  readonly dynamicBatching: DynamicBatchingConfig;
  readonly instanceGroups: readonly InstanceGroup[];
  readonly versionPolicy: VersionPolicy;
  readonly warmup: readonly WarmupSpec[];
  /** Keep loaded whatever the memory budget says. */
  readonly pinned: boolean;
  /** Absent (a config built by hand) is off, as enable: false; normalizeConfig always sets it. */
  readonly responseCache?: ResponseCacheConfig;
  /** Present only for platform "ensemble": such a model has no file and runs on no worker. */
  readonly ensembleScheduling?: EnsembleScheduling;
  /**
   * Triton's model_transaction_policy.decoupled: a request may be answered zero or many times (gRPC
   * ModelStreamInfer, or REST infer asked for server-sent events). Absent is false.
   */
  readonly decoupled?: boolean;
  /** Present for a stateful model: its requests go through the sequence batcher. */
  readonly sequenceBatching?: SequenceBatchingConfig;
  /** Present for a generative model: it is served by the generation engine, not the batcher. */
  readonly generation?: GenerationConfig;
  /** Which source produced this config. */
  readonly source: 'json' | 'pbtxt' | 'auto';
  /** Fields of the source config that sluice read but does not act on (reported, never fatal). */
  readonly unknownFields: readonly string[];
}

export const DEFAULT_MAX_BATCH_SIZE = 32;
export const DEFAULT_PREFERRED_BATCH_SIZES: readonly number[] = [8, 16, 32];
export const DEFAULT_MAX_QUEUE_SIZE = 4096;
/**
 * Default admission bound on a request's expected queue wait (QueuePolicy.maxExpectedWaitUs): 1 s.
 * Past it a request has missed any interactive objective, and a fast 503 lets its client or the load
 * balancer go elsewhere instead of joining a queue that only grows. It is set high on purpose: a
 * closed-loop client that resends each 503 at once (a benchmark's 256 connections on a model with
 * max_batch_size 1, where 256 queued one-row batches are about 250 ms of work) turns refusals into a
 * storm whose cost crowds out serving; at 250 ms that run answered 44 req/s against 1,100 without
 * admission. A model with a real-time budget sets its own; 0 turns admission by expected wait off.
 */
export const DEFAULT_MAX_EXPECTED_WAIT_US = 1_000_000;

/** Names a model or version may have: they become path segments, so they are checked before use. */
export const MODEL_NAME_PATTERN = /^(?!\.{1,2}$)[A-Za-z0-9_.-]{1,128}$/;
export const VERSION_PATTERN = /^[1-9][0-9]{0,17}$/;
/** An uploaded version's source: the SHA-256 of its files, in lowercase hex (src/repository/uploads.ts). */
export const SOURCE_PATTERN = /^[0-9a-f]{64}$/;

export type ModelState = 'READY' | 'UNAVAILABLE' | 'LOADING' | 'UNLOADING';

/** One entry of the repository index (Triton's repository extension). */
export interface RepositoryIndexEntry {
  readonly name: string;
  readonly version: string;
  readonly state: ModelState;
  readonly reason: string;
}

/** Model metadata as the protocol returns it. */
export interface ModelMetadata {
  readonly name: string;
  readonly versions: readonly string[];
  readonly platform: string;
  readonly inputs: readonly { name: string; datatype: DataType; shape: number[] }[];
  readonly outputs: readonly { name: string; datatype: DataType; shape: number[] }[];
}

/** Triton's statistics extension, durations in nanoseconds. */
export interface DurationStat {
  readonly count: number;
  readonly ns: number;
}

export interface ModelStats {
  readonly name: string;
  readonly version: string;
  readonly lastInference: number;
  /** Rows inferred (Triton's inference_count). */
  readonly inferenceCount: number;
  /** Batches executed (Triton's execution_count). */
  readonly executionCount: number;
  readonly success: DurationStat;
  readonly fail: DurationStat;
  readonly queue: DurationStat;
  readonly computeInput: DurationStat;
  readonly computeInfer: DurationStat;
  readonly computeOutput: DurationStat;
  /** Answers served from the response cache, and the time to look them up and extract them. */
  readonly cacheHit: DurationStat;
  /** Lookups that missed, and the time to look up and then to insert the computed answer. */
  readonly cacheMiss: DurationStat;
  readonly batchStats: readonly {
    readonly batchSize: number;
    readonly computeInput: DurationStat;
    readonly computeInfer: DurationStat;
    readonly computeOutput: DurationStat;
  }[];
}

/** Built-in backends: run by the gateway itself, with no model file and no worker. */
export const BUILTIN_BACKENDS: readonly string[] = ['repeat'];

/** Whether a model's versions load onto the workers (not an ensemble, a generative or a built-in model). */
export function runsOnWorkers(c: ModelConfig): boolean {
  return c.ensembleScheduling === undefined && c.generation === undefined && !BUILTIN_BACKENDS.includes(c.backend);
}
