import * as grpc from '@grpc/grpc-js';
import { decodeGrpcResponse, grpcErrorKind, grpcRequest, loadInferenceProto, type InferRequestMsg, type InferResponseMsg } from './grpc-proto.ts';
import type { ModelMeta } from './workload.ts';
import { judge, type Transport } from './transport.ts';
import type { Outcome, WorkTensor } from './types.ts';

type UnaryCallback<T> = (err: grpc.ServiceError | null, res?: T) => void;

/** The two methods this tool calls, on a client proto-loader built. */
interface InferenceClient extends grpc.Client {
  ModelInfer(req: InferRequestMsg, metadata: grpc.Metadata, options: grpc.CallOptions, cb: UnaryCallback<InferResponseMsg>): grpc.ClientUnaryCall;
  ModelMetadata(req: { name: string; version: string }, metadata: grpc.Metadata, options: grpc.CallOptions, cb: UnaryCallback<ModelMetaMsg>): grpc.ClientUnaryCall;
}

interface ModelMetaMsg {
  name?: string;
  versions?: string[];
  platform?: string;
  inputs?: { name?: string; datatype?: string; shape?: number[] }[];
  outputs?: { name?: string; datatype?: string; shape?: number[] }[];
}

/** host:port from grpc://host:port, http://host:port or a bare host:port. */
export function grpcAddress(url: string): string {
  const m = /^(?:grpc|http):\/\/([^/]+)\/?$/.exec(url);
  if (m) return m[1]!;
  if (/^[^/:]+:\d+$/.test(url) || /^\[[^\]]+\]:\d+$/.test(url)) return url;
  throw new Error(`--grpc-url '${url}': expected grpc://host:port or host:port`);
}

function makeClients(address: string, channels: number): InferenceClient[] {
  const { Client } = loadInferenceProto();
  // Each client gets its own subchannel pool, hence its own HTTP/2 connection: several channels spread
  // streams over several connections instead of sharing one.
  return Array.from({ length: Math.max(1, channels) }, () => new Client(address, grpc.credentials.createInsecure(), {
    'grpc.use_local_subchannel_pool': 1,
    'grpc.max_receive_message_length': 256 * 1024 * 1024,
    'grpc.max_send_message_length': 256 * 1024 * 1024,
  }) as unknown as InferenceClient);
}

/** Model metadata over gRPC, for targets given only by --grpc-url. */
/** --header pairs as gRPC call metadata (names lower-cased, as HTTP/2 carries them). */
export function callMetadata(headers: Readonly<Record<string, string>> = {}): grpc.Metadata {
  const m = new grpc.Metadata();
  for (const [k, v] of Object.entries(headers)) m.set(k.toLowerCase(), v);
  return m;
}

export async function grpcModelMetadata(url: string, model: string, version: string, timeoutMs: number, headers: Readonly<Record<string, string>> = {}): Promise<ModelMeta> {
  const [client] = makeClients(grpcAddress(url), 1);
  try {
    const res = await new Promise<ModelMetaMsg>((resolve, reject) => {
      client!.ModelMetadata({ name: model, version }, callMetadata(headers), { deadline: Date.now() + timeoutMs }, (err, r) => (err ? reject(new Error(`ModelMetadata for '${model}' failed: ${grpcErrorKind(err.code)}: ${err.details}`)) : resolve(r ?? {})));
    });
    const tensors = (ts: ModelMetaMsg['inputs']): ModelMeta['inputs'] => (ts ?? []).map((t) => ({ name: t.name ?? '', datatype: t.datatype ?? '', shape: (t.shape ?? []).map(Number) }));
    return { name: res.name ?? model, versions: res.versions ?? [], platform: res.platform ?? '', inputs: tensors(res.inputs), outputs: tensors(res.outputs) };
  } finally {
    client!.close();
  }
}

/**
 * ModelInfer over @grpc/grpc-js: `channels` clients, calls spread round robin, raw tensor contents,
 * a deadline per call.
 */
export function grpcTransport(target: { url: string; model: string; version: string; variants: readonly (readonly WorkTensor[])[]; headers?: Readonly<Record<string, string>> }, opts: { channels: number; timeoutMs: number }): Transport {
  const clients = makeClients(grpcAddress(target.url), opts.channels);
  const metadata = callMetadata(target.headers);
  const requests = target.variants.map((inputs) => grpcRequest(target.model, target.version, inputs));
  let turn = 0;
  return {
    send(variant, check, signal): Promise<Outcome> {
      const req = requests[variant];
      if (!req) return Promise.reject(new Error(`no request for input set ${variant}`));
      const client = clients[turn++ % clients.length]!;
      return new Promise<Outcome>((resolve) => {
        const call = client.ModelInfer(req, metadata, { deadline: Date.now() + opts.timeoutMs }, (err, res) => {
          signal.removeEventListener('abort', onAbort);
          if (err) {
            resolve({ ok: false, error: signal.aborted ? 'aborted' : err.code === grpc.status.DEADLINE_EXCEEDED ? 'timeout' : grpcErrorKind(err.code) });
            return;
          }
          resolve(check ? judge(decodeGrpcResponse(res ?? {}), variant, check) : { ok: true });
        });
        const onAbort = (): void => call.cancel();
        signal.addEventListener('abort', onAbort, { once: true });
      });
    },
    close(): Promise<void> {
      for (const c of clients) c.close();
      return Promise.resolve();
    },
  };
}
