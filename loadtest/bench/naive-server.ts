import { Worker } from 'node:worker_threads';
import Fastify from 'fastify';
import type { NaiveAnswer } from './naive-worker.ts';

/** A started baseline server: its port and how to stop it. */
export interface BenchServer {
  readonly port: number;
  close(): Promise<void>;
}

/** Starts a module as a worker thread; TypeScript sources go through tsx's loader inside the thread. */
export function startWorkerThread(url: URL, workerData: unknown): Worker {
  if (!url.pathname.endsWith('.ts')) return new Worker(url, { workerData });
  const api = import.meta.resolve('tsx/esm/api');
  const boot = `import(${JSON.stringify(api)}).then((m) => { m.register(); return import(${JSON.stringify(url.href)}); })`;
  return new Worker(boot, { eval: true, workerData });
}

interface JsonInput {
  name?: unknown;
  shape?: unknown;
  datatype?: unknown;
  data?: unknown;
}

/**
 * The naive baseline of the batching benchmark: Fastify parses the REST JSON request, hands the tensor
 * to a worker thread that runs onnxruntime-node on it alone, and answers JSON. It speaks just enough
 * of the Open Inference Protocol (one FP32 input) for the load tool to drive it like sluice.
 */
export async function startNaiveServer(opts: { modelFile: string; model: string; inputName: string; host: string; port: number; intraOpThreads: number; skipInference?: boolean }): Promise<BenchServer> {
  const worker = startWorkerThread(new URL('./naive-worker.ts', import.meta.url), { modelFile: opts.modelFile, inputName: opts.inputName, intraOpThreads: opts.intraOpThreads });
  await new Promise<void>((resolve, reject) => {
    worker.once('message', () => resolve());
    worker.once('error', reject);
  });
  const pending = new Map<number, (a: NaiveAnswer) => void>();
  let nextId = 0;
  worker.on('message', (a: NaiveAnswer) => {
    const done = pending.get(a.id);
    pending.delete(a.id);
    done?.(a);
  });

  const run = (shape: number[], data: Float32Array): Promise<NaiveAnswer> => new Promise<NaiveAnswer>((resolve) => {
    const id = nextId++;
    pending.set(id, resolve);
    worker.postMessage({ id, shape, data }, [data.buffer as ArrayBuffer]);
  });
  // Without inference, a request is answered with the outputs of the first real run of the same
  // shape: the same bytes on the wire as a real reply, values not computed (the load tool must not
  // check them). What is left is Fastify, JSON parsing and the tensor copy: the ceiling of this design.
  const samples = new Map<string, NaiveAnswer>();
  const answerOf = async (shape: number[], data: Float32Array): Promise<NaiveAnswer> => {
    if (!opts.skipInference) return run(shape, data);
    const key = shape.join('x');
    const known = samples.get(key);
    if (known) return known;
    const answer = await run(shape, data);
    if (answer.outputs) samples.set(key, answer);
    return answer;
  };

  const app = Fastify({ logger: false, bodyLimit: 64 * 1024 * 1024 });
  app.post<{ Params: { model: string }; Body: { inputs?: JsonInput[] } }>('/v2/models/:model/infer', async (req, reply) => {
    const input = req.body?.inputs?.[0];
    if (req.params.model !== opts.model || !input || !Array.isArray(input.data) || !Array.isArray(input.shape)) {
      return reply.code(400).send({ error: `expected one FP32 input for model '${opts.model}'` });
    }
    const data = Float32Array.from((input.data as unknown[]).flat(Infinity) as number[]);
    const shape = input.shape as number[];
    const answer = await answerOf(shape, data);
    if (answer.error !== undefined || !answer.outputs) return reply.code(500).send({ error: answer.error ?? 'no outputs' });
    return {
      model_name: opts.model,
      outputs: answer.outputs.map((o) => ({ name: o.name, datatype: 'FP32', shape: o.shape, data: Array.from(o.data) })),
    };
  });
  await app.listen({ host: opts.host, port: opts.port });
  const address = app.server.address();
  return {
    port: typeof address === 'object' && address ? address.port : opts.port,
    async close() {
      await app.close();
      // Terminated only once idle: terminating a thread inside session.run aborts the process.
      await worker.terminate();
    },
  };
}
