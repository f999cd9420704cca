import { InvalidParameter } from '../core/errors.ts';
import type { ModelConfig } from '../core/model.ts';
import { isBytesData, type Tensor } from '../core/tensor.ts';

const encoder = new TextEncoder();

/** Reads element i of a fixed-size numeric tensor as a number (little-endian, as every tensor here). */
function reader(t: Tensor): ((i: number) => number) | undefined {
  if (isBytesData(t.data)) return undefined;
  const d = t.data;
  const v = new DataView(d.buffer, d.byteOffset, d.byteLength);
  switch (t.datatype) {
    case 'FP32': return (i) => v.getFloat32(i * 4, true);
    case 'FP64': return (i) => v.getFloat64(i * 8, true);
    case 'INT8': return (i) => v.getInt8(i);
    case 'UINT8': return (i) => v.getUint8(i);
    case 'INT16': return (i) => v.getInt16(i * 2, true);
    case 'UINT16': return (i) => v.getUint16(i * 2, true);
    case 'INT32': return (i) => v.getInt32(i * 4, true);
    case 'UINT32': return (i) => v.getUint32(i * 4, true);
    case 'INT64': return (i) => Number(v.getBigInt64(i * 8, true));
    case 'UINT64': return (i) => Number(v.getBigUint64(i * 8, true));
    default: return undefined;
  }
}

/**
 * Checks the classification a request asks for (output name -> K) against the model before the
 * request is queued: the output exists and is numeric, K is a positive integer.
 */
export function checkClassification(config: ModelConfig, wanted: Readonly<Record<string, number>>): void {
  for (const [name, k] of Object.entries(wanted)) {
    const out = config.outputs.find((o) => o.name === name);
    if (!out) continue; // an unknown output is the output list's error, reported by validation
    if (!Number.isSafeInteger(k) || k < 1) throw InvalidParameter('classification', `output '${name}': expected a positive integer, got ${k}`);
    if (out.datatype === 'BYTES' || out.datatype === 'BOOL' || out.datatype === 'FP16' || out.datatype === 'BF16') {
      throw InvalidParameter('classification', `output '${name}' is ${out.datatype}; classification needs a numeric output`);
    }
  }
}

/**
 * Triton's classification extension: each output asked with classification K is answered instead as
 * the top K of its values, per batch row when the model batches, as BYTES "value:index[:label]"
 * (value as C's %f prints it, the label from the output's label file when it has one for that
 * index), highest first, ties by lower index. K past the class count gives every class.
 */
export function classify(config: ModelConfig, outputs: readonly Tensor[], wanted: Readonly<Record<string, number>>): Tensor[] {
  return outputs.map((t) => {
    const k = wanted[t.name];
    if (k === undefined) return t;
    const read = reader(t);
    if (!read) throw InvalidParameter('classification', `output '${t.name}' is ${t.datatype}; classification needs a numeric output`);
    const labels = config.outputs.find((o) => o.name === t.name)?.labels;
    const batched = config.maxBatchSize > 0 && t.shape.length > 0;
    const rows = batched ? t.shape[0]! : 1;
    const total = t.shape.reduce((n, d) => n * d, 1);
    const perRow = rows === 0 ? 0 : total / rows;
    const take = Math.min(k, perRow);
    const data: Uint8Array[] = [];
    for (let r = 0; r < rows; r++) {
      const base = r * perRow;
      const idx = Array.from({ length: perRow }, (_, i) => i);
      idx.sort((a, b) => read(base + b) - read(base + a) || a - b);
      for (const i of idx.slice(0, take)) {
        const label = labels?.[i];
        data.push(encoder.encode(`${read(base + i).toFixed(6)}:${i}${label !== undefined && label !== '' ? `:${label}` : ''}`));
      }
    }
    return { name: t.name, datatype: 'BYTES', shape: batched ? [rows, take] : [take], data };
  });
}
