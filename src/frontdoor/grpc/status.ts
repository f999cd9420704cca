import { Metadata, status, type ServiceError } from '@grpc/grpc-js';
import type { ErrorKind, SluiceError } from '../../core/errors.ts';

/** The gRPC status of each transport-neutral error kind (the gRPC column of docs/errors.md). */
export function grpcStatusOf(kind: ErrorKind): status {
  switch (kind) {
    case 'INVALID_ARG': return status.INVALID_ARGUMENT;
    case 'NOT_FOUND': return status.NOT_FOUND;
    case 'ALREADY_EXISTS': return status.ALREADY_EXISTS;
    case 'UNAVAILABLE': return status.UNAVAILABLE;
    case 'RESOURCE_EXHAUSTED': return status.RESOURCE_EXHAUSTED;
    case 'DEADLINE_EXCEEDED': return status.DEADLINE_EXCEEDED;
    case 'CANCELLED': return status.CANCELLED;
    case 'UNIMPLEMENTED': return status.UNIMPLEMENTED;
    case 'UNAUTHENTICATED': return status.UNAUTHENTICATED;
    case 'PERMISSION_DENIED': return status.PERMISSION_DENIED;
    case 'RATE_LIMITED': return status.RESOURCE_EXHAUSTED;
    case 'INTERNAL': return status.INTERNAL;
  }
}

/** Trailing metadata key carrying the catalog's stable error code, for clients that branch on it. */
export const ERROR_CODE_KEY = 'sluice-error-code';

/** Trailing metadata key telling a rate-limited client when to try again, in seconds (as HTTP's Retry-After). */
export const RETRY_AFTER_KEY = 'retry-after';

/** The error a handler passes to grpc-js: status from the kind, details = the catalog's message. */
export function toServiceError(e: SluiceError): Partial<ServiceError> & { code: status; details: string } {
  const metadata = new Metadata();
  metadata.set(ERROR_CODE_KEY, e.code);
  if (e.retryAfterSeconds !== undefined) metadata.set(RETRY_AFTER_KEY, String(e.retryAfterSeconds));
  return { name: e.name, message: e.message, code: grpcStatusOf(e.kind), details: e.message, metadata };
}
