import { elementSize, type DataType } from './datatypes.ts';

/**
 * A tensor as it travels through sluice. Fixed-size datatypes carry their elements as little-endian
 * bytes (the layout of the binary extension, gRPC raw contents and ONNX Runtime alike), so that no stage
 * converts them; BYTES carries one Uint8Array per element.
 */
export interface Tensor {
  readonly name: string;
  readonly datatype: DataType;
  readonly shape: readonly number[];
  readonly data: Uint8Array | readonly Uint8Array[];
}

/** Upper bound on elements in one tensor: keeps a claimed shape from turning into a huge allocation. */
export const MAX_TENSOR_ELEMENTS = 1 << 28;

/**
 * Element count of a shape, or undefined when a dimension is negative, not an integer, or the product
 * exceeds `limit`. Checked per step so a hostile shape never overflows to a small number.
 */
export function elementCount(shape: readonly number[], limit = MAX_TENSOR_ELEMENTS): number | undefined {
  let n = 1;
  for (const d of shape) {
    if (!Number.isSafeInteger(d) || d < 0) return undefined;
    n *= d;
    if (n > limit) return undefined;
  }
  return n;
}

/** Byte length of a fixed-size tensor, or undefined for BYTES. */
export function fixedByteLength(datatype: DataType, shape: readonly number[]): number | undefined {
  const size = elementSize(datatype);
  if (size === 0) return undefined;
  const n = elementCount(shape);
  return n === undefined ? undefined : n * size;
}

export function isBytesData(data: Tensor['data']): data is readonly Uint8Array[] {
  return Array.isArray(data);
}

/** Bytes a tensor occupies (BYTES: payload plus a 4-byte length per element, as on the wire). */
export function tensorByteLength(t: Tensor): number {
  if (isBytesData(t.data)) {
    let n = 0;
    for (const e of t.data) n += 4 + e.byteLength;
    return n;
  }
  return t.data.byteLength;
}

/** Little-endian length-prefixed serialization of BYTES elements (binary extension, gRPC raw). */
export function encodeBytesElements(elements: readonly Uint8Array[]): Uint8Array {
  let total = 0;
  for (const e of elements) total += 4 + e.byteLength;
  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  let off = 0;
  for (const e of elements) {
    view.setUint32(off, e.byteLength, true);
    out.set(e, off + 4);
    off += 4 + e.byteLength;
  }
  return out;
}

/**
 * Parses length-prefixed BYTES elements; returns an error string instead of throwing so that callers
 * can name the tensor in their own error.
 */
export function decodeBytesElements(buf: Uint8Array, expected: number): Uint8Array[] | string {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const out: Uint8Array[] = [];
  let off = 0;
  while (off < buf.byteLength) {
    if (off + 4 > buf.byteLength) return 'truncated BYTES element length prefix';
    const len = view.getUint32(off, true);
    off += 4;
    if (off + len > buf.byteLength) return `BYTES element ${out.length} claims ${len} bytes past the end of the data`;
    out.push(buf.subarray(off, off + len));
    off += len;
    if (out.length > expected) break;
  }
  if (out.length !== expected) return `expected ${expected} BYTES elements, got ${out.length}`;
  return out;
}
