import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';

/**
 * The ONNX message types sluice reads (the repository's auto-complete) and writes (models/generate.ts),
 * loaded at run time from protos/onnx.proto.
 */
export interface OnnxTypes {
  readonly root: protobuf.Root;
  readonly ModelProto: protobuf.Type;
  readonly TensorProto: protobuf.Type;
}

let cached: OnnxTypes | undefined;

/** Where protos/onnx.proto lies: found upward from this module, so it resolves from src/ and dist/src/ alike. */
export function onnxProtoPath(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    const candidate = join(dir, 'protos', 'onnx.proto');
    if (existsSync(candidate)) return candidate;
    dir = dirname(dir);
  }
  throw new Error('protos/onnx.proto not found above ' + dirname(fileURLToPath(import.meta.url)));
}

/** Loads the schema once per process; later calls return the same types. */
export function onnxTypes(): OnnxTypes {
  if (cached === undefined) {
    const root = protobuf.loadSync(onnxProtoPath());
    cached = { root, ModelProto: root.lookupType('onnx.ModelProto'), TensorProto: root.lookupType('onnx.TensorProto') };
  }
  return cached;
}

/** Conversion options that turn int64 fields into bigint, so no value silently loses precision. */
export const TO_PLAIN: protobuf.IConversionOptions = { longs: BigInt, arrays: true };
