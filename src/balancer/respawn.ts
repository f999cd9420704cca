/**
 * When a local worker (a process or an ONNX Runtime thread) that died is started again: after a delay
 * that doubles with each death up to a cap, so that a worker dying at once does not spin the CPU, and
 * that starts over once a worker has lived long enough. The unref'd timer never holds the process up.
 */
export class RespawnSchedule {
  readonly #firstMs: number;
  readonly #maxMs: number;
  #delayMs: number;
  #timer: NodeJS.Timeout | undefined;

  constructor(opts: { readonly firstMs: number; readonly maxMs: number }) {
    this.#firstMs = opts.firstMs;
    this.#maxMs = opts.maxMs;
    this.#delayMs = opts.firstMs;
  }

  /** The delay the next schedule() waits. */
  get nextDelayMs(): number {
    return this.#delayMs;
  }

  /** The worker lived long enough: the next death waits the first delay again. */
  reset(): void {
    this.#delayMs = this.#firstMs;
  }

  /** Runs `respawn` after the current delay and doubles the next one. */
  schedule(respawn: () => void): void {
    const delay = this.#delayMs;
    this.#delayMs = Math.min(this.#maxMs, delay * 2);
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      respawn();
    }, delay);
    this.#timer.unref();
  }

  /** A scheduled respawn does not happen. */
  cancel(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}
