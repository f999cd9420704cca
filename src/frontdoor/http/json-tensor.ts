import { endianness } from 'node:os';
import type { DataType } from '../../core/datatypes.ts';
import { DataSizeMismatch, DatatypeUnsupportedInJson, InvalidTensorData } from '../../core/errors.ts';
import { isBytesData, type Tensor } from '../../core/tensor.ts';

// Typed arrays use the platform's byte order and sluice's tensors are little-endian: refuse to start
// on a big-endian host rather than silently swap every element.
if (endianness() !== 'LE') throw new Error('sluice needs a little-endian host (tensor bytes are little-endian)');

type IntRange = readonly [min: number, max: number];

const INT_RANGES: Partial<Record<DataType, IntRange>> = {
  UINT8: [0, 0xff],
  UINT16: [0, 0xffff],
  UINT32: [0, 0xffffffff],
  INT8: [-0x80, 0x7f],
  INT16: [-0x8000, 0x7fff],
  INT32: [-0x80000000, 0x7fffffff],
};

const BIG_RANGES: Partial<Record<DataType, readonly [bigint, bigint]>> = {
  INT64: [-(1n << 63n), (1n << 63n) - 1n],
  UINT64: [0n, (1n << 64n) - 1n],
};

const FLOAT_WORDS: Readonly<Record<string, number>> = { NaN: NaN, Infinity: Infinity, '-Infinity': -Infinity };

/**
 * Flattens nested JSON arrays in row-major order, iteratively (a deeply nested body must not exhaust
 * the stack) and stopping as soon as more elements than `expected` appear.
 */
export function flattenJsonData(name: string, data: unknown, expected: number): unknown[] {
  if (!Array.isArray(data)) return [data];
  // The common case, a flat array, is used as it is: no copy.
  let nested = false;
  for (let i = 0; i < data.length && !nested; i++) nested = Array.isArray(data[i]);
  if (!nested) {
    if (data.length > expected) throw DataSizeMismatch(name, `${expected} elements`, `more than ${expected}`);
    return data;
  }
  const out: unknown[] = [];
  const stack: { arr: unknown[]; i: number }[] = [{ arr: data, i: 0 }];
  while (stack.length > 0) {
    const top = stack[stack.length - 1]!;
    if (top.i >= top.arr.length) {
      stack.pop();
      continue;
    }
    const v = top.arr[top.i++];
    if (Array.isArray(v)) {
      stack.push({ arr: v, i: 0 });
      continue;
    }
    out.push(v);
    if (out.length > expected) throw DataSizeMismatch(name, `${expected} elements`, `more than ${expected}`);
  }
  return out;
}

function describe(v: unknown): string {
  const text = JSON.stringify(v) ?? String(v);
  return text.length > 40 ? `${text.slice(0, 40)}...` : text;
}

function bad(name: string, index: number, value: unknown, want: string): Error {
  return InvalidTensorData(name, `element ${index} (${describe(value)}) is not ${want}`);
}

function bytesOf(view: ArrayBufferView): Uint8Array {
  return new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
}

function decodeInts(name: string, datatype: DataType, values: unknown[], range: IntRange): Uint8Array {
  const n = values.length;
  const arr = datatype === 'UINT8' ? new Uint8Array(n)
    : datatype === 'UINT16' ? new Uint16Array(n)
      : datatype === 'UINT32' ? new Uint32Array(n)
        : datatype === 'INT8' ? new Int8Array(n)
          : datatype === 'INT16' ? new Int16Array(n)
            : new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const v = values[i];
    if (typeof v !== 'number' || !Number.isInteger(v)) throw bad(name, i, v, `an integer (${datatype})`);
    if (v < range[0] || v > range[1]) throw InvalidTensorData(name, `element ${i} (${v}) is out of range for ${datatype} [${range[0]}, ${range[1]}]`);
    arr[i] = v;
  }
  return bytesOf(arr);
}

function decodeBigInts(name: string, datatype: DataType, values: unknown[], range: readonly [bigint, bigint]): Uint8Array {
  const n = values.length;
  const arr = datatype === 'INT64' ? new BigInt64Array(n) : new BigUint64Array(n);
  for (let i = 0; i < n; i++) {
    const v = values[i];
    let big: bigint;
    if (typeof v === 'number') {
      // JSON.parse already rounded anything past 2^53: refuse it rather than infer on a different value.
      if (!Number.isSafeInteger(v)) throw InvalidTensorData(name, `element ${i} (${describe(v)}) is not an integer exactly representable in JSON; send ${datatype} values beyond 2^53 as decimal strings`);
      big = BigInt(v);
    } else if (typeof v === 'string' && /^-?\d{1,20}$/.test(v)) {
      big = BigInt(v);
    } else {
      throw bad(name, i, v, `an integer or a decimal string (${datatype})`);
    }
    if (big < range[0] || big > range[1]) throw InvalidTensorData(name, `element ${i} (${big}) is out of range for ${datatype} [${range[0]}, ${range[1]}]`);
    arr[i] = big;
  }
  return bytesOf(arr);
}

function decodeFloats(name: string, datatype: DataType, values: unknown[]): Uint8Array {
  const n = values.length;
  const arr = datatype === 'FP32' ? new Float32Array(n) : new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const v = values[i];
    if (typeof v === 'number') arr[i] = v;
    else if (typeof v === 'string' && Object.hasOwn(FLOAT_WORDS, v)) arr[i] = FLOAT_WORDS[v]!;
    else throw bad(name, i, v, `a number (${datatype}; "NaN", "Infinity" and "-Infinity" are accepted as strings)`);
  }
  return bytesOf(arr);
}

function decodeBools(name: string, values: unknown[]): Uint8Array {
  const arr = new Uint8Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (typeof v !== 'boolean') throw bad(name, i, v, 'true or false (BOOL)');
    arr[i] = v ? 1 : 0;
  }
  return arr;
}

function decodeStrings(name: string, values: unknown[]): Uint8Array[] {
  const out: Uint8Array[] = new Array<Uint8Array>(values.length);
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (typeof v !== 'string') throw bad(name, i, v, 'a string (BYTES)');
    out[i] = Buffer.from(v, 'utf8');
  }
  return out;
}

/**
 * Decodes the JSON `data` of one input (flat or nested) into the Tensor form: little-endian bytes for
 * fixed-size datatypes, one Uint8Array per element for BYTES. `count` is the element count of the
 * already validated shape; nothing is allocated before the element count matches it.
 */
export function decodeJsonTensorData(name: string, datatype: DataType, data: unknown, count: number): Tensor['data'] {
  if (datatype === 'FP16' || datatype === 'BF16') throw DatatypeUnsupportedInJson(name, datatype);
  if (!Array.isArray(data)) throw InvalidTensorData(name, `'data' must be an array, got ${describe(data)}`);
  const values = flattenJsonData(name, data, count);
  if (values.length !== count) throw DataSizeMismatch(name, `${count} elements`, `${values.length} elements`);
  if (datatype === 'BOOL') return decodeBools(name, values);
  if (datatype === 'BYTES') return decodeStrings(name, values);
  if (datatype === 'FP32' || datatype === 'FP64') return decodeFloats(name, datatype, values);
  const range = INT_RANGES[datatype];
  if (range) return decodeInts(name, datatype, values, range);
  return decodeBigInts(name, datatype, values, BIG_RANGES[datatype]!);
}

function floatText(x: number): string {
  if (Number.isFinite(x)) return String(x);
  // JSON has no NaN or Infinity; strings keep the value visible to every parser (and are accepted back).
  return Number.isNaN(x) ? '"NaN"' : x > 0 ? '"Infinity"' : '"-Infinity"';
}

function joinNumbers(arr: ArrayLike<number>, text: (x: number) => string): string {
  const parts = new Array<string>(arr.length);
  for (let i = 0; i < arr.length; i++) parts[i] = text(arr[i]!);
  return `[${parts.join(',')}]`;
}

/**
 * The JSON text of a tensor's data, flat. 64-bit integers are written as exact integer literals (JSON
 * numbers have no precision limit; a JavaScript client may round values beyond 2^53, a Python one
 * does not). Returns undefined for FP16/BF16, which have no JSON form.
 */
export function encodeJsonTensorData(t: Tensor): string | undefined {
  if (isBytesData(t.data)) {
    const parts = t.data.map((e) => JSON.stringify(Buffer.from(e.buffer, e.byteOffset, e.byteLength).toString('utf8')));
    return `[${parts.join(',')}]`;
  }
  // A typed view needs an offset aligned to its element size: copy a misaligned tensor (new Uint8Array of
  // a view copies; Buffer#slice would not).
  const b = t.data.byteOffset % 8 === 0 ? t.data : new Uint8Array(t.data);
  const buf = b.buffer;
  const off = b.byteOffset;
  const len = (size: number): number => Math.floor(b.byteLength / size);
  switch (t.datatype) {
    case 'BOOL': return `[${Array.from(b, (x) => (x !== 0 ? 'true' : 'false')).join(',')}]`;
    case 'UINT8': return joinNumbers(b, String);
    case 'INT8': return joinNumbers(new Int8Array(buf, off, len(1)), String);
    case 'UINT16': return joinNumbers(new Uint16Array(buf, off, len(2)), String);
    case 'INT16': return joinNumbers(new Int16Array(buf, off, len(2)), String);
    case 'UINT32': return joinNumbers(new Uint32Array(buf, off, len(4)), String);
    case 'INT32': return joinNumbers(new Int32Array(buf, off, len(4)), String);
    case 'UINT64': return `[${Array.from(new BigUint64Array(buf, off, len(8)), String).join(',')}]`;
    case 'INT64': return `[${Array.from(new BigInt64Array(buf, off, len(8)), String).join(',')}]`;
    case 'FP32': return joinNumbers(new Float32Array(buf, off, len(4)), floatText);
    case 'FP64': return joinNumbers(new Float64Array(buf, off, len(8)), floatText);
    default: return undefined;
  }
}
