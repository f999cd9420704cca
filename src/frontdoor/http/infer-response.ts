import type { InferResponse } from '../../core/inference.ts';
import { encodeBytesElements, isBytesData, type Tensor } from '../../core/tensor.ts';
import type { WrittenOutput } from '../../shm/tensors.ts';
import type { OutputEncoding } from './infer-request.ts';
import { encodeJsonTensorData } from './json-tensor.ts';

/** An encoded infer response body. */
export interface EncodedResponse {
  readonly body: Buffer;
  /** Set when binary tensors follow the JSON: the Inference-Header-Content-Length to send. */
  readonly headerLength: number | undefined;
  readonly contentType: string;
}

function wantsBinary(name: string, encoding: OutputEncoding): boolean {
  return encoding.binary.get(name) ?? encoding.binaryDefault;
}

function binaryOf(t: Tensor): Uint8Array {
  return isBytesData(t.data) ? encodeBytesElements(t.data) : t.data;
}

/**
 * Encodes a response as Triton does: JSON outputs carry flat `data`; binary outputs carry
 * binary_data_size and their bytes follow the JSON in output order. FP16/BF16 have no JSON form and are
 * always sent binary. Outputs written into shared memory (`inShm`) carry no data: their parameters say
 * which region holds them and how many bytes were written there.
 */
export function encodeInferResponse(res: InferResponse, encoding: OutputEncoding, inShm?: ReadonlyMap<string, WrittenOutput>): EncodedResponse {
  const parts: string[] = [];
  const binaries: Uint8Array[] = [];
  for (const t of res.outputs) {
    const head = `{"name":${JSON.stringify(t.name)},"datatype":"${t.datatype}","shape":[${t.shape.join(',')}]`;
    const shm = inShm?.get(t.name);
    if (shm) {
      const offset = shm.offset === 0 ? '' : `,"shared_memory_offset":${shm.offset}`;
      parts.push(`${head},"parameters":{"shared_memory_region":${JSON.stringify(shm.region)},"shared_memory_byte_size":${shm.byteSize}${offset}}}`);
      continue;
    }
    const json = wantsBinary(t.name, encoding) ? undefined : encodeJsonTensorData(t);
    if (json !== undefined) {
      parts.push(`${head},"data":${json}}`);
    } else {
      const bytes = binaryOf(t);
      binaries.push(bytes);
      parts.push(`${head},"parameters":{"binary_data_size":${bytes.byteLength}}}`);
    }
  }
  const id = res.id === '' ? '' : `"id":${JSON.stringify(res.id)},`;
  const header = Buffer.from(`{${id}"model_name":${JSON.stringify(res.model)},"model_version":${JSON.stringify(res.version)},"outputs":[${parts.join(',')}]}`, 'utf8');
  if (binaries.length === 0) return { body: header, headerLength: undefined, contentType: 'application/json' };
  return { body: Buffer.concat([header, ...binaries]), headerLength: header.byteLength, contentType: 'application/octet-stream' };
}

/** Splits a response body by its Inference-Header-Content-Length (for clients and tests). */
export function splitBinaryBody(body: Uint8Array, headerLength: number | undefined): { json: unknown; binary: Uint8Array } {
  const end = headerLength ?? body.byteLength;
  return { json: JSON.parse(Buffer.from(body.buffer, body.byteOffset, end).toString('utf8')), binary: body.subarray(end) };
}
