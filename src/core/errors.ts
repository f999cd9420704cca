/**
 * The one error catalog. Every error sluice reports has a stable code and a transport-neutral kind;
 * each front door maps the kind to its own status (see httpStatusOf in the HTTP front door and
 * grpcStatusOf in the gRPC front door). docs/errors.md documents every code (a test keeps them in step).
 */
export type ErrorKind =
  | 'INVALID_ARG'
  | 'NOT_FOUND'
  | 'ALREADY_EXISTS'
  | 'UNAVAILABLE'
  | 'RESOURCE_EXHAUSTED'
  | 'DEADLINE_EXCEEDED'
  | 'CANCELLED'
  | 'UNIMPLEMENTED'
  | 'UNAUTHENTICATED'
  | 'PERMISSION_DENIED'
  | 'RATE_LIMITED'
  | 'INTERNAL';

export class SluiceError extends Error {
  readonly code: string;
  readonly kind: ErrorKind;
  /** When the client may try again, in whole seconds (HTTP Retry-After); set by whoever refuses for a while. */
  retryAfterSeconds: number | undefined;
  constructor(code: string, kind: ErrorKind, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'SluiceError';
    this.code = code;
    this.kind = kind;
    this.retryAfterSeconds = undefined;
  }
}

export interface ErrorDefinition<A extends unknown[]> {
  readonly code: string;
  readonly kind: ErrorKind;
  (...args: A): SluiceError;
}

const catalog = new Map<string, ErrorKind>();

function define<A extends unknown[]>(code: string, kind: ErrorKind, format: (...args: A) => string): ErrorDefinition<A> {
  if (catalog.has(code)) throw new Error(`duplicate error code ${code}`);
  catalog.set(code, kind);
  const make = (...args: A): SluiceError => new SluiceError(code, kind, format(...args));
  return Object.assign(make, { code, kind });
}

/** Every code in the catalog with its kind (for documentation and its test). */
export function errorCatalog(): ReadonlyMap<string, ErrorKind> {
  return catalog;
}

export function isSluiceError(e: unknown): e is SluiceError {
  return e instanceof SluiceError;
}

/** Wraps anything thrown into a SluiceError, keeping SluiceErrors as they are. */
export function toSluiceError(e: unknown): SluiceError {
  if (e instanceof SluiceError) return e;
  const message = e instanceof Error ? e.message : String(e);
  return Internal(message);
}

// --- models and repository ---
export const ModelNotFound = define('SLUICE_MODEL_NOT_FOUND', 'NOT_FOUND', (model: string) => `Request for unknown model: '${model}' is not found`);
export const ModelVersionNotFound = define('SLUICE_MODEL_VERSION_NOT_FOUND', 'NOT_FOUND', (model: string, version: string) => `Request for unknown model: '${model}' version ${version} is not found`);
export const ModelNotReady = define('SLUICE_MODEL_NOT_READY', 'UNAVAILABLE', (model: string, reason: string) => `Request for unknown model: '${model}' has no available versions: ${reason}`);
export const InvalidModelName = define('SLUICE_INVALID_MODEL_NAME', 'INVALID_ARG', (name: string) => `invalid model name '${name}': names use letters, digits, '_', '-' and '.' and are not '.' or '..'`);
export const InvalidVersion = define('SLUICE_INVALID_VERSION', 'INVALID_ARG', (version: string) => `invalid model version '${version}': versions are positive integers`);
export const ModelLoadFailed = define('SLUICE_MODEL_LOAD_FAILED', 'INTERNAL', (model: string, reason: string) => `failed to load '${model}': ${reason}`);
// The request's config did not fit the model's files: the request is what was wrong (400, as Triton answers).
export const ConfigOverrideRejected = define('SLUICE_CONFIG_OVERRIDE_REJECTED', 'INVALID_ARG', (model: string, reason: string) => `failed to load '${model}' with the config override: ${reason}`);
// Model files sent with a load (file:<version>/<name>): a worker that lacks an upload is sent it again.
export const UploadMissing = define('SLUICE_UPLOAD_MISSING', 'NOT_FOUND', (model: string, version: string, source: string, why?: string) => `model '${model}' version ${version}: no uploaded files with source ${source.slice(0, 16)} are staged here${why ? ` (${why})` : ''}`);
export const UploadsFull = define('SLUICE_UPLOADS_FULL', 'RESOURCE_EXHAUSTED', (model: string, bytes: number, left: number) => `the files uploaded for '${model}' (${bytes} bytes) do not fit: ${Math.max(0, left)} bytes of the upload budget are left`);
export const ModelControlDisabled = define('SLUICE_MODEL_CONTROL_DISABLED', 'UNAVAILABLE', () => 'explicit model load / unload is not allowed if polling is enabled or model control mode is none; start sluice with --model-control-mode=explicit');
export const InvalidModelConfig = define('SLUICE_INVALID_MODEL_CONFIG', 'INVALID_ARG', (where: string, reason: string) => `invalid model configuration ${where}: ${reason}`);

// --- requests ---
export const InvalidRequest = define('SLUICE_INVALID_REQUEST', 'INVALID_ARG', (reason: string) => reason);
export const MalformedBody = define('SLUICE_MALFORMED_BODY', 'INVALID_ARG', (reason: string) => `failed to parse the request JSON buffer: ${reason}`);
export const UnknownInput = define('SLUICE_UNKNOWN_INPUT', 'INVALID_ARG', (input: string, model: string) => `unexpected inference input '${input}' for model '${model}'`);
export const MissingInput = define('SLUICE_MISSING_INPUT', 'INVALID_ARG', (model: string, expected: number, got: number, missing: string) => `expected ${expected} inputs but got ${got} inputs for model '${model}'; missing input '${missing}'`);
export const DuplicateInput = define('SLUICE_DUPLICATE_INPUT', 'INVALID_ARG', (input: string, model: string) => `input '${input}' appears more than once in the request for model '${model}'`);
export const UnknownOutput = define('SLUICE_UNKNOWN_OUTPUT', 'INVALID_ARG', (output: string, model: string) => `unexpected inference output '${output}' for model '${model}'`);
export const DatatypeMismatch = define('SLUICE_DATATYPE_MISMATCH', 'INVALID_ARG', (input: string, model: string, expected: string, got: string) => `inference input '${input}' data-type is '${got}', but model '${model}' expects '${expected}'`);
export const UnknownDatatype = define('SLUICE_UNKNOWN_DATATYPE', 'INVALID_ARG', (tensor: string, datatype: string) => `tensor '${tensor}' has unknown datatype '${datatype}'`);
export const ShapeMismatch = define('SLUICE_SHAPE_MISMATCH', 'INVALID_ARG', (input: string, model: string, expected: string, got: string) => `unexpected shape for input '${input}' for model '${model}'. Expected ${expected}, got ${got}`);
export const BatchTooLarge = define('SLUICE_BATCH_TOO_LARGE', 'INVALID_ARG', (model: string, batch: number, max: number) => `inference request batch-size must be <= ${max} for '${model}', got ${batch}`);
export const InvalidShape = define('SLUICE_INVALID_SHAPE', 'INVALID_ARG', (tensor: string, reason: string) => `tensor '${tensor}' has an invalid shape: ${reason}`);
export const DataSizeMismatch = define('SLUICE_DATA_SIZE_MISMATCH', 'INVALID_ARG', (tensor: string, expected: string, got: string) => `unexpected data size for tensor '${tensor}': shape and datatype need ${expected}, got ${got}`);
export const InvalidTensorData = define('SLUICE_INVALID_TENSOR_DATA', 'INVALID_ARG', (tensor: string, reason: string) => `invalid data for tensor '${tensor}': ${reason}`);
export const DatatypeUnsupportedInJson = define('SLUICE_DATATYPE_NEEDS_BINARY', 'INVALID_ARG', (tensor: string, datatype: string) => `tensor '${tensor}': datatype ${datatype} has no JSON representation; send it with the binary tensor data extension`);
export const InvalidBinaryHeader = define('SLUICE_INVALID_BINARY_HEADER', 'INVALID_ARG', (reason: string) => `invalid Inference-Header-Content-Length: ${reason}`);
export const InvalidParameter = define('SLUICE_INVALID_PARAMETER', 'INVALID_ARG', (name: string, reason: string) => `invalid parameter '${name}': ${reason}`);
export const MixedTensorContents = define('SLUICE_MIXED_TENSOR_CONTENTS', 'INVALID_ARG', (tensor: string, model: string) => `contents field must not be specified when using raw_input_contents for '${tensor}' for model '${model}'`);
export const TooManyElements = define('SLUICE_TOO_MANY_ELEMENTS', 'INVALID_ARG', (tensor: string, limit: number) => `tensor '${tensor}' exceeds the limit of ${limit} elements`);
export const BodyTooLarge = define('SLUICE_BODY_TOO_LARGE', 'INVALID_ARG', (limit: number) => `request body exceeds the limit of ${limit} bytes`);
export const ModelBodyTooLarge = define('SLUICE_MODEL_BODY_TOO_LARGE', 'INVALID_ARG', (model: string, size: string, limit: number, why: string) => `request body of ${size} bytes exceeds the limit of ${limit} bytes for model '${model}' (${why})`);
export const UnsupportedEncoding = define('SLUICE_UNSUPPORTED_ENCODING', 'INVALID_ARG', (encoding: string) => `unsupported Content-Encoding '${encoding}': use gzip, deflate or identity`);

export const InvalidTraceSetting = define('SLUICE_INVALID_TRACE_SETTING', 'INVALID_ARG', (field: string, reason: string) => `invalid trace setting '${field}': ${reason}`);

// --- scheduling ---
export const QueueFull = define('SLUICE_QUEUE_FULL', 'RESOURCE_EXHAUSTED', (model: string, max: number) => `Exceeds maximum queue size: the queue of model '${model}' is full (max_queue_size ${max})`);
/**
 * A worker host shared by several gateways holds as many batches as it queues (`--max-queued-batches`):
 * the gateway that sent one more keeps it in its model's queue and tries another worker, or this one
 * a little later. Never an answer to a client.
 */
export const WorkerBusy = define('SLUICE_WORKER_BUSY', 'RESOURCE_EXHAUSTED', (worker: string, held: number) => `worker ${worker} is busy: it holds ${held} batches (--max-queued-batches waiting behind the running one); the batch stays queued in the gateway`);
export const ExpectedWaitTooLong = define('SLUICE_EXPECTED_WAIT_TOO_LONG', 'RESOURCE_EXHAUSTED', (model: string, expectedUs: number, budgetUs: number) => `Overloaded: a request for model '${model}' would wait about ${Math.round(expectedUs)} us in its queue, past the model's max_expected_wait_microseconds of ${budgetUs}; retry later`);
export const RequestMemoryFull = define('SLUICE_REQUEST_MEMORY_FULL', 'RESOURCE_EXHAUSTED', (model: string, bytes: number, held: number, limit: number) => `Exceeds the gateway's request memory: a request for model '${model}' needs ${bytes} bytes while accepted requests hold ${held} of ${limit} (--max-request-memory); retry later`);
export const RequestTimeout = define('SLUICE_REQUEST_TIMEOUT', 'DEADLINE_EXCEEDED', (model: string, timeoutUs: number) => `Request timeout expired: request for model '${model}' waited longer than ${timeoutUs} us`);
export const RequestCancelled = define('SLUICE_REQUEST_CANCELLED', 'CANCELLED', (model: string) => `request for model '${model}' was cancelled by the client`);
export const ShuttingDown = define('SLUICE_SHUTTING_DOWN', 'UNAVAILABLE', () => 'server is shutting down and accepts no new requests');
export const InvalidPriority = define('SLUICE_INVALID_PRIORITY', 'INVALID_ARG', (model: string, priority: string, levels: number) => `invalid priority ${priority} for model '${model}': priority levels are 1..${levels} (0 means the default)`);

// --- workers ---
// Sequences (Triton's sequence batcher).
export const SequenceIdMissing = define('SLUICE_SEQUENCE_ID_MISSING', 'INVALID_ARG', (model: string) => `inference request to model '${model}' must specify a non-zero or non-empty correlation ID (the sequence_id parameter)`);
export const SequenceBatchSize = define('SLUICE_SEQUENCE_BATCH_SIZE', 'INVALID_ARG', (model: string) => `inference request to model '${model}' must specify batch-size 1 due to requirements of sequence batcher`);
export const SequenceNotStarted = define('SLUICE_SEQUENCE_NOT_STARTED', 'INVALID_ARG', (id: string, model: string) => `inference request for sequence ${id} to model '${model}' must specify the START flag on the first request of the sequence (an unknown sequence, or one that ended or idled out)`);
export const SequenceSlotsFull = define('SLUICE_SEQUENCE_SLOTS_FULL', 'RESOURCE_EXHAUSTED', (model: string, max: number) => `model '${model}' has ${max} active sequences, its most (max_batch_size slots for direct, max_candidate_sequences for oldest): a new sequence cannot start now; retry later`);
export const SequenceParameter = define('SLUICE_SEQUENCE_PARAMETER', 'INVALID_ARG', (name: string, reason: string) => `invalid '${name}' parameter: ${reason}`);
export const DecoupledModel = define('SLUICE_DECOUPLED_MODEL', 'UNIMPLEMENTED', (model: string) => `model '${model}' is decoupled (it may answer a request zero or many times): this endpoint doesn't support models with decoupled transaction policy; use gRPC ModelStreamInfer, or REST infer with 'Accept: text/event-stream'`);
// Generation (the generate extension).
export const NotGenerative = define('SLUICE_NOT_GENERATIVE', 'INVALID_ARG', (model: string) => `model '${model}' is not a generative model (its config has no generation section): use its infer endpoint`);
export const GenerativeModel = define('SLUICE_GENERATIVE_MODEL', 'INVALID_ARG', (model: string) => `model '${model}' is a generative model: use POST /v2/models/${model}/generate or generate_stream (its KV cache is kept by the server, step by step)`);
export const ContextTooLong = define('SLUICE_CONTEXT_TOO_LONG', 'INVALID_ARG', (model: string, promptTokens: number, maxTokens: number, context: number) => `prompt of ${promptTokens} tokens plus max_tokens ${maxTokens} exceeds the context of model '${model}' (${context} tokens)`);
export const GenerationQueueFull = define('SLUICE_GENERATION_QUEUE_FULL', 'RESOURCE_EXHAUSTED', (model: string, waiting: number) => `the generation queue of model '${model}' is full: ${waiting} prompts wait for a place in the running batch (maxQueuedPrompts); retry later`);
export const NoWorkerAvailable = define('SLUICE_NO_WORKER', 'UNAVAILABLE', (model: string, reason: string) => `no worker can serve model '${model}': ${reason}`);
export const WorkerFailed = define('SLUICE_WORKER_FAILED', 'UNAVAILABLE', (worker: string, reason: string) => `worker ${worker} failed: ${reason}`);
export const ModelExceedsMemoryBudget = define('SLUICE_MODEL_EXCEEDS_MEMORY_BUDGET', 'RESOURCE_EXHAUSTED', (model: string, needBytes: number, budgetBytes: number, heldBytes: number) => `model '${model}' needs an estimated ${needBytes} bytes but the worker memory budget is ${budgetBytes} bytes with ${heldBytes} held by pinned or loading models`);
export const InferenceFailed = define('SLUICE_INFERENCE_FAILED', 'INTERNAL', (model: string, reason: string) => `inference failed for model '${model}': ${reason}`);
export const UndecodableMessage = define('SLUICE_UNDECODABLE_MESSAGE', 'INVALID_ARG', (method: string, reason: string) => `the ${method} request is not a valid protobuf message: ${reason}`);
export const InputRejectedByModel = define('SLUICE_INPUT_REJECTED_BY_MODEL', 'INVALID_ARG', (model: string, reason: string) => `model '${model}' could not run this request's data (run on its own, while requests batched with it ran without it): ${reason}`);

// --- who may do what (docs/security.md); a message never repeats the key it was sent ---
export const MissingKey = define('SLUICE_MISSING_KEY', 'UNAUTHENTICATED', (how: string) => `this server requires an API key: ${how}`);
export const MalformedCredentials = define('SLUICE_MALFORMED_CREDENTIALS', 'UNAUTHENTICATED', (how: string) => `the credentials are not of the form the server accepts: ${how}`);
export const UnknownKey = define('SLUICE_UNKNOWN_KEY', 'UNAUTHENTICATED', () => 'the API key is not valid: it is unknown to this server or was revoked');
export const ScopeMissing = define('SLUICE_SCOPE_MISSING', 'PERMISSION_DENIED', (tenant: string, scope: string, what: string) => `the key of tenant '${tenant}' lacks the scope '${scope}' needed to ${what}`);
export const TenantInFlightLimit = define('SLUICE_TENANT_IN_FLIGHT_LIMIT', 'RATE_LIMITED', (tenant: string, max: number) => `tenant '${tenant}' already has ${max} requests in flight, its limit (max_in_flight); retry once one is answered`);
export const RateLimited = define('SLUICE_RATE_LIMITED', 'RATE_LIMITED', (tenant: string, what: string, retryAfterS: number) => `tenant '${tenant}' is over its rate limit of ${what}; retry after ${retryAfterS} s`);

// --- system shared memory (docs/protocol.md, shared-memory extension) ---
export const ShmRegionNotFound = define('SLUICE_SHM_REGION_NOT_FOUND', 'NOT_FOUND', (region: string) => `Unable to find system shared memory region: '${region}'; register it first`);
export const ShmRegionExists = define('SLUICE_SHM_REGION_EXISTS', 'ALREADY_EXISTS', (region: string) => `shared memory region '${region}' already in manager: unregister it first`);
export const InvalidShmKey = define('SLUICE_INVALID_SHM_KEY', 'INVALID_ARG', (key: string, reason: string) => `invalid shared-memory key '${key}': ${reason}`);
export const ShmKeyNotFound = define('SLUICE_SHM_KEY_NOT_FOUND', 'NOT_FOUND', (region: string, key: string, path: string) => `failed to register shared memory region '${region}': no shared-memory object '${key}' (${path}); create it with shm_open first`);
export const ShmOutOfBounds = define('SLUICE_SHM_OUT_OF_BOUNDS', 'INVALID_ARG', (what: string, offset: number, byteSize: number, size: number, of: string) => `${what}: offset ${offset} + byte_size ${byteSize} runs past the end of ${of} (${size} bytes)`);
export const ShmOverlap = define('SLUICE_SHM_OVERLAP', 'INVALID_ARG', (written: string, other: string, key: string) => `${written} would be written over bytes of shared-memory object '${key}' that ${other} also uses in this request: give them ranges that do not overlap`);
export const ShmOutputTooSmall = define('SLUICE_SHM_OUTPUT_TOO_SMALL', 'INVALID_ARG', (output: string, byteSize: number, needed: number) => `shared memory size specified with the request for output '${output}' (${byteSize} bytes) should be at least ${needed} bytes to hold the results`);
export const ShmIoFailed = define('SLUICE_SHM_IO_FAILED', 'INTERNAL', (region: string, reason: string) => `shared memory region '${region}': ${reason}`);

// --- protocol ---
export const NoRoute = define('SLUICE_NO_ROUTE', 'NOT_FOUND', (method: string, path: string) => `no route for ${method} ${path}`);
export const Unimplemented = define('SLUICE_UNIMPLEMENTED', 'UNIMPLEMENTED', (what: string) => `${what} is not supported by sluice`);
export const Internal = define('SLUICE_INTERNAL', 'INTERNAL', (reason: string) => `internal error: ${reason}`);
