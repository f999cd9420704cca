/**
 * Stop strings over a growing text: text is released only once it cannot be the start of a stop
 * string, so a stream never shows part of the stop string; the stop string itself is not answered.
 */
import { decodeAscii } from './tokenizer.ts';

export class StopMatcher {
  readonly #stops: readonly string[];
  #text = '';
  #released = 0;
  #stopped = false;

  constructor(stops: readonly string[]) {
    this.#stops = stops.filter((s) => s !== '');
  }

  get stopped(): boolean {
    return this.#stopped;
  }

  /** The answer's text so far (without the stop string once one matched). */
  get text(): string {
    return this.#text;
  }

  /** Adds a token's text; returns what may be released now ('' when all of it is held back). */
  push(token: number): string {
    this.#text += decodeAscii([token]);
    for (const stop of this.#stops) {
      const at = this.#text.indexOf(stop, Math.max(0, this.#released - stop.length + 1));
      if (at >= 0) {
        this.#text = this.#text.slice(0, at);
        this.#stopped = true;
        return this.flush();
      }
    }
    let hold = 0;
    for (const stop of this.#stops) {
      for (let n = Math.min(stop.length - 1, this.#text.length); n > hold; n--) {
        if (this.#text.endsWith(stop.slice(0, n))) {
          hold = n;
          break;
        }
      }
    }
    return this.#release(this.#text.length - hold);
  }

  /** Releases everything not yet released (the sequence ended). */
  flush(): string {
    return this.#release(this.#text.length);
  }

  #release(upTo: number): string {
    if (upTo <= this.#released) return '';
    const out = this.#text.slice(this.#released, upTo);
    this.#released = upTo;
    return out;
  }
}
