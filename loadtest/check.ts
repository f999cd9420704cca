import type { ModelMeta } from './workload.ts';
import type { DecodedTensor, OutputCheck, WorkTensor } from './types.ts';

/** Float comparison: |got - want| <= atol + rtol * |want|. Batched kernels may round differently. */
export interface Tolerance {
  readonly atol: number;
  readonly rtol: number;
}

export const DEFAULT_TOLERANCE: Tolerance = { atol: 1e-4, rtol: 1e-3 };

const FLOAT_TYPES = new Set(['FP16', 'BF16', 'FP32', 'FP64']);

/** Why `got` differs from `want` (first difference only), or undefined when they agree. */
export function compareOutputs(want: readonly DecodedTensor[], got: readonly DecodedTensor[], tol: Tolerance): string | undefined {
  for (const w of want) {
    const g = got.find((t) => t.name === w.name);
    if (!g) return `output '${w.name}' is missing`;
    if (g.values.length !== w.values.length) return `output '${w.name}' has ${g.values.length} elements, expected ${w.values.length}`;
    if (w.shape.length > 0 && g.shape.join(',') !== w.shape.join(',')) return `output '${w.name}' has shape [${g.shape.join(',')}], expected [${w.shape.join(',')}]`;
    const float = FLOAT_TYPES.has(w.datatype);
    for (let i = 0; i < w.values.length; i++) {
      const a = g.values[i];
      const b = w.values[i];
      if (float && typeof a === 'number' && typeof b === 'number') {
        if (Number.isNaN(a) && Number.isNaN(b)) continue;
        if (!(Math.abs(a - b) <= tol.atol + tol.rtol * Math.abs(b))) return `output '${w.name}'[${i}] = ${a}, expected ${b}`;
      } else if (a !== b) {
        return `output '${w.name}'[${i}] = ${JSON.stringify(a)}, expected ${JSON.stringify(b)}`;
      }
    }
  }
  return undefined;
}

/**
 * Whether the model has the shape of Triton's `simple` example (INT32 INPUT0, INPUT1 -> OUTPUT0 sum,
 * OUTPUT1 difference): then the expected outputs are computed here, independently of the server.
 */
export function isSimpleModel(meta: ModelMeta): boolean {
  const names = (ts: readonly { name: string }[]): string => ts.map((t) => t.name).sort().join(',');
  return names(meta.inputs) === 'INPUT0,INPUT1'
    && names(meta.outputs) === 'OUTPUT0,OUTPUT1'
    && meta.inputs.every((t) => t.datatype === 'INT32')
    && meta.outputs.every((t) => t.datatype === 'INT32');
}

/** Expected outputs of the simple model for one input set (INT32 wrap-around as the model computes). */
export function simpleExpected(inputs: readonly WorkTensor[]): DecodedTensor[] {
  const a = inputs.find((t) => t.name === 'INPUT0');
  const b = inputs.find((t) => t.name === 'INPUT1');
  if (!a || !b) throw new Error('the simple model needs INPUT0 and INPUT1');
  const av = a.values.map(Number);
  const bv = b.values.map(Number);
  return [
    { name: 'OUTPUT0', datatype: 'INT32', shape: a.shape, values: av.map((x, i) => (x + bv[i]!) | 0) },
    { name: 'OUTPUT1', datatype: 'INT32', shape: a.shape, values: av.map((x, i) => (x - bv[i]!) | 0) },
  ];
}

/** A check against expected outputs per input set (variant). */
export function expectedCheck(expected: readonly (readonly DecodedTensor[])[], tol: Tolerance = DEFAULT_TOLERANCE): OutputCheck {
  return (variant, outputs) => {
    if (typeof outputs === 'string') return outputs;
    const want = expected[variant];
    if (!want) return `no expected outputs for input set ${variant}`;
    return compareOutputs(want, outputs, tol);
  };
}

/**
 * Counts which responses get checked: always the first, then one in `every` (0 disables checking).
 * A counter, not a random draw, so that a run's checks are reproducible.
 */
export class CheckSampler {
  readonly #every: number;
  #seen = 0;

  constructor(every: number) {
    this.#every = every;
  }

  next(): boolean {
    if (this.#every <= 0) return false;
    const n = this.#seen++;
    return n % this.#every === 0;
  }
}
