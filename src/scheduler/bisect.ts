import { InferenceFailed, InputRejectedByModel, type SluiceError } from '../core/errors.ts';
import type { InferResponse } from '../core/inference.ts';

/**
 * Finding the request whose data failed a batch. When ONNX Runtime fails a batch of several requests
 * (SLUICE_INFERENCE_FAILED: a Cast that cannot parse a string, say), the fault may be one client's
 * data, and failing everyone batched with it would let one client fail others at will. The batcher
 * splits such a batch in halves and queues each at the head as a batch of its own (a shape key no other
 * request shares keeps strangers out), halving again whatever fails, until the requests that fail on
 * their own are found. A batch of n requests with one culprit costs about 2 log2(n) extra runs.
 *
 * A request that fails on its own is answered once every member of the original batch is: if any of
 * them ran, the model works and the data was the culprit's (InputRejectedByModel, 400 /
 * INVALID_ARGUMENT); if none did, the model itself fails and each gets the original error.
 */
export class Investigation {
  readonly #model: string;
  #open: number;
  #succeeded = false;
  readonly #held: { reject: (e: Error) => void; error: SluiceError }[] = [];

  constructor(model: string, members: number) {
    this.#model = model;
    this.#open = members;
  }

  /** A member was answered, or failed some other way (timeout, cancel, shutdown). */
  settled(ok: boolean): void {
    if (ok) this.#succeeded = true;
    this.#done();
  }

  /** A member failed on its own: its answer waits until every other member has one. */
  culprit(reject: (e: Error) => void, error: SluiceError): void {
    this.#held.push({ reject, error });
    this.#done();
  }

  #done(): void {
    if (--this.#open > 0) return;
    for (const { reject, error } of this.#held.splice(0)) reject(this.#succeeded ? InputRejectedByModel(this.#model, innerReason(error)) : error);
  }
}

/** A queued request as an investigation sees it: how it is answered. */
export interface Suspect {
  resolve: (response: InferResponse) => void;
  reject: (error: Error) => void;
  /** Set once it is enlisted; `reject` is the answer before enlist wrapped it. */
  investigation?: { readonly inv: Investigation; readonly reject: (error: Error) => void };
}

/**
 * Enlists the members of a failed batch in their investigation (the one a half batch's members share,
 * or a new one), wrapping their answers so that it hears of each.
 */
function enlist(members: readonly Suspect[], model: string): void {
  const inv = members[0]?.investigation?.inv ?? new Investigation(model, members.length);
  for (const p of members) {
    if (p.investigation) continue;
    const { resolve, reject } = p;
    p.investigation = { inv, reject };
    p.resolve = (r) => {
      inv.settled(true);
      resolve(r);
    };
    p.reject = (err) => {
      inv.settled(false);
      reject(err);
    };
  }
}

/** Whether a failed batch may be the fault of one member's data: ONNX Runtime's own failure. */
export function isDataFailure(error: SluiceError): boolean {
  return error.code === InferenceFailed.code;
}

/** ONNX Runtime's message without InferenceFailed's prefix, for the culprit's error. */
function innerReason(error: SluiceError): string {
  const prefix = /^inference failed for model '[^']*': /;
  return error.message.replace(prefix, '');
}

/** A shape key no queued request has: the members of one half batch with each other and nobody else. */
function isolatedKey(shapeKey: string, n: number): string {
  return `${shapeKey}\u0000bisect ${n}`;
}

/**
 * Splits a failed batch (two members at least) into two halves, each under a shape key of its own,
 * its members enlisted in their investigation. `counter` numbers the keys; the next one is returned.
 */
export function bisect(members: readonly (Suspect & { readonly plan: { readonly shapeKey: string }; shapeKey: string })[], model: string, counter: number): number {
  enlist(members, model);
  const half = Math.ceil(members.length / 2);
  const keys = [isolatedKey(members[0]!.plan.shapeKey, counter), isolatedKey(members[0]!.plan.shapeKey, counter + 1)];
  members.forEach((p, i) => {
    p.shapeKey = keys[i < half ? 0 : 1]!;
  });
  return counter + 2;
}
