/**
 * Triton's generate extension on a model that is not generative: the request's keys are the model's
 * inputs, the answer's keys its outputs. A top-level key (or a key of `parameters`) that names an
 * input becomes that tensor (a JSON scalar or flat array, shaped as Triton shapes it: fixed
 * dimensions divide the element count, the innermost variable one takes what is left, the other
 * variable ones are 1); any other key is a request parameter, as on infer (priority, timeout,
 * sequence_id, sequence_start, sequence_end; the rest are ignored, as infer ignores them). Each output
 * is answered under its name, its elements flat, a single element as a scalar; BYTES as strings.
 */
import { DatatypeUnsupportedInJson, InvalidRequest, InvalidShape } from '../../core/errors.ts';
import type { InferRequest, InferResponse } from '../../core/inference.ts';
import type { ModelConfig, TensorConfig } from '../../core/model.ts';
import type { Tensor } from '../../core/tensor.ts';
import { optionalJsonObject } from './routes.ts';
import { requestParameters } from './infer-request.ts';
import { decodeJsonTensorData, encodeJsonTensorData } from './json-tensor.ts';

/** The element count of a generate value: a scalar is one element, a flat array its length. */
function flatValues(name: string, value: unknown): unknown[] {
  if (!Array.isArray(value)) return [value];
  if (value.some((v) => Array.isArray(v) || (typeof v === 'object' && v !== null))) throw InvalidRequest(`generate input '${name}' must be a JSON scalar or a flat array`);
  return value;
}

function shapeError(name: string, count: number, dims: readonly number[]): Error {
  return InvalidShape(name, `the generate request's ${count} element(s) cannot be shaped as [${dims.join(', ')}] (fixed dimensions must divide the count)`);
}

/** Triton's two passes from an element count to the input's shape (batch dimension included). */
export function generateShape(name: string, dims: readonly number[], count: number): number[] {
  const shape = [...dims];
  let left = count;
  for (const d of shape) {
    if (d === -1) continue;
    if (d === 0 ? left !== 0 : left % d !== 0) throw shapeError(name, count, dims);
    left = d === 0 ? 0 : left / d;
  }
  for (let i = shape.length - 1; i >= 0; i--) {
    if (shape[i] !== -1) continue;
    shape[i] = left;
    left = 1;
  }
  if (left !== 1 && !(count === 0 && shape.includes(0))) throw shapeError(name, count, dims);
  return shape;
}

function inputTensor(input: TensorConfig, batching: boolean, value: unknown): Tensor {
  const values = flatValues(input.name, value);
  const dims = batching ? [-1, ...input.dims] : [...input.dims];
  const shape = generateShape(input.name, dims, values.length);
  return { name: input.name, datatype: input.datatype, shape, data: decodeJsonTensorData(input.name, input.datatype, values, values.length) };
}

/** The infer request a generate body stands for (the caller adds arrival, signal and tenant). */
export function generateToInfer(body: unknown, config: ModelConfig, model: string, version: string): { readonly id: string; readonly request: Omit<InferRequest, 'arrivalMs'> } {
  const obj = optionalJsonObject(body);
  const id = obj['id'] ?? '';
  if (typeof id !== 'string') throw InvalidRequest("'id' must be a string");
  const nested = obj['parameters'] ?? {};
  if (typeof nested !== 'object' || nested === null || Array.isArray(nested)) throw InvalidRequest("'parameters' must be a JSON object");
  const inputs: Tensor[] = [];
  const params: Record<string, unknown> = {};
  const batching = config.maxBatchSize > 0;
  for (const [key, value] of [...Object.entries(obj), ...Object.entries(nested as Record<string, unknown>)]) {
    if (key === 'id' || (key === 'parameters' && value === nested)) continue;
    const input = config.inputs.find((i) => i.name === key);
    if (!input) {
      params[key] = value;
      continue;
    }
    if (inputs.some((t) => t.name === key)) throw InvalidRequest(`generate input '${key}' is given twice (at the top level and in 'parameters')`);
    inputs.push(inputTensor(input, batching, value));
  }
  const { sequence, priority, timeoutUs } = requestParameters(params);
  return { id, request: { id, model, version, inputs, outputs: [], priority, timeoutUs, protocol: 'http', ...(sequence && { sequence }) } };
}

/** The generate answer's JSON text for one inference answer (64-bit integers kept exact). */
export function inferToGenerate(r: InferResponse, id: string): string {
  const parts = [...(id !== '' ? [`"id":${JSON.stringify(id)}`] : []), `"model_name":${JSON.stringify(r.model)}`, `"model_version":${JSON.stringify(r.version)}`];
  for (const t of r.outputs) {
    const text = encodeJsonTensorData(t);
    if (text === undefined) throw DatatypeUnsupportedInJson(t.name, t.datatype);
    const count = t.shape.reduce((a, b) => a * b, 1);
    parts.push(`${JSON.stringify(t.name)}:${count === 1 ? text.slice(1, -1) : text}`);
  }
  return `{${parts.join(',')}}`;
}
