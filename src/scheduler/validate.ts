import { elementSize } from '../core/datatypes.ts';
import {
  BatchTooLarge,
  DataSizeMismatch,
  DatatypeMismatch,
  DuplicateInput,
  InvalidParameter,
  InvalidPriority,
  InvalidRequest,
  InvalidShape,
  MissingInput,
  ShapeMismatch,
  UnknownInput,
  UnknownOutput,
} from '../core/errors.ts';
import type { InferRequest } from '../core/inference.ts';
import type { ModelConfig, TensorConfig } from '../core/model.ts';
import { elementCount, isBytesData, type Tensor } from '../core/tensor.ts';
import { batchLimitsOf, defaultLevel, levelCount } from './policy.ts';
import type { RequestPlan } from './scheduler.ts';

function shapeText(shape: readonly number[]): string {
  return `[${shape.join(',')}]`;
}

/** The shape a request must send for an input: the config dims, with -1 for the batch dim when it batches. */
function expectedShape(config: ModelConfig, input: TensorConfig): number[] {
  return config.maxBatchSize > 0 ? [-1, ...input.dims] : [...input.dims];
}

function checkShape(config: ModelConfig, model: string, input: TensorConfig, t: Tensor): void {
  const expected = expectedShape(config, input);
  const fits = t.shape.length === expected.length && expected.every((d, i) => d === -1 || d === t.shape[i]);
  if (!fits) throw ShapeMismatch(t.name, model, shapeText(expected), shapeText(t.shape));
}

/**
 * The front doors checked data size against the claimed shape already; the batcher relies on it to cut
 * rows, so a tensor built any other way is checked again here (cheap: lengths only).
 */
function checkData(t: Tensor): void {
  const count = elementCount(t.shape);
  if (count === undefined) throw InvalidShape(t.name, `${shapeText(t.shape)} has a negative, fractional or too large dimension`);
  if (isBytesData(t.data)) {
    if (t.data.length !== count) throw DataSizeMismatch(t.name, `${count} elements`, `${t.data.length} elements`);
    return;
  }
  const bytes = count * elementSize(t.datatype);
  if (t.data.byteLength !== bytes) throw DataSizeMismatch(t.name, `${bytes} bytes`, `${t.data.byteLength} bytes`);
}

function resolveLevel(config: ModelConfig, model: string, priority: number): number {
  const levels = levelCount(config);
  if (!Number.isSafeInteger(priority) || priority < 0 || priority > levels) throw InvalidPriority(model, String(priority), levels);
  return priority === 0 ? defaultLevel(config) : priority;
}

function resolveOutputs(config: ModelConfig, model: string, requested: readonly string[]): { outputs: string[]; all: boolean } {
  if (requested.length === 0) return { outputs: config.outputs.map((o) => o.name), all: true };
  const seen = new Set<string>();
  for (const name of requested) {
    if (!config.outputs.some((o) => o.name === name)) throw UnknownOutput(name, model);
    if (seen.has(name)) throw InvalidRequest(`output '${name}' is requested more than once for model '${model}'`);
    seen.add(name);
  }
  return { outputs: [...requested], all: seen.size === config.outputs.length };
}

/**
 * Checks a decoded request against the model's config (names, datatypes, shapes, batch size, priority,
 * outputs) and returns what the batcher needs. Throws the catalog's INVALID_ARG errors, naming the
 * tensor and what was expected, in Triton's wording.
 */
export function validateRequest(config: ModelConfig, request: InferRequest): RequestPlan {
  const model = request.model;
  const byName = new Map<string, Tensor>();
  for (const t of request.inputs) {
    const input = config.inputs.find((i) => i.name === t.name);
    if (!input) throw UnknownInput(t.name, model);
    if (byName.has(t.name)) throw DuplicateInput(t.name, model);
    byName.set(t.name, t);
    if (t.datatype !== input.datatype) throw DatatypeMismatch(t.name, model, input.datatype, t.datatype);
    checkShape(config, model, input, t);
    checkData(t);
  }
  for (const input of config.inputs) {
    if (!input.optional && !byName.has(input.name)) {
      const required = config.inputs.filter((i) => !i.optional).length;
      throw MissingInput(model, required, request.inputs.length, input.name);
    }
  }
  if (request.inputs.length === 0) throw InvalidRequest(`request for model '${model}' has no inputs`);

  let rows = 1;
  const keyParts: string[] = [];
  if (config.maxBatchSize > 0) {
    const limits = batchLimitsOf(config);
    let first: Tensor | undefined;
    for (const input of config.inputs) {
      const t = byName.get(input.name);
      if (!t) continue;
      const batch = t.shape[0]!;
      if (!first) {
        first = t;
        rows = batch;
        if (batch < 1) throw InvalidShape(t.name, `the batch dimension must be at least 1, got ${batch}`);
        if (batch > limits.maxRows) throw BatchTooLarge(model, batch, limits.maxRows);
      } else if (batch !== rows) {
        throw InvalidShape(t.name, `batch size ${batch} differs from the batch size ${rows} of input '${first.name}'`);
      }
      keyParts.push(`${t.name}:${t.shape.slice(1).join('x')}`);
    }
  }
  if (!Number.isSafeInteger(request.timeoutUs) || request.timeoutUs < 0) {
    throw InvalidParameter('timeout', `expected a non-negative number of microseconds, got ${request.timeoutUs}`);
  }
  const level = resolveLevel(config, model, request.priority);
  const { outputs, all } = resolveOutputs(config, model, request.outputs);
  return { rows, shapeKey: keyParts.join('|'), level, outputs, allOutputs: all };
}
