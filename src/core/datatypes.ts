/**
 * The tensor datatypes of the Open Inference Protocol, with their element sizes and their names in
 * Triton's model configuration (TYPE_*) and in ONNX (TensorProto.DataType numbers).
 */
export type DataType =
  | 'BOOL'
  | 'UINT8'
  | 'UINT16'
  | 'UINT32'
  | 'UINT64'
  | 'INT8'
  | 'INT16'
  | 'INT32'
  | 'INT64'
  | 'FP16'
  | 'BF16'
  | 'FP32'
  | 'FP64'
  | 'BYTES';

interface DataTypeInfo {
  /** Bytes per element; 0 for BYTES (variable length). */
  readonly size: number;
  readonly triton: string;
  readonly onnx: number;
  /** The onnxruntime-node tensor type name. */
  readonly ort: string;
}

const INFO: Readonly<Record<DataType, DataTypeInfo>> = {
  BOOL: { size: 1, triton: 'TYPE_BOOL', onnx: 9, ort: 'bool' },
  UINT8: { size: 1, triton: 'TYPE_UINT8', onnx: 2, ort: 'uint8' },
  UINT16: { size: 2, triton: 'TYPE_UINT16', onnx: 4, ort: 'uint16' },
  UINT32: { size: 4, triton: 'TYPE_UINT32', onnx: 12, ort: 'uint32' },
  UINT64: { size: 8, triton: 'TYPE_UINT64', onnx: 13, ort: 'uint64' },
  INT8: { size: 1, triton: 'TYPE_INT8', onnx: 3, ort: 'int8' },
  INT16: { size: 2, triton: 'TYPE_INT16', onnx: 5, ort: 'int16' },
  INT32: { size: 4, triton: 'TYPE_INT32', onnx: 6, ort: 'int32' },
  INT64: { size: 8, triton: 'TYPE_INT64', onnx: 7, ort: 'int64' },
  FP16: { size: 2, triton: 'TYPE_FP16', onnx: 10, ort: 'float16' },
  BF16: { size: 2, triton: 'TYPE_BF16', onnx: 16, ort: 'bfloat16' },
  FP32: { size: 4, triton: 'TYPE_FP32', onnx: 1, ort: 'float32' },
  FP64: { size: 8, triton: 'TYPE_FP64', onnx: 11, ort: 'float64' },
  BYTES: { size: 0, triton: 'TYPE_STRING', onnx: 8, ort: 'string' },
};

export const DATATYPES: readonly DataType[] = Object.freeze(Object.keys(INFO) as DataType[]);

export function isDataType(value: unknown): value is DataType {
  return typeof value === 'string' && Object.hasOwn(INFO, value);
}

/** Bytes per element, or 0 for BYTES. */
export function elementSize(datatype: DataType): number {
  return INFO[datatype].size;
}

export function tritonTypeName(datatype: DataType): string {
  return INFO[datatype].triton;
}

export function fromTritonTypeName(name: string): DataType | undefined {
  if (name === 'TYPE_STRING') return 'BYTES';
  for (const dt of DATATYPES) if (INFO[dt].triton === name) return dt;
  return undefined;
}

export function onnxTypeNumber(datatype: DataType): number {
  return INFO[datatype].onnx;
}

export function fromOnnxTypeNumber(n: number): DataType | undefined {
  for (const dt of DATATYPES) if (INFO[dt].onnx === n) return dt;
  return undefined;
}

export function ortTypeName(datatype: DataType): string {
  return INFO[datatype].ort;
}

export function fromOrtTypeName(name: string): DataType | undefined {
  for (const dt of DATATYPES) if (INFO[dt].ort === name) return dt;
  return undefined;
}
