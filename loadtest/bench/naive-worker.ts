import { parentPort, workerData } from 'node:worker_threads';
import * as ort from 'onnxruntime-node';

/** One FP32 inference request for the naive server: the data of its single input, batch of one. */
export interface NaiveJob {
  readonly id: number;
  readonly shape: readonly number[];
  readonly data: Float32Array;
}

/** The worker's answer to a NaiveJob: the outputs, or why the run failed. */
export interface NaiveAnswer {
  readonly id: number;
  readonly error?: string;
  readonly outputs?: { name: string; shape: number[]; data: Float32Array }[];
}

/**
 * The naive baseline's inference thread: one ONNX Runtime session, each request run on its own as it
 * arrives (no batching), which is what serving a model "the simple way" with onnxruntime-node does.
 */
const { modelFile, inputName, intraOpThreads } = workerData as { modelFile: string; inputName: string; intraOpThreads: number };
ort.env.logLevel = 'fatal';
const session = await ort.InferenceSession.create(modelFile, { executionProviders: ['cpu'], intraOpNumThreads: intraOpThreads });
const port = parentPort!;
port.postMessage({ ready: true });
port.on('message', (job: NaiveJob) => {
  void session.run({ [inputName]: new ort.Tensor('float32', job.data, job.shape) }).then(
    (result) => {
      const outputs = Object.entries(result).map(([name, t]) => ({ name, shape: t.dims.map(Number), data: t.data as Float32Array }));
      port.postMessage({ id: job.id, outputs } satisfies NaiveAnswer, outputs.map((o) => o.data.buffer as ArrayBuffer));
    },
    (e: unknown) => port.postMessage({ id: job.id, error: (e as Error).message } satisfies NaiveAnswer),
  );
});
