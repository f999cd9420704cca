import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { decodeRaw } from './raw-codec.ts';
import type { DecodedTensor, WorkTensor } from './types.ts';

const ENTRY = 'grpc_service.proto';

/** The service constructor proto-loader builds for inference.GRPCInferenceService. */
export type InferenceClientConstructor = grpc.ServiceClientConstructor;

/** What this tool needs of the service: the client constructor and the definition (for test servers). */
export interface InferenceProto {
  readonly Client: InferenceClientConstructor;
  readonly service: grpc.ServiceDefinition;
}

/** protos/ found by walking up from this module (the same code runs from loadtest/ and dist/loadtest/). */
function protosDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    if (existsSync(join(dir, 'protos', ENTRY))) return join(dir, 'protos');
    dir = dirname(dir);
  }
  throw new Error(`cannot find protos/${ENTRY}: the gRPC driver needs the Open Inference Protocol service definition`);
}

/**
 * Loads the service with snake_case fields, 64-bit integers as Numbers (shapes and the small values a
 * check compares are exact), bytes as Buffers and empty repeated fields present.
 */
export function loadInferenceProto(): InferenceProto {
  const definition = loadSync(ENTRY, { keepCase: true, longs: Number, enums: String, bytes: Buffer, defaults: true, arrays: true, oneofs: true, includeDirs: [protosDir()] });
  const loaded = grpc.loadPackageDefinition(definition) as unknown as { inference?: { GRPCInferenceService?: InferenceClientConstructor } };
  const Client = loaded.inference?.GRPCInferenceService;
  if (!Client) throw new Error(`${ENTRY} does not define inference.GRPCInferenceService`);
  return { Client, service: Client.service };
}

/** A ModelInferRequest with raw_input_contents, the fast path real clients use. */
export interface InferRequestMsg {
  model_name: string;
  model_version: string;
  inputs: { name: string; datatype: string; shape: number[] }[];
  raw_input_contents: Buffer[];
}

interface ContentsMsg {
  bool_contents?: boolean[];
  int_contents?: number[];
  int64_contents?: number[];
  uint_contents?: number[];
  uint64_contents?: number[];
  fp32_contents?: number[];
  fp64_contents?: number[];
  bytes_contents?: Buffer[];
}

/** A ModelInferResponse as proto-loader decodes it with the options above. */
export interface InferResponseMsg {
  outputs?: { name?: string; datatype?: string; shape?: number[]; contents?: ContentsMsg | null }[];
  raw_output_contents?: Buffer[];
}

export function grpcRequest(model: string, version: string, inputs: readonly WorkTensor[]): InferRequestMsg {
  return {
    model_name: model,
    model_version: version,
    inputs: inputs.map((t) => ({ name: t.name, datatype: t.datatype, shape: [...t.shape] })),
    raw_input_contents: inputs.map((t) => t.raw),
  };
}

function typedValues(datatype: string, c: ContentsMsg | null | undefined): (number | string)[] | undefined {
  if (!c) return undefined;
  switch (datatype) {
    case 'BOOL': return c.bool_contents?.map((b) => (b ? 1 : 0));
    case 'INT8': case 'INT16': case 'INT32': return c.int_contents?.map(Number);
    case 'INT64': return c.int64_contents?.map(Number);
    case 'UINT8': case 'UINT16': case 'UINT32': return c.uint_contents?.map(Number);
    case 'UINT64': return c.uint64_contents?.map(Number);
    case 'FP32': return c.fp32_contents?.map(Number);
    case 'FP64': return c.fp64_contents?.map(Number);
    case 'BYTES': return c.bytes_contents?.map((b) => Buffer.from(b).toString('latin1'));
    default: return undefined;
  }
}

/** Normalized outputs of a ModelInferResponse (raw contents when present, else typed contents). */
export function decodeGrpcResponse(res: InferResponseMsg): DecodedTensor[] | string {
  const outputs = res.outputs ?? [];
  const raw = res.raw_output_contents ?? [];
  if (raw.length > 0 && raw.length !== outputs.length) return `response has ${raw.length} raw_output_contents for ${outputs.length} outputs`;
  const out: DecodedTensor[] = [];
  for (let i = 0; i < outputs.length; i++) {
    const o = outputs[i]!;
    const name = o.name ?? '?';
    const datatype = o.datatype ?? '?';
    const values = raw.length > 0 ? decodeRaw(datatype, raw[i]!) : typedValues(datatype, o.contents);
    if (values === undefined) return `output '${name}' has no contents for datatype ${datatype}`;
    if (typeof values === 'string') return `output '${name}': ${values}`;
    out.push({ name, datatype, shape: (o.shape ?? []).map(Number), values });
  }
  return out;
}

/** 'grpc RESOURCE_EXHAUSTED' and so on. */
export function grpcErrorKind(code: number): string {
  const name = (grpc.status as unknown as Record<number, string>)[code];
  return `grpc ${name ?? String(code)}`;
}
