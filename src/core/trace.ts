/**
 * Per-request stage timestamps (Triton's trace extension, trace_level TIMESTAMPS). A front door asks
 * the tracer whether to trace a request; when it does, the request carries a RequestTrace and every
 * stage of the path marks it. All times are nanoseconds of one monotonic clock that every thread and
 * every local process of the host shares (process.hrtime), so a worker's stamps line up with the
 * gateway's; a remote worker host's stamps are taken on its own clock and are kept as it sent them.
 */

/**
 * The stages of one request, in path order. Triton's names where Triton has the stage (REQUEST_START,
 * QUEUE_START, COMPUTE_START, COMPUTE_INPUT_END, COMPUTE_OUTPUT_START, COMPUTE_END, REQUEST_END);
 * sluice's own for the hops Triton does not have.
 */
export const TRACE_STAGES = [
  /** The front door saw the request (headers read). */
  'REQUEST_START',
  /** Body decoded into tensors. */
  'DECODE_END',
  /** Checked against the model config. */
  'VALIDATE_END',
  /** Entered its model's queue. */
  'QUEUE_START',
  /** Left the queue in a batch (the batch was formed and its inputs written). */
  'COMPUTE_START',
  /** The batch was handed to the worker link. */
  'WORKER_SEND',
  /** The worker (or its ONNX Runtime thread) received the batch. */
  'WORKER_RECV',
  /** ONNX Runtime's run began (inputs bound). */
  'COMPUTE_INPUT_END',
  /** ONNX Runtime's run ended. */
  'COMPUTE_OUTPUT_START',
  /** The worker sent the result back. */
  'WORKER_REPLY',
  /** The gateway has the result split into this request's outputs. */
  'COMPUTE_END',
  /** The response is encoded for the wire. */
  'ENCODE_END',
  /** The response was handed to the socket. */
  'REQUEST_END',
] as const;

export type TraceStage = (typeof TRACE_STAGES)[number];

/** Now, on the trace clock (see the module comment). */
export function traceNow(): number {
  return Number(process.hrtime.bigint());
}

/** Where a worker's batch went, in trace-clock nanoseconds; set by whoever ran it. */
export interface BatchTimestamps {
  readonly workerSendNs: number;
  readonly workerRecvNs: number;
  readonly computeInputEndNs: number;
  readonly computeOutputStartNs: number;
  readonly workerReplyNs: number;
}

/** The trace of one sampled request. Stages may be marked in any order; the last mark of a stage wins. */
export interface RequestTrace {
  /** Unique within the server run. */
  readonly id: number;
  mark(stage: TraceStage, ns?: number): void;
  /** Marks the worker stages of the batch the request ran in. */
  markBatch(batch: BatchTimestamps): void;
  /** Marks REQUEST_END (now, unless given) and hands the finished trace to its sinks; later marks are ignored. */
  end(ns?: number): void;
}
