// The seeded generator behind every sample model's weights.

/**
 * A seeded 32-bit xorshift generator: weights must be the same bytes on every machine and every run,
 * so tests can recompute outputs and regenerated files never differ.
 */
export class Xorshift32 {
  #state: number;
  constructor(seed: number) {
    // Zero is the one state xorshift never leaves.
    this.#state = seed >>> 0 || 0x9e3779b9;
  }

  /** Uniform in [0, 1). */
  next(): number {
    let x = this.#state;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.#state = x >>> 0;
    return this.#state / 4294967296;
  }

  /** Uniform in [-scale, scale). */
  symmetric(scale: number): number {
    return (this.next() * 2 - 1) * scale;
  }

  fill(n: number, scale: number): Float32Array {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = this.symmetric(scale);
    return out;
  }
}
