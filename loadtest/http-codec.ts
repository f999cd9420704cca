import { decodeRaw, normalizeJsonValues } from './raw-codec.ts';
import type { DecodedTensor, WorkTensor } from './types.ts';

/** A prepared REST request body; headers beyond content-type only for the binary extension. */
export interface HttpBody {
  readonly body: Buffer;
  readonly headers: Readonly<Record<string, string>>;
}

export const INFER_HEADER = 'inference-header-content-length';

/** REST JSON body: every tensor's data inline; the server answers every output as JSON. */
export function jsonBody(inputs: readonly WorkTensor[]): HttpBody {
  const doc = {
    inputs: inputs.map((t) => ({ name: t.name, shape: t.shape, datatype: t.datatype, data: t.values })),
  };
  return { body: Buffer.from(JSON.stringify(doc)), headers: { 'content-type': 'application/json' } };
}

/**
 * Binary tensor extension body: a JSON header naming each input's binary_data_size, then the raw
 * tensors in header order; binary_data_output asks for binary outputs, as Triton's clients do.
 */
export function binaryBody(inputs: readonly WorkTensor[]): HttpBody {
  const header = Buffer.from(JSON.stringify({
    inputs: inputs.map((t) => ({ name: t.name, shape: t.shape, datatype: t.datatype, parameters: { binary_data_size: t.raw.length } })),
    parameters: { binary_data_output: true },
  }));
  return {
    body: Buffer.concat([header, ...inputs.map((t) => t.raw)]),
    headers: { 'content-type': 'application/octet-stream', [INFER_HEADER]: String(header.length) },
  };
}

interface JsonOutput {
  name?: unknown;
  datatype?: unknown;
  shape?: unknown;
  data?: unknown;
  parameters?: { binary_data_size?: unknown };
}

/**
 * Decodes a REST inference response (JSON, or the binary extension when headerLength is given) into
 * normalized outputs; returns a reason string when the body is not a well-formed response.
 */
export function decodeHttpResponse(body: Buffer, headerLength: number | undefined): DecodedTensor[] | string {
  const jsonEnd = headerLength ?? body.length;
  if (!Number.isSafeInteger(jsonEnd) || jsonEnd < 0 || jsonEnd > body.length) return `Inference-Header-Content-Length ${headerLength} does not fit a ${body.length}-byte body`;
  let doc: { outputs?: unknown };
  try {
    doc = JSON.parse(body.toString('utf8', 0, jsonEnd)) as { outputs?: unknown };
  } catch (e) {
    return `response is not JSON: ${(e as Error).message}`;
  }
  if (!Array.isArray(doc.outputs)) return 'response has no "outputs" array';
  let offset = jsonEnd;
  const out: DecodedTensor[] = [];
  for (const o of doc.outputs as JsonOutput[]) {
    const name = typeof o.name === 'string' ? o.name : '?';
    const datatype = typeof o.datatype === 'string' ? o.datatype : '?';
    const shape = Array.isArray(o.shape) ? (o.shape as unknown[]).map(Number) : [];
    const size = o.parameters?.binary_data_size;
    let values: (number | string)[] | string;
    if (typeof size === 'number') {
      if (offset + size > body.length) return `output '${name}' claims ${size} binary bytes past the end of the body`;
      values = decodeRaw(datatype, body.subarray(offset, offset + size));
      offset += size;
    } else {
      values = normalizeJsonValues(o.data);
    }
    if (typeof values === 'string') return `output '${name}': ${values}`;
    out.push({ name, datatype, shape, values });
  }
  return out;
}

/** The error kind of a REST status: 'http 503' and so on. */
export function httpErrorKind(status: number): string {
  return `http ${status}`;
}
