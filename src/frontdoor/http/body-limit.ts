import { elementSize } from '../../core/datatypes.ts';
import { ModelBodyTooLarge, type SluiceError } from '../../core/errors.ts';
import type { InferenceService } from '../../core/inference.ts';
import type { ModelConfig } from '../../core/model.ts';

/**
 * Bytes a JSON number may take: a full-precision FP64 with exponent and sign is 24 characters, plus a
 * separator, a space and nesting brackets from a pretty-printing client. Generous on purpose: the guard
 * is there to refuse bodies that are orders of magnitude too large, not to police formatting.
 */
export const JSON_BYTES_PER_ELEMENT = 32;
/** Room for everything in a JSON body but the numbers: names, shapes, parameters, an id. */
export const JSON_HEADROOM_BYTES = 64 * 1024;
/**
 * No model's limit is below this, so that small models never trip over a chatty client (or a JSON
 * decoder test's deeply nested array): the guard is for bodies orders of magnitude too large.
 */
export const MIN_MODEL_BODY_LIMIT = 256 * 1024;

/** The largest body one infer request for a model may send, and the error that refuses a larger one. */
export interface BodyLimit {
  readonly bytes: number;
  /** `size` is the declared Content-Length, or "more than N" for a body cut off while it streamed. */
  readonly tooLarge: (size: string) => SluiceError;
}

interface ModelSizes {
  /** Elements of one full batch, all inputs together; undefined when a dimension is unbounded. */
  readonly elements: number | undefined;
  /** Raw bytes of one full batch; undefined when unbounded (a variable dim, or BYTES). */
  readonly rawBytes: number | undefined;
  readonly rows: number;
}

function sizesOf(config: ModelConfig): ModelSizes {
  const rows = Math.max(1, config.maxBatchSize);
  let elements: number | undefined = 0;
  let rawBytes: number | undefined = 0;
  for (const input of config.inputs) {
    if (input.dims.some((d) => d < 0)) return { elements: undefined, rawBytes: undefined, rows };
    const perRow = input.dims.reduce((p, d) => p * d, 1);
    elements = elements + rows * perRow;
    const width = elementSize(input.datatype);
    // BYTES elements have no fixed size: only their count is bounded, not their bytes.
    rawBytes = rawBytes === undefined || width === 0 ? undefined : rawBytes + rows * perRow * width;
  }
  return { elements, rawBytes, rows };
}

/**
 * Per-model body limits, computed once per model configuration object (a reload brings a new one).
 * A body can be no larger than a full batch (max_batch_size rows, or 1 for a model that does not batch)
 * of every input: raw bytes for the binary extension, JSON_BYTES_PER_ELEMENT per element for JSON,
 * never below MIN_MODEL_BODY_LIMIT and never above the global --http-body-limit.
 */
export class BodyLimits {
  readonly #service: InferenceService;
  readonly #global: number;
  readonly #sizes = new WeakMap<ModelConfig, ModelSizes>();

  constructor(service: InferenceService, globalLimit: number) {
    this.#service = service;
    this.#global = globalLimit;
  }

  /**
   * The limit of an infer request's body. `binaryHeaderLength` is its Inference-Header-Content-Length:
   * with it, binary tensors follow a JSON header of that size (which may itself carry JSON tensors, so
   * the JSON limit still bounds it). Unknown models get the global limit: their request fails anyway,
   * with the answer the handler gives.
   */
  limitFor(model: string, version: string, binaryHeaderLength: number | undefined): BodyLimit | undefined {
    let config: ModelConfig;
    try {
      if (!this.#service.hasModel(model)) return undefined;
      config = this.#service.modelConfig(model, version);
    } catch {
      return undefined;
    }
    let sizes = this.#sizes.get(config);
    if (sizes === undefined) {
      sizes = sizesOf(config);
      this.#sizes.set(config, sizes);
    }
    if (sizes.elements === undefined) return undefined;
    const json = sizes.elements * JSON_BYTES_PER_ELEMENT + JSON_HEADROOM_BYTES;
    const header = binaryHeaderLength !== undefined && sizes.rawBytes !== undefined ? Math.min(binaryHeaderLength, json) : undefined;
    const raw = header !== undefined && sizes.rawBytes !== undefined ? sizes.rawBytes + header : json;
    const bytes = Math.min(this.#global, Math.max(MIN_MODEL_BODY_LIMIT, Math.min(json, raw)));
    if (bytes >= this.#global) return undefined;
    // The explanation is only written for a body that is refused: this runs for every request.
    const why = (): string => {
      const base = raw < json
        ? `a full batch, ${sizes.rows} rows, of binary tensors (${sizes.rawBytes} bytes) after a ${header}-byte JSON header`
        : `a full batch, ${sizes.rows} rows, of JSON tensors at up to ${JSON_BYTES_PER_ELEMENT} bytes per element`;
      return Math.min(json, raw) < MIN_MODEL_BODY_LIMIT ? `${base}, raised to the ${MIN_MODEL_BODY_LIMIT}-byte floor` : base;
    };
    return { bytes, tooLarge: (size) => ModelBodyTooLarge(model, size, bytes, why()) };
  }
}
