import { isSluiceError } from '../core/errors.ts';
import type { ScrapeRefusal } from '../telemetry/server.ts';
import type { AccessGuard } from './guard.ts';

/** The metrics port's check: a key with the metrics scope, else 401 or 403 with the reason. */
export function scrapeAuthorizer(guard: AccessGuard): (authorization: string | undefined) => ScrapeRefusal | undefined {
  return (authorization) => {
    try {
      guard.authorize(guard.authenticate(authorization, 'header'), 'metrics');
      return undefined;
    } catch (e) {
      if (!isSluiceError(e)) throw e;
      return { status: e.kind === 'UNAUTHENTICATED' ? 401 : 403, message: e.message };
    }
  };
}
