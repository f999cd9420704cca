import type { DataType } from '../../core/datatypes.ts';
import { elementSize } from '../../core/datatypes.ts';
import { DataSizeMismatch, InvalidTensorData } from '../../core/errors.ts';
import type { InferTensorContentsMsg } from './proto.ts';

/** The InferTensorContents field that carries each datatype; FP16 and BF16 have none (raw only). */
const FIELD_OF: Readonly<Record<DataType, keyof InferTensorContentsMsg | undefined>> = {
  BOOL: 'bool_contents',
  INT8: 'int_contents',
  INT16: 'int_contents',
  INT32: 'int_contents',
  INT64: 'int64_contents',
  UINT8: 'uint_contents',
  UINT16: 'uint_contents',
  UINT32: 'uint_contents',
  UINT64: 'uint64_contents',
  FP16: undefined,
  BF16: undefined,
  FP32: 'fp32_contents',
  FP64: 'fp64_contents',
  BYTES: 'bytes_contents',
};

const FIELDS: readonly (keyof InferTensorContentsMsg)[] = [
  'bool_contents', 'int_contents', 'int64_contents', 'uint_contents', 'uint64_contents', 'fp32_contents', 'fp64_contents', 'bytes_contents',
];

/** Integer ranges of the datatypes that share the 32-bit contents fields: a value outside is a client error, not a silent wrap. */
const RANGE: Partial<Record<DataType, readonly [number, number]>> = {
  INT8: [-128, 127],
  INT16: [-32768, 32767],
  UINT8: [0, 255],
  UINT16: [0, 65535],
};

export function contentsFieldOf(datatype: DataType): keyof InferTensorContentsMsg | undefined {
  return FIELD_OF[datatype];
}

type Writer = (view: DataView, offset: number, value: never) => void;

const WRITERS: Partial<Record<DataType, Writer>> = {
  BOOL: (v, o, x: boolean) => v.setUint8(o, x ? 1 : 0),
  INT8: (v, o, x: number) => v.setInt8(o, x),
  INT16: (v, o, x: number) => v.setInt16(o, x, true),
  INT32: (v, o, x: number) => v.setInt32(o, x, true),
  INT64: (v, o, x: string) => v.setBigInt64(o, BigInt(x), true),
  UINT8: (v, o, x: number) => v.setUint8(o, x),
  UINT16: (v, o, x: number) => v.setUint16(o, x, true),
  UINT32: (v, o, x: number) => v.setUint32(o, x, true),
  UINT64: (v, o, x: string) => v.setBigUint64(o, BigInt(x), true),
  FP32: (v, o, x: number) => v.setFloat32(o, x, true),
  FP64: (v, o, x: number) => v.setFloat64(o, x, true),
};

/**
 * Converts typed contents into the tensor's data (little-endian bytes, or one Buffer per BYTES element).
 * The element count is checked against `count` (from the shape, already bounded) before anything is
 * allocated, and contents in a field that does not belong to the datatype are rejected by name.
 */
export function tensorDataFromContents(
  name: string,
  datatype: DataType,
  count: number,
  contents: InferTensorContentsMsg,
): Uint8Array | Uint8Array[] {
  const field = FIELD_OF[datatype];
  if (field === undefined) {
    throw InvalidTensorData(name, `${datatype} has no typed contents field; send it in raw_input_contents`);
  }
  for (const other of FIELDS) {
    if (other !== field && contents[other].length > 0) {
      throw InvalidTensorData(name, `datatype ${datatype} takes its elements in ${field}, but the request set ${other}`);
    }
  }
  const values = contents[field];
  if (values.length !== count) {
    throw DataSizeMismatch(name, `${count} elements`, `${values.length} elements in ${field}`);
  }
  if (datatype === 'BYTES') return (values as Buffer[]).slice();
  const range = RANGE[datatype];
  if (range) {
    const [lo, hi] = range;
    const ints = values as number[];
    for (let i = 0; i < ints.length; i++) {
      const x = ints[i]!;
      if (x < lo || x > hi) throw InvalidTensorData(name, `element ${i} is ${x}, outside the ${datatype} range ${lo}..${hi}`);
    }
  }
  const size = elementSize(datatype);
  const out = new Uint8Array(count * size);
  const view = new DataView(out.buffer);
  const write = WRITERS[datatype] as (view: DataView, offset: number, value: unknown) => void;
  for (let i = 0; i < count; i++) write(view, i * size, values[i]);
  return out;
}
