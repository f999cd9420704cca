import type { InferRequest } from '../core/inference.ts';
import { isBytesData } from '../core/tensor.ts';

/** Bytes of a request's input tensors (BYTES elements counted with their 4-byte length prefix). */
export function requestBytes(request: InferRequest): number {
  let n = 0;
  for (const t of request.inputs) {
    if (isBytesData(t.data)) {
      for (const e of t.data) n += e.byteLength + 4;
    } else {
      n += t.data.byteLength;
    }
  }
  return n;
}

/**
 * The gateway-wide bound on what accepted requests hold: the input bytes of every request from the
 * moment it is queued until it is answered, across all models. Queue sizes bound requests per model;
 * this bounds their memory when requests are large, so that a burst of big bodies is refused with
 * RESOURCE_EXHAUSTED instead of growing the heap until the process dies.
 */
export class RequestMemory {
  readonly limitBytes: number;
  #held = 0;

  constructor(limitBytes: number) {
    if (!Number.isSafeInteger(limitBytes) || limitBytes < 1) throw new RangeError(`request memory limit must be a positive integer, got ${limitBytes}`);
    this.limitBytes = limitBytes;
  }

  get heldBytes(): number {
    return this.#held;
  }

  /** Takes `bytes` if they fit under the limit; returns a release function to call once, or undefined. */
  reserve(bytes: number): (() => void) | undefined {
    if (this.#held + bytes > this.limitBytes) return undefined;
    this.#held += bytes;
    let held = bytes;
    return () => {
      this.#held -= held;
      held = 0;
    };
  }
}
