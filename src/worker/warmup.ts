/**
 * Model warmup with Triton's model_warmup semantics: each sample feeds zero or random data of the given
 * dims (with the batch dimension `batchSize` prepended when the model batches) `count` times, and the
 * model counts as loaded only after every sample ran. Warmup pays the first-run costs (allocations,
 * kernel selection, CUDA graph capture) before real traffic arrives.
 */
import { elementSize, type DataType } from '../core/datatypes.ts';
import { ModelLoadFailed } from '../core/errors.ts';
import type { ModelConfig, WarmupInput, WarmupSpec } from '../core/model.ts';
import { elementCount, type Tensor } from '../core/tensor.ts';
import type { SessionHandle } from './session.ts';

/** Warmup runs per sample are capped so a typo (count: 1000000) cannot hold a load forever. */
export const MAX_WARMUP_COUNT = 1000;

/** The input tensors of one warmup sample. Dynamic dims (-1) become 1: warmup needs concrete shapes. */
export function warmupTensors(spec: WarmupSpec, maxBatchSize: number): Tensor[] {
  return Object.entries(spec.inputs).map(([name, input]) => {
    const dims = input.dims.map((d) => (d < 0 ? 1 : d));
    const shape = maxBatchSize > 0 ? [Math.max(1, spec.batchSize), ...dims] : dims;
    const n = elementCount(shape);
    if (n === undefined) throw ModelLoadFailed(spec.name, `warmup input '${name}' has an invalid shape ${JSON.stringify(shape)}`);
    return { name, datatype: input.datatype, shape, data: sampleData(input, n) };
  });
}

function sampleData(input: WarmupInput, n: number): Tensor['data'] {
  const random = input.randomData === true && input.zeroData !== true;
  if (input.datatype === 'BYTES') {
    return Array.from({ length: n }, () => (random ? randomAscii() : new Uint8Array(0)));
  }
  const bytes = new Uint8Array(n * elementSize(input.datatype));
  if (random) fillRandom(input.datatype, bytes);
  return bytes;
}

function randomAscii(): Uint8Array {
  const len = 1 + Math.floor(Math.random() * 8);
  return Uint8Array.from({ length: len }, () => 97 + Math.floor(Math.random() * 26));
}

/** Random values that are valid numbers of the type (random bits could be NaN or Inf for floats). */
function fillRandom(datatype: DataType, bytes: Uint8Array): void {
  const buf = bytes.buffer;
  switch (datatype) {
    case 'FP32':
      new Float32Array(buf).forEach((_, i, a) => (a[i] = Math.random()));
      return;
    case 'FP64':
      new Float64Array(buf).forEach((_, i, a) => (a[i] = Math.random()));
      return;
    case 'FP16':
    case 'BF16': {
      // Exponent bits of 0.5 with a random mantissa: values in [0.5, 1) in either format.
      const base = datatype === 'FP16' ? 0x3800 : 0x3f00;
      const mask = datatype === 'FP16' ? 0x3ff : 0x7f;
      new Uint16Array(buf).forEach((_, i, a) => (a[i] = base | (Math.floor(Math.random() * 0x10000) & mask)));
      return;
    }
    case 'BOOL':
      bytes.forEach((_, i, a) => (a[i] = Math.random() < 0.5 ? 0 : 1));
      return;
    case 'INT64':
    case 'UINT64':
      new BigInt64Array(buf).forEach((_, i, a) => (a[i] = BigInt(Math.floor(Math.random() * 100))));
      return;
    default: {
      // Small non-negative values fit every remaining integer type, and index-like inputs stay in range.
      const size = elementSize(datatype);
      const view = new DataView(buf);
      for (let off = 0; off < bytes.byteLength; off += size) {
        const v = Math.floor(Math.random() * 100);
        if (size === 1) view.setUint8(off, v);
        else if (size === 2) view.setUint16(off, v, true);
        else view.setUint32(off, v, true);
      }
    }
  }
}

/** Runs every warmup sample of the config; returns how many runs were made. */
export async function runWarmup(session: SessionHandle, config: ModelConfig | undefined): Promise<number> {
  if (!config) return 0;
  let runs = 0;
  for (const spec of config.warmup) {
    const inputs = warmupTensors(spec, config.maxBatchSize);
    const count = Math.min(Math.max(1, spec.count), MAX_WARMUP_COUNT);
    for (let i = 0; i < count; i++) {
      try {
        await session.run(inputs, []);
      } catch (e) {
        throw ModelLoadFailed(config.name, `warmup sample '${spec.name}' failed: ${(e as Error).message}`);
      }
      runs++;
    }
  }
  return runs;
}
