import type { Scheduler } from './scheduler.ts';

/**
 * The schedulers that hold queued work the executor had no slot for, in the order they blocked. On
 * the executor's drain signal they are served round-robin, one batch each per round, until a slot is
 * lacking again; a scheduler leaves the list once it has nothing to send. Only these are visited: an
 * idle model costs nothing when a slot frees.
 */
export class ReadyList {
  readonly #waiting = new Set<Scheduler>();

  get size(): number {
    return this.#waiting.size;
  }

  add(scheduler: Scheduler): void {
    this.#waiting.add(scheduler);
  }

  delete(scheduler: Scheduler): void {
    this.#waiting.delete(scheduler);
  }

  /** Called on the drain signal. Each 'sent' takes requests off a queue, so the rounds end. */
  drain(): void {
    while (this.#waiting.size > 0) {
      let sent = false;
      for (const s of [...this.#waiting]) {
        const r = s.dispatchOne();
        // Every model's batches run on the same workers: no slot for one is no slot for any.
        if (r === 'busy') return;
        this.#waiting.delete(s);
        if (r === 'sent') {
          sent = true;
          // To the back: the next round starts with a model that has not sent yet.
          this.#waiting.add(s);
        }
      }
      if (!sent) return;
    }
  }
}
