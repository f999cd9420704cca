import type { SluiceError } from './errors.ts';

/**
 * What the scheduler asks of tenants (implemented by the access layer from the auth config): their
 * fair-queuing weight and their rate limits. The tenant '' is the anonymous one: weight 1, no limits.
 */
export interface Tenancy {
  /** The tenant's share in fair queuing (> 0); 1 for a tenant the config does not name. */
  weightOf(tenant: string): number;
  /**
   * Takes one request from the tenant's request bucket: undefined when it had one, else the refusal
   * (RATE_LIMITED, with retryAfterSeconds). A tenant whose row bucket is already empty is refused here
   * too, before any body is read.
   */
  arrive(tenant: string, nowMs: number): SluiceError | undefined;
  /** Takes a decoded request's rows from the tenant's row bucket: undefined when they were there, else the refusal. */
  takeRows(tenant: string, rows: number, nowMs: number): SluiceError | undefined;
  /**
   * Counts an accepted request of the tenant in flight: undefined when it is under its max_in_flight
   * (call leave() once it is answered), else the refusal (RATE_LIMITED) and nothing is counted.
   */
  enter(tenant: string): SluiceError | undefined;
  leave(tenant: string): void;
}
