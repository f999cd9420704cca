/**
 * One unref'd timer that fires at the earliest time it was armed for: arming it later than it is set
 * changes nothing, arming it earlier moves it. A queue keeps one for its earliest deadline and one for
 * the end of its batching delay, so that the number of timers never grows with the number of requests.
 */
export class Alarm {
  readonly #onFire: () => void;
  #at = Infinity;
  #timer: NodeJS.Timeout | undefined;

  constructor(onFire: () => void) {
    this.#onFire = onFire;
  }

  /** When it fires next (performance.now() milliseconds), Infinity when unset. */
  get at(): number {
    return this.#at;
  }

  /** Fires at `at` unless already set to fire sooner. */
  arm(at: number, now: number): void {
    if (at >= this.#at) return;
    this.clear();
    this.#at = at;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#at = Infinity;
      this.#onFire();
    }, Math.max(0, Math.ceil(at - now)));
    this.#timer.unref();
  }

  clear(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#at = Infinity;
  }
}
