import type { ErrorKind, SluiceError } from '../../core/errors.ts';
import { BodyTooLarge, ModelBodyTooLarge } from '../../core/errors.ts';
import { statusOfKind, type RequestStatus } from '../../telemetry/metrics.ts';

/**
 * Triton's HTTP frontend maps its error codes as: INTERNAL 500, NOT_FOUND 404, UNAVAILABLE 503,
 * UNSUPPORTED 501, everything else 400. A full queue is UNAVAILABLE in Triton, hence 503 here too.
 * Kinds Triton lacks get the status a proxy or client library expects: an expired deadline is 504
 * (sluice is a gateway), a request the client abandoned is 499 (nginx's "client closed request";
 * the client never reads it, but logs and metrics do). Authentication answers 401 and 403 as every HTTP
 * API does, and a tenant over its rate limit 429 with Retry-After, so that clients back off.
 */
export function httpStatusOf(kind: ErrorKind): number {
  switch (kind) {
    case 'INVALID_ARG': return 400;
    case 'NOT_FOUND': return 404;
    case 'UNAVAILABLE': return 503;
    case 'RESOURCE_EXHAUSTED': return 503;
    case 'DEADLINE_EXCEEDED': return 504;
    case 'CANCELLED': return 499;
    case 'UNIMPLEMENTED':
    case 'UNSUPPORTED': return 501;
    case 'UNAUTHENTICATED': return 401;
    case 'PERMISSION_DENIED': return 403;
    case 'RATE_LIMITED': return 429;
    case 'INTERNAL': return 500;
  }
}

/** The status of one error: its kind's, except an oversize body, which HTTP names 413. */
export function httpStatusOfError(e: SluiceError): number {
  return e.code === BodyTooLarge.code || e.code === ModelBodyTooLarge.code ? 413 : httpStatusOf(e.kind);
}

/** The metric status label of a response that was not a SluiceError (framework errors, plain statuses). */
export function requestStatusOfHttp(status: number): RequestStatus {
  if (status < 400) return 'success';
  if (status === 401 || status === 403) return 'denied';
  if (status === 404) return 'not_found';
  if (status === 429) return 'rate_limited';
  if (status === 499) return 'cancelled';
  if (status === 501) return 'unimplemented';
  if (status === 503) return 'unavailable';
  if (status === 504) return 'timeout';
  if (status < 500) return 'invalid';
  return 'internal';
}

/** The metric status label of a SluiceError. */
export function requestStatusOfError(e: SluiceError): RequestStatus {
  return statusOfKind(e.kind, e.code);
}
