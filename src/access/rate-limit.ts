import type { BucketLimit } from './access-config.ts';

/**
 * A token bucket: `perSecond` tokens flow in, at most `burst` are kept. Taking more than the bucket can
 * ever hold needs a full bucket and leaves it in debt, so a large request still passes at the
 * long-run rate instead of never.
 */
export class TokenBucket {
  readonly limit: BucketLimit;
  #tokens: number;
  #lastMs: number;

  constructor(limit: BucketLimit, nowMs: number) {
    this.limit = limit;
    this.#tokens = limit.burst;
    this.#lastMs = nowMs;
  }

  /** Tokens there now (negative while in debt). */
  level(nowMs: number): number {
    this.#refill(nowMs);
    return this.#tokens;
  }

  /** Takes `n` tokens: 0 when they were there, else the milliseconds until they will be (nothing taken). */
  take(n: number, nowMs: number): number {
    this.#refill(nowMs);
    const need = Math.min(n, this.limit.burst);
    if (this.#tokens >= need) {
      this.#tokens -= n;
      return 0;
    }
    return this.waitMs(need, nowMs);
  }

  /** Milliseconds until `n` tokens (at most a full bucket) are there. */
  waitMs(n: number, nowMs: number): number {
    this.#refill(nowMs);
    const missing = Math.min(n, this.limit.burst) - this.#tokens;
    return missing <= 0 ? 0 : (missing / this.limit.perSecond) * 1000;
  }

  #refill(nowMs: number): void {
    const elapsed = nowMs - this.#lastMs;
    if (elapsed <= 0) return;
    this.#lastMs = nowMs;
    this.#tokens = Math.min(this.limit.burst, this.#tokens + (elapsed / 1000) * this.limit.perSecond);
  }
}

/** Whole seconds for Retry-After: at least 1, rounded up. */
export function retryAfterSeconds(waitMs: number): number {
  return Math.max(1, Math.ceil(waitMs / 1000));
}

/** Whether two limits are the same (a reload keeps a bucket's level when its limit did not change). */
export function sameLimit(a: BucketLimit | undefined, b: BucketLimit | undefined): boolean {
  return a?.perSecond === b?.perSecond && a?.burst === b?.burst;
}
