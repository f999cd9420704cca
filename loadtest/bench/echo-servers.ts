import * as grpc from '@grpc/grpc-js';
import Fastify from 'fastify';
import { loadInferenceProto, type InferRequestMsg } from '../grpc-proto.ts';
import type { BenchServer } from './naive-server.ts';

interface EchoInput {
  name?: string;
  shape?: unknown;
  datatype?: unknown;
  data?: unknown;
}

/** Output names of an echo: INPUT0 answers as OUTPUT0, so the reply has the shape of a real one. */
const outputName = (name: string | undefined): string => (name ?? 'OUTPUT').replace(/^INPUT/, 'OUTPUT');

const INFER_HEADER = 'inference-header-content-length';

/**
 * A binary tensor extension request answered with its own tensors as outputs: the JSON header parsed
 * and one written, the raw bytes passed through untouched.
 */
function echoBinary(model: string, body: Buffer, headerLength: number): { header: Buffer; raw: Buffer } {
  const doc = JSON.parse(body.toString('utf8', 0, headerLength)) as { inputs?: (EchoInput & { parameters?: { binary_data_size?: number } })[] };
  const header = Buffer.from(JSON.stringify({
    model_name: model,
    outputs: (doc.inputs ?? []).map((i) => ({ name: outputName(i.name), datatype: i.datatype, shape: i.shape, parameters: { binary_data_size: i.parameters?.binary_data_size ?? 0 } })),
  }));
  return { header, raw: body.subarray(headerLength) };
}

/**
 * The bare-Fastify ceiling: the same REST request (JSON, or the binary tensor extension) parsed and a
 * response of the same size serialized, with no inference in between. What sluice adds on top is its
 * whole pipeline.
 */
export async function startFastifyEcho(opts: { host: string; port: number }): Promise<BenchServer> {
  const app = Fastify({ logger: false, bodyLimit: 64 * 1024 * 1024 });
  app.addContentTypeParser('application/octet-stream', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));
  app.post<{ Params: { model: string }; Body: { inputs?: EchoInput[] } | Buffer }>('/v2/models/:model/infer', (req, reply) => {
    if (Buffer.isBuffer(req.body)) {
      const { header, raw } = echoBinary(req.params.model, req.body, Number(req.headers[INFER_HEADER] ?? req.body.length));
      void reply.header('content-type', 'application/octet-stream').header(INFER_HEADER, String(header.length)).send(Buffer.concat([header, raw]));
      return;
    }
    void reply.send({
      model_name: req.params.model,
      outputs: (req.body.inputs ?? []).map((i) => ({ name: outputName(i.name), datatype: i.datatype, shape: i.shape, data: i.data })),
    });
  });
  await app.listen({ host: opts.host, port: opts.port });
  const address = app.server.address();
  return { port: typeof address === 'object' && address ? address.port : opts.port, close: () => app.close() };
}

/**
 * The bare grpc-js ceiling: a unary ModelInfer that answers with the request's raw tensors as the
 * response's, the same message sizes as sluice's answers, no inference.
 */
export async function startGrpcEcho(opts: { host: string; port: number }): Promise<BenchServer> {
  const { service } = loadInferenceProto();
  const server = new grpc.Server();
  server.addService(service, {
    ModelInfer(call: grpc.ServerUnaryCall<InferRequestMsg, unknown>, callback: grpc.sendUnaryData<unknown>) {
      const r = call.request;
      callback(null, {
        model_name: r.model_name,
        model_version: '1',
        outputs: r.inputs.map((i) => ({ name: outputName(i.name), datatype: i.datatype, shape: i.shape })),
        raw_output_contents: r.raw_input_contents,
      });
    },
  });
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(`${opts.host}:${opts.port}`, grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p)));
  });
  return {
    port,
    close: () => new Promise<void>((resolve) => {
      server.tryShutdown(() => resolve());
    }),
  };
}
