import type { ErrorKind } from './errors.ts';

/**
 * The HTTP status of each error kind: the one table for every HTTP door sluice has (the REST front
 * door and the worker protocol), so an error has the same status wherever it is answered over HTTP.
 *
 * Triton's HTTP frontend maps its error codes as: INTERNAL 500, NOT_FOUND 404, UNAVAILABLE 503,
 * UNSUPPORTED 501, everything else 400 (ALREADY_EXISTS too). A full queue is UNAVAILABLE in Triton, hence 503 for
 * RESOURCE_EXHAUSTED too. Kinds Triton lacks get the status a proxy or client library expects: an
 * expired deadline is 504 (sluice is a gateway), a request the client abandoned is 499 (nginx's
 * "client closed request"; the client never reads it, but logs and metrics do). Authentication
 * answers 401 and 403 as every HTTP API does, and a tenant over its rate limit 429 with Retry-After,
 * so that clients back off.
 */
const HTTP_STATUS: Readonly<Record<ErrorKind, number>> = {
  INVALID_ARG: 400,
  NOT_FOUND: 404,
  ALREADY_EXISTS: 400,
  UNAVAILABLE: 503,
  RESOURCE_EXHAUSTED: 503,
  DEADLINE_EXCEEDED: 504,
  CANCELLED: 499,
  UNIMPLEMENTED: 501,
  UNAUTHENTICATED: 401,
  PERMISSION_DENIED: 403,
  RATE_LIMITED: 429,
  INTERNAL: 500,
};

export function httpStatusOf(kind: ErrorKind): number {
  return HTTP_STATUS[kind];
}

/** Whether a string names an error kind (for errors read back from a worker's answer). */
export function isErrorKind(kind: string): kind is ErrorKind {
  return Object.hasOwn(HTTP_STATUS, kind);
}
