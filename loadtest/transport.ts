import { CheckSampler } from './check.ts';
import type { Recorder } from './recorder.ts';
import type { DecodedTensor, OutputCheck, Outcome } from './types.ts';

/** The error kind of a sampled response whose outputs were not what the check expected. */
export const WRONG_ANSWER = 'wrong answer';

/**
 * Sends one inference request of a prepared input set. Implementations own their connections; they
 * resolve (never reject) with the outcome, and decode the outputs only when `check` is given.
 */
export interface Transport {
  send(variant: number, check: OutputCheck | undefined, signal: AbortSignal): Promise<Outcome>;
  close(): Promise<void>;
}

/** What a request function returns to the loops: the outcome of one request. */
export type RequestFn = (signal: AbortSignal) => Promise<Outcome>;

/**
 * A request function over a transport: rotates through the input sets, and checks a sample of the
 * responses (the recorder counts checked and wrong ones).
 */
export function requester(transport: Transport, variants: number, check: OutputCheck | undefined, checkEvery: number, recorder: Recorder): RequestFn {
  const sampler = new CheckSampler(check ? checkEvery : 0);
  let n = 0;
  return async (signal) => {
    const variant = n++ % variants;
    const sampled = sampler.next() ? check : undefined;
    let outcome: Outcome;
    try {
      outcome = await transport.send(variant, sampled, signal);
    } catch (e) {
      outcome = { ok: false, error: signal.aborted ? 'aborted' : `transport: ${errorCode(e)}` };
    }
    if (sampled && (outcome.ok || outcome.error === WRONG_ANSWER)) recorder.noteChecked(!outcome.ok);
    return outcome;
  };
}

/** A short, bounded-cardinality name for a thrown error (its code when it has one). */
export function errorCode(e: unknown): string {
  if (e && typeof e === 'object') {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && code !== '') return code;
    const name = (e as { name?: unknown }).name;
    if (typeof name === 'string' && name !== 'Error') return name;
  }
  return 'error';
}

/** Applies a check to decoded outputs, mapping a decode failure or mismatch to a wrong answer. */
export function judge(decoded: DecodedTensor[] | string, variant: number, check: OutputCheck | undefined): Outcome {
  if (!check) return { ok: true };
  const reason = check(variant, decoded);
  return reason === undefined ? { ok: true } : { ok: false, error: WRONG_ANSWER };
}
