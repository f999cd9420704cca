import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ServiceDefinition } from '@grpc/grpc-js';
import { loadSync, type Options } from '@grpc/proto-loader';
import { wireFormatError } from './wire-check.ts';

/**
 * How sluice turns protos/ into message objects, the one documented way (docs/protocol.md): the .proto
 * files are loaded at start by @grpc/proto-loader (no generated code to keep in step), with snake_case
 * field names as written in the .proto, every 64-bit integer as a decimal string (exact, for INT64 and
 * UINT64 tensor contents; shapes are checked and turned into numbers by the codec), bytes as Buffers
 * (zero-copy views of the received message), enums as their names, and every field present with its
 * default so handlers never test for undefined. Tests build their clients with the same options.
 */
export const LOADER_OPTIONS: Readonly<Options> = Object.freeze({
  keepCase: true,
  longs: String,
  enums: String,
  bytes: Buffer,
  defaults: true,
  arrays: true,
  objects: true,
  oneofs: true,
});

const ENTRY = 'grpc_service.proto';
const SERVICE = 'inference.GRPCInferenceService';

/**
 * The protos/ folder: found by walking up from this module, so that the same code works from src/
 * (through tsx) and from dist/src/ (compiled), whose depths differ.
 */
export function protosDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const candidate = join(dir, 'protos');
    if (existsSync(join(candidate, ENTRY))) return candidate;
    dir = dirname(dir);
  }
  throw new Error(`cannot find protos/${ENTRY} above ${fileURLToPath(import.meta.url)}`);
}

/** Loads inference.GRPCInferenceService from protos/ (synchronous, once at server start). */
export function loadInferenceService(): ServiceDefinition {
  const definition = loadSync(ENTRY, { ...LOADER_OPTIONS, includeDirs: [protosDir()] });
  const service = definition[SERVICE];
  if (!service || 'format' in service) throw new Error(`${ENTRY} does not define the service ${SERVICE}`);
  return toleratingUndecodable(service);
}

/** Marks a request message that did not decode; `reason` is the decoder's. */
export const UNDECODABLE: unique symbol = Symbol('undecodable request');

/** What a method receives for bytes that are not its request message. */
export interface UndecodableMsg {
  readonly [UNDECODABLE]: string;
  readonly model_name: '';
  readonly model_version: '';
  readonly id: '';
}

export function undecodableReason(msg: unknown): string | undefined {
  return typeof msg === 'object' && msg !== null && UNDECODABLE in msg ? (msg as UndecodableMsg)[UNDECODABLE] : undefined;
}

function undecodable(reason: string): UndecodableMsg {
  return { [UNDECODABLE]: reason, model_name: '', model_version: '', id: '' };
}

/**
 * grpc-js answers a request its deserializer throws on with INTERNAL ("Error deserializing request")
 * before any handler runs, so the client hears of a server fault and nothing counts it. Each method's
 * deserializer here hands the handler a marked message instead, which it answers INVALID_ARGUMENT and
 * counts like any bad request; so does a message whose framing is wrong (wire-check.ts), which
 * protobufjs would decode into a silently wrong request.
 */
function toleratingUndecodable(service: ServiceDefinition): ServiceDefinition {
  const out: Record<string, ServiceDefinition[string]> = {};
  for (const [name, method] of Object.entries(service)) {
    const decode = method.requestDeserialize;
    out[name] = {
      ...method,
      requestDeserialize: (bytes: Buffer) => {
        const framing = wireFormatError(bytes);
        if (framing !== undefined) return undecodable(framing);
        try {
          return decode(bytes) as unknown;
        } catch (e) {
          return undecodable(e instanceof Error ? e.message : String(e));
        }
      },
    };
  }
  return out as ServiceDefinition;
}

// The message shapes proto-loader produces with LOADER_OPTIONS (decoded requests) and accepts (replies).
// Only the messages whose fields handlers read or write are typed here.

/** An InferParameter: exactly one of the *_param fields is set, named by parameter_choice. */
export interface InferParameterMsg {
  bool_param?: boolean;
  /** int64 as a decimal string. */
  int64_param?: string;
  string_param?: string;
  double_param?: number;
  /** uint64 as a decimal string. */
  uint64_param?: string;
  parameter_choice?: string;
}

/** Typed tensor contents; 64-bit integers as decimal strings. */
export interface InferTensorContentsMsg {
  bool_contents: boolean[];
  int_contents: number[];
  int64_contents: string[];
  uint_contents: number[];
  uint64_contents: string[];
  fp32_contents: number[];
  fp64_contents: number[];
  bytes_contents: Buffer[];
}

/** One input of a ModelInferRequest. contents is null when the client left it unset. */
export interface InferInputTensorMsg {
  name: string;
  datatype: string;
  shape: string[];
  parameters: Record<string, InferParameterMsg>;
  contents: InferTensorContentsMsg | null;
}

/** One requested output of a ModelInferRequest. */
export interface InferRequestedOutputMsg {
  name: string;
  parameters: Record<string, InferParameterMsg>;
}

/** ModelInferRequest as decoded. */
export interface ModelInferRequestMsg {
  model_name: string;
  model_version: string;
  id: string;
  parameters: Record<string, InferParameterMsg>;
  inputs: InferInputTensorMsg[];
  outputs: InferRequestedOutputMsg[];
  raw_input_contents: Buffer[];
}

/** One output of a ModelInferResponse as sluice writes it (data travels in raw_output_contents). */
export interface InferOutputTensorMsg {
  name: string;
  datatype: string;
  shape: number[];
  /** Set for an output written into shared memory: the region and the bytes written there. */
  parameters?: Record<string, InferParameterMsg>;
}

/** ModelInferResponse as sluice writes it. */
export interface ModelInferResponseMsg {
  model_name: string;
  model_version: string;
  id: string;
  outputs: InferOutputTensorMsg[];
  raw_output_contents: Buffer[];
  /** On a stream: triton_final_response says whether more answers to this request follow. */
  parameters?: Record<string, InferParameterMsg>;
}

/** ModelStreamInferResponse: error_message is '' on success. */
export interface ModelStreamInferResponseMsg {
  error_message: string;
  infer_response: ModelInferResponseMsg | null;
}
