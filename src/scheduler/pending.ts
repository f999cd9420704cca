import type { InferRequest, InferResponse } from '../core/inference.ts';
import type { Suspect } from './bisect.ts';
import type { QueueNode } from './queue.ts';
import type { RequestPlan } from './scheduler.ts';
import type { Candidate } from './select.ts';

/** A request in its model's queue, from enqueue until it is answered: what the batcher keeps of it. */
export interface Pending extends QueueNode, Candidate {
  readonly request: InferRequest;
  readonly plan: RequestPlan;
  /** The plan's shape class, or a key of its own while its failed batch is bisected (bisect.ts). */
  shapeKey: string;
  /** The queue list it waits in: its priority level's, or the last one once demoted past a DELAY deadline. */
  home: number;
  deadlineMs: number;
  readonly timeoutUs: number;
  /** Triton's timeout_action DELAY: past its deadline the request moves behind every other, not out. */
  readonly delayOnTimeout: boolean;
  /** Answer the request; an investigation wraps both to learn when each of its members is answered. */
  resolve: (response: InferResponse) => void;
  reject: (error: Error) => void;
  abort: (() => void) | undefined;
  /** Set when a batch holding this request failed for reasons of its worker: the worker and why. */
  firstFailure: string | undefined;
  /** Set while a batch it was in failed in ONNX Runtime is bisected (bisect.ts). */
  investigation?: Suspect['investigation'];
}

export type ShedReason = 'queue_full' | 'expected_wait' | 'timeout' | 'cancelled';
