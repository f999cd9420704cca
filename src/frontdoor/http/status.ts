import type { SluiceError } from '../../core/errors.ts';
import { httpStatusOf } from '../../core/http-status.ts';
import { BodyTooLarge, ModelBodyTooLarge } from '../../core/errors.ts';
import { statusOfKind, type RequestStatus } from '../../telemetry/metrics.ts';

/** The REST front door's status of each kind: the one HTTP table (src/core/http-status.ts). */
export { httpStatusOf };

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
