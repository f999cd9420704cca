import type { SluiceError } from './errors.ts';
import type { ModelConfig, ModelMetadata, ModelStats, RepositoryIndexEntry } from './model.ts';
import type { Tensor } from './tensor.ts';
import type { RequestTrace } from './trace.ts';

export type Protocol = 'http' | 'grpc';

/** A decoded, protocol-neutral inference request. */
export interface InferRequest {
  /** The client's request id, echoed back ('' when none). */
  readonly id: string;
  readonly model: string;
  /** '' = the policy's default version (the latest ready one). */
  readonly version: string;
  readonly inputs: readonly Tensor[];
  /** Names of the outputs to return; empty = all of them. */
  readonly outputs: readonly string[];
  /** 0 = the model's default priority level; 1 is the highest. */
  readonly priority: number;
  /** Per-request timeout in microseconds counted from arrival; 0 = the model's default. */
  readonly timeoutUs: number;
  /** performance.now() at arrival: every deadline counts from here. */
  readonly arrivalMs: number;
  /** Aborted when the client goes away or cancels; a queued request is then dropped. */
  readonly signal?: AbortSignal;
  readonly protocol: Protocol;
  /** Present when the tracer sampled this request: every stage of the path marks it. */
  readonly trace?: RequestTrace;
  /** The tenant whose key sent it (a name from the auth config); '' or absent = anonymous. */
  readonly tenant?: string;
  /** The sequence extension: which sequence the request belongs to (sequence models only). */
  readonly sequence?: SequenceFlags;
  /** The classification extension: output name -> K, those outputs answered as their top K. */
  readonly classification?: Readonly<Record<string, number>>;
}

/** The sequence extension's parameters of one request. */
export interface SequenceFlags {
  /** The correlation ID: a uint64 (as its decimal digits) or a string. */
  readonly id: string;
  readonly numeric: boolean;
  readonly start: boolean;
  readonly end: boolean;
}

export interface InferResponse {
  readonly id: string;
  readonly model: string;
  readonly version: string;
  readonly outputs: readonly Tensor[];
  /** Which worker ran the request's batch, and that batch's rows (for request logs). */
  readonly worker?: string;
  readonly batchRows?: number;
}

/** A request of the generate extension, decoded by a front door. */
export interface GenerateRequest {
  readonly model: string;
  /** '' = the latest ready version. */
  readonly version: string;
  /** The whole context: a conversation's next turn sends the earlier turns again (their cache is reused). */
  readonly text: string;
  readonly maxTokens: number;
  /** 0 = greedy. */
  readonly temperature: number;
  /** Sample among the K likeliest tokens (0 = all). */
  readonly topK: number;
  /** Sample among the likeliest tokens that hold this much of the probability (1 = all). */
  readonly topP: number;
  readonly seed: number;
  /** Generation ends once the text contains one of these (it is not answered). */
  readonly stop: readonly string[];
  /** Keep generating past the end token (until max_tokens or a stop string). */
  readonly ignoreEos: boolean;
  readonly arrivalMs: number;
  readonly signal?: AbortSignal;
  readonly tenant?: string;
  /** Streaming: each piece of text as soon as it is final, with the version generating it. */
  readonly onText?: (text: string, version: string) => void;
}

export interface GenerateResponse {
  readonly model: string;
  readonly version: string;
  readonly text: string;
  readonly finishReason: 'length' | 'stop' | 'eos';
  readonly promptTokens: number;
  readonly cachedTokens: number;
  readonly completionTokens: number;
}

export interface ServerMetadata {
  readonly name: string;
  readonly version: string;
  readonly extensions: readonly string[];
}

/**
 * What the front doors need from the rest of sluice. Every method throws SluiceError on failure; the
 * front door maps its kind to a status.
 */
export interface InferenceService {
  serverMetadata(): ServerMetadata;
  isLive(): boolean;
  /** Whether the repository knows this model name (front doors use it to keep metric labels bounded). */
  hasModel(name: string): boolean;
  isReady(): boolean;
  modelMetadata(name: string, version: string): ModelMetadata;
  modelReady(name: string, version: string): boolean;
  modelConfig(name: string, version: string): ModelConfig;
  /** Stats of one model (and version), or of every model when name is ''. */
  modelStats(name: string, version: string): readonly ModelStats[];
  repositoryIndex(readyOnly: boolean): Promise<readonly RepositoryIndexEntry[]>;
  /**
   * Loads (or reloads) a model; `config` is a model config in protobuf JSON to use instead of the one
   * on disk (Triton's load override), and `files` (keyed `file:<version>/<path>`, with `config`) are the
   * model's files to serve instead of the repository's. A load that cannot be applied leaves the
   * serving versions serving.
   */
  loadModel(name: string, options?: { readonly config?: string; readonly files?: ReadonlyMap<string, Uint8Array> }): Promise<void>;
  unloadModel(name: string): Promise<void>;
  infer(request: InferRequest): Promise<InferResponse>;
  /**
   * Every answer of a request, each as it is ready: a decoupled model's (zero or many, `final` false,
   * then the promise settles), or any other model's one answer (`final` true).
   */
  inferStream(request: InferRequest, emit: (response: InferResponse, final: boolean) => void): Promise<void>;
  /** The generate extension: runs a generative model's continuous batching for one prompt. */
  generate(request: GenerateRequest): Promise<GenerateResponse>;
  /**
   * The error that would shed a request arriving now for this model from its queue (full, or its
   * expected wait past the budget) or from its tenant's rate limit, counted as shed; undefined when it
   * may be accepted or when only infer() can tell. Front doors ask once per request, before reading a
   * body, so that refusals stay cheap; it takes the request from the tenant's bucket.
   */
  refuseOnArrival(model: string, version: string, arrivalMs: number, tenant?: string): SluiceError | undefined;
}
