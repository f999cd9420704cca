/** Picking the next token from a row of logits: greedy at temperature 0, else seeded sampling. */

/** mulberry32: small, fast and seeded, so that one seed gives the same numbers again (sampling, load generators). */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function argmax(logits: Float32Array): number {
  let best = 0;
  for (let i = 1; i < logits.length; i++) if (logits[i]! > logits[best]!) best = i;
  return best;
}

/** How a token is drawn: greedy at temperature 0; else from the `topK` likeliest (0 = all) within `topP` of the mass (1 = all). */
export interface SamplingParams {
  readonly temperature: number;
  readonly topK: number;
  readonly topP: number;
}

export function sampleToken(logits: Float32Array, p: SamplingParams, random: () => number): number {
  if (p.temperature <= 0 || p.topK === 1) return argmax(logits);
  const max = logits[argmax(logits)]!;
  const weights = new Float64Array(logits.length);
  let sum = 0;
  for (let i = 0; i < logits.length; i++) {
    weights[i] = Math.exp((logits[i]! - max) / p.temperature);
    sum += weights[i]!;
  }
  const truncated = (p.topK > 0 && p.topK < logits.length) || p.topP < 1;
  if (!truncated) return draw(weights, sum, random);
  // The candidates, likeliest first (ties by token id, so a seed always draws the same token).
  const order = Array.from({ length: logits.length }, (_, i) => i).sort((a, b) => weights[b]! - weights[a]! || a - b);
  const k = p.topK > 0 ? Math.min(p.topK, order.length) : order.length;
  const kept: number[] = [];
  let mass = 0;
  for (let j = 0; j < k; j++) {
    const i = order[j]!;
    kept.push(i);
    mass += weights[i]!;
    // The smallest set whose probability reaches top_p (at least one token).
    if (mass >= p.topP * sum) break;
  }
  let r = random() * mass;
  for (const i of kept) {
    r -= weights[i]!;
    if (r < 0) return i;
  }
  return kept[kept.length - 1]!;
}

function draw(weights: Float64Array, sum: number, random: () => number): number {
  let r = random() * sum;
  for (let i = 0; i < weights.length; i++) {
    r -= weights[i]!;
    if (r < 0) return i;
  }
  return weights.length - 1;
}
