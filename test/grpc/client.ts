import assert from 'node:assert/strict';
import type { TestContext } from 'node:test';
import {
  credentials as grpcCredentials,
  loadPackageDefinition,
  type CallOptions,
  type ChannelCredentials,
  type ChannelOptions,
  type Client,
  type ClientDuplexStream,
  Metadata,
  type ServiceClientConstructor,
  type ServiceError,
  type status,
} from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { LOADER_OPTIONS, protosDir } from '../../src/frontdoor/grpc/proto.ts';

/** A decoded reply: proto-loader plain objects (64-bit integers as strings, bytes as Buffers). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Reply = Record<string, any>;

type UnaryMethod = (request: object, metadata: Metadata | CallOptions, options: CallOptions | ((e: ServiceError | null, r?: Reply) => void), cb?: (e: ServiceError | null, r?: Reply) => void) => unknown;

/** A real grpc-js client generated at run time from protos/, as any user of sluice would build one. */
export interface GrpcTestClient {
  readonly client: Client;
  /** Calls a unary method; rejects with the ServiceError on a non-OK status. */
  call(method: string, request?: object, options?: CallOptions & { metadata?: Metadata }): Promise<Reply>;
  /** Opens ModelStreamInfer. */
  stream(options?: CallOptions & { metadata?: Metadata }): ClientDuplexStream<object, Reply>;
  close(): void;
}

export function clientConstructor(): ServiceClientConstructor {
  const definition = loadSync('grpc_service.proto', { ...LOADER_OPTIONS, includeDirs: [protosDir()] });
  const pkg = loadPackageDefinition(definition) as unknown as { inference: { GRPCInferenceService: ServiceClientConstructor } };
  return pkg.inference.GRPCInferenceService;
}

/** Connects to 127.0.0.1:port; the channel closes when the test ends. */
export function connectGrpc(t: TestContext, port: number, options: ChannelOptions = {}, creds: ChannelCredentials = grpcCredentials.createInsecure(), target = `127.0.0.1:${port}`): GrpcTestClient {
  const Ctor = clientConstructor();
  const client = new Ctor(target, creds, options);
  t.after(() => client.close());
  const methods = client as unknown as Record<string, UnaryMethod>;
  return {
    client,
    call: (method, request = {}, callOptions = {}) => new Promise<Reply>((resolve, reject) => {
      const fn = methods[method];
      if (!fn) throw new Error(`no method ${method}`);
      const { metadata, ...rest } = callOptions;
      const cb = (e: ServiceError | null, r?: Reply): void => (e ? reject(e) : resolve(r ?? {}));
      if (metadata) fn.call(client, request, metadata, rest, cb);
      else fn.call(client, request, callOptions, cb);
    }),
    stream: (callOptions = {}) => {
      const { metadata, ...rest } = callOptions;
      const open = (client as unknown as Record<string, (...a: unknown[]) => ClientDuplexStream<object, Reply>>)['ModelStreamInfer']!;
      return metadata ? open.call(client, metadata, rest) : open.call(client, callOptions);
    },
    close: () => client.close(),
  };
}

/** Asserts that a call fails with the status and that its details mention every fragment. */
export async function expectStatus(promise: Promise<unknown>, code: status, ...fragments: string[]): Promise<ServiceError> {
  try {
    await promise;
  } catch (e) {
    const err = e as ServiceError;
    assert.equal(err.code, code, `expected status ${code}, got ${err.code}: ${err.details}`);
    for (const f of fragments) assert.ok(err.details.includes(f), `'${err.details}' should mention '${f}'`);
    return err;
  }
  assert.fail(`expected status ${code}, but the call succeeded`);
}

/** Little-endian INT32 bytes. */
export function int32Bytes(values: readonly number[]): Buffer {
  const b = Buffer.alloc(values.length * 4);
  values.forEach((v, i) => b.writeInt32LE(v, i * 4));
  return b;
}

export function int32Values(raw: Buffer): number[] {
  const out: number[] = [];
  for (let i = 0; i + 4 <= raw.byteLength; i += 4) out.push(raw.readInt32LE(i));
  return out;
}

/** A ModelInferRequest for the simple model with raw contents. */
export function simpleRequest(a: readonly number[], b: readonly number[], extra: Record<string, unknown> = {}): Record<string, unknown> {
  const rows = a.length / 16;
  return {
    model_name: 'simple',
    inputs: [{ name: 'INPUT0', datatype: 'INT32', shape: [rows, 16] }, { name: 'INPUT1', datatype: 'INT32', shape: [rows, 16] }],
    raw_input_contents: [int32Bytes(a), int32Bytes(b)],
    ...extra,
  };
}

/** The output named `name` of a ModelInferResponse, with its raw bytes. */
export function outputOf(reply: Reply, name: string): { datatype: string; shape: number[]; raw: Buffer } {
  const outputs = reply['outputs'] as { name: string; datatype: string; shape: string[] }[];
  const i = outputs.findIndex((o) => o.name === name);
  assert.ok(i >= 0, `no output ${name} in ${outputs.map((o) => o.name).join(', ')}`);
  const raw = (reply['raw_output_contents'] as Buffer[])[i];
  assert.ok(raw, `output ${name} has no raw_output_contents entry`);
  return { datatype: outputs[i]!.datatype, shape: outputs[i]!.shape.map(Number), raw };
}

export const range16 = (offset: number): number[] => Array.from({ length: 16 }, (_, i) => i + offset);
