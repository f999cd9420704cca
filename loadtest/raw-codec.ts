import { elementSize, type DataType } from '../src/core/datatypes.ts';

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** IEEE half from a double, round-to-nearest-even (FP16 has no JSON form, only raw bytes). */
export function toHalf(value: number): number {
  f32[0] = value;
  const x = u32[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant !== 0 ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let half = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    if (rem > mid || (rem === mid && (half & 1) === 1)) half += 1;
    return sign | half;
  }
  let half = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (half & 1) === 1)) half += 1;
  return sign | half;
}

export function fromHalf(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant !== 0 ? NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

function toBf16(value: number): number {
  f32[0] = value;
  const x = u32[0]!;
  // Round to nearest even on the dropped 16 bits, as frameworks convert.
  return ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
}

function fromBf16(b: number): number {
  u32[0] = b << 16;
  return f32[0]!;
}

/** Little-endian bytes of the values, or length-prefixed elements for BYTES. */
export function encodeRaw(datatype: DataType, values: readonly (number | boolean | string)[]): Buffer {
  if (datatype === 'BYTES') {
    const parts = values.map((v) => Buffer.from(String(v), 'utf8'));
    const out = Buffer.alloc(parts.reduce((n, p) => n + 4 + p.length, 0));
    let off = 0;
    for (const p of parts) {
      out.writeUInt32LE(p.length, off);
      p.copy(out, off + 4);
      off += 4 + p.length;
    }
    return out;
  }
  const size = elementSize(datatype);
  const out = Buffer.alloc(values.length * size);
  values.forEach((raw, i) => {
    const v = typeof raw === 'boolean' ? (raw ? 1 : 0) : Number(raw);
    const o = i * size;
    switch (datatype) {
      case 'BOOL': out.writeUInt8(v ? 1 : 0, o); break;
      case 'UINT8': out.writeUInt8(v, o); break;
      case 'INT8': out.writeInt8(v, o); break;
      case 'UINT16': out.writeUInt16LE(v, o); break;
      case 'INT16': out.writeInt16LE(v, o); break;
      case 'UINT32': out.writeUInt32LE(v, o); break;
      case 'INT32': out.writeInt32LE(v, o); break;
      case 'UINT64': out.writeBigUInt64LE(BigInt(Math.trunc(v)), o); break;
      case 'INT64': out.writeBigInt64LE(BigInt(Math.trunc(v)), o); break;
      case 'FP16': out.writeUInt16LE(toHalf(v), o); break;
      case 'BF16': out.writeUInt16LE(toBf16(v), o); break;
      case 'FP32': out.writeFloatLE(v, o); break;
      case 'FP64': out.writeDoubleLE(v, o); break;
    }
  });
  return out;
}

/**
 * Values of raw bytes for comparison: numbers (64-bit integers through Number, exact for the small
 * values a check compares), BYTES elements as latin1 strings. Returns an error string on a size mismatch.
 */
export function decodeRaw(datatype: string, buf: Uint8Array): (number | string)[] | string {
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  if (datatype === 'BYTES') {
    const out: string[] = [];
    let off = 0;
    while (off < b.length) {
      if (off + 4 > b.length) return 'truncated BYTES length prefix';
      const len = b.readUInt32LE(off);
      if (off + 4 + len > b.length) return 'BYTES element runs past the end of the data';
      out.push(b.toString('latin1', off + 4, off + 4 + len));
      off += 4 + len;
    }
    return out;
  }
  const sizes: Record<string, number> = { BOOL: 1, UINT8: 1, INT8: 1, UINT16: 2, INT16: 2, FP16: 2, BF16: 2, UINT32: 4, INT32: 4, FP32: 4, UINT64: 8, INT64: 8, FP64: 8 };
  const size = sizes[datatype];
  if (size === undefined) return `unknown datatype ${datatype}`;
  if (b.length % size !== 0) return `${b.length} bytes is not a whole number of ${datatype} elements`;
  const n = b.length / size;
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    const o = i * size;
    switch (datatype) {
      case 'BOOL': out[i] = b[o] ? 1 : 0; break;
      case 'UINT8': out[i] = b.readUInt8(o); break;
      case 'INT8': out[i] = b.readInt8(o); break;
      case 'UINT16': out[i] = b.readUInt16LE(o); break;
      case 'INT16': out[i] = b.readInt16LE(o); break;
      case 'FP16': out[i] = fromHalf(b.readUInt16LE(o)); break;
      case 'BF16': out[i] = fromBf16(b.readUInt16LE(o)); break;
      case 'UINT32': out[i] = b.readUInt32LE(o); break;
      case 'INT32': out[i] = b.readInt32LE(o); break;
      case 'FP32': out[i] = b.readFloatLE(o); break;
      case 'UINT64': out[i] = Number(b.readBigUInt64LE(o)); break;
      case 'INT64': out[i] = Number(b.readBigInt64LE(o)); break;
      default: out[i] = b.readDoubleLE(o); break;
    }
  }
  return out;
}

/** JSON values of a decoded output, normalized as decodeRaw does (BOOL to 0/1, nested arrays flattened). */
export function normalizeJsonValues(data: unknown): (number | string)[] | string {
  if (!Array.isArray(data)) return 'output data is not an array';
  const flat: unknown[] = (data as unknown[]).flat(Infinity);
  const out: (number | string)[] = [];
  for (const v of flat) {
    if (typeof v === 'number' || typeof v === 'string') out.push(v);
    else if (typeof v === 'boolean') out.push(v ? 1 : 0);
    else return `output element ${JSON.stringify(v)} is not a number, boolean or string`;
  }
  return out;
}
