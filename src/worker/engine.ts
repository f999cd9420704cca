/**
 * One batch on a leased session, the same for the worker host (a batch read from its socket) and for
 * a gateway's in-process worker (InProcessWorker, inline or on an ONNX Runtime thread): the row check, the hand-over of the
 * inputs' memory, the run, and the result with its timings. The lease is released when the run ends.
 */
import { ShapeMismatch } from '../core/errors.ts';
import type { Tensor } from '../core/tensor.ts';
import type { Lease } from './cache.ts';
import type { Packed } from './ort-messages.ts';
import type { FrameResult } from './protocol.ts';

/** What a batch asks for, as its frame header (or the gateway's BatchJob) says. */
export interface RunHeader {
  readonly model: string;
  readonly version: string;
  readonly rows: number;
  readonly outputs: readonly string[];
}

/**
 * Starts the batch on `lease`. `pack` hands the inputs over (moving their memory to the ORT thread, or
 * copying what the caller keeps); it runs after the row check. Throws synchronously when the batch is
 * refused before it runs (the lease is then released); the promise settles when the run ends. The
 * result's stamps lack replyNs: the caller sets it when it answers.
 */
export function startRun(lease: Lease, header: RunHeader, inputs: readonly Tensor[], pack: () => Packed, enqueuedNs: bigint): Promise<FrameResult> {
  let run;
  try {
    const batching = (lease.config?.maxBatchSize ?? 0) > 0;
    for (const t of inputs) {
      if (batching && header.rows > 0 && t.shape[0] !== header.rows) {
        throw ShapeMismatch(t.name, header.model, `${header.rows} rows (the batch's row count) in dimension 0`, JSON.stringify(t.shape));
      }
    }
    const packed = pack();
    run = lease.session.run(packed.tensors, header.outputs, { transfer: packed.transfer, enqueuedNs });
  } catch (e) {
    lease.release();
    throw e;
  }
  return run.then(
    (r): FrameResult => {
      lease.release();
      return {
        outputs: r.outputs,
        computeInputNs: r.computeInputNs,
        computeInferNs: r.computeInferNs,
        computeOutputNs: r.computeOutputNs,
        cacheHit: lease.cacheHit,
        ...(lease.evicted.length > 0 ? { evicted: lease.evicted } : {}),
        ...(r.queueNs === undefined ? {} : { workerQueueNs: r.queueNs }),
        stamps: { recvNs: Number(enqueuedNs), ortStartNs: r.ortStartNs, ortEndNs: r.ortEndNs, replyNs: 0 },
      };
    },
    (e: unknown) => {
      lease.release();
      throw e;
    },
  );
}
