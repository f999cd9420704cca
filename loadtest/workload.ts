import { isDataType, type DataType } from '../src/core/datatypes.ts';
import { encodeRaw } from './raw-codec.ts';
import type { WorkTensor } from './types.ts';
import { seededRandom } from '../src/generation/sampler.ts';

/** One input or output as model metadata (GET /v2/models/{m} or gRPC ModelMetadata) describes it. */
export interface TensorMeta {
  readonly name: string;
  readonly datatype: string;
  readonly shape: readonly number[];
}

/** Model metadata, as the Open Inference Protocol returns it. */
export interface ModelMeta {
  readonly name: string;
  readonly versions: readonly string[];
  readonly platform: string;
  readonly inputs: readonly TensorMeta[];
  readonly outputs: readonly TensorMeta[];
}

/** How input data is generated from metadata. */
export interface GenerateOptions {
  readonly seed: number;
  /** Distinct input sets rotated through the run: a response mixed up with another's is caught. */
  readonly variants: number;
  /** Rows per request: the size given to a leading dynamic (batch) dimension. */
  readonly batch: number;
  /** Explicit shapes by input name (override metadata). */
  readonly shapes: Readonly<Record<string, readonly number[]>>;
}

/** Elements per generated input are capped so a metadata typo cannot allocate gigabytes here. */
const MAX_GENERATED_ELEMENTS = 1 << 24;

function resolveShape(input: TensorMeta, opts: GenerateOptions): number[] {
  const explicit = opts.shapes[input.name];
  if (explicit) return [...explicit];
  // A leading -1 is the batch dimension of a batching model; other dynamic dims get 1 unless --shape says otherwise.
  return input.shape.map((d, i) => (d >= 0 ? d : i === 0 ? opts.batch : 1));
}

function randomValue(datatype: DataType, rand: () => number): number | boolean | string {
  const int = (lo: number, hi: number): number => lo + Math.floor(rand() * (hi - lo + 1));
  switch (datatype) {
    case 'BOOL': return rand() < 0.5;
    case 'INT8': return int(-100, 100);
    case 'UINT8':
    case 'UINT16':
    case 'UINT32':
    case 'UINT64': return int(0, 200);
    case 'INT16':
    case 'INT32':
    case 'INT64': return int(-1000, 1000);
    case 'BYTES': {
      const len = int(1, 16);
      let s = '';
      for (let i = 0; i < len; i++) s += String.fromCharCode(int(97, 122));
      return s;
    }
    case 'FP16':
    case 'BF16':
      // Values representable in 16 bits, so that a round trip through the server compares exactly.
      return Math.round((rand() * 2 - 1) * 256) / 256;
    default: return Math.fround(rand() * 2 - 1);
  }
}

/** Builds a tensor, checking the values fit the shape and datatype. */
export function makeTensor(name: string, datatype: string, shape: readonly number[], values: readonly (number | boolean | string)[]): WorkTensor {
  if (!isDataType(datatype)) throw new Error(`input '${name}': unknown datatype '${datatype}'`);
  const count = shape.reduce((n, d) => n * d, 1);
  if (!shape.every((d) => Number.isSafeInteger(d) && d >= 0)) throw new Error(`input '${name}': shape [${shape.join(',')}] has a negative or non-integer dimension (give it with --shape ${name}:...)`);
  if (count !== values.length) throw new Error(`input '${name}': shape [${shape.join(',')}] needs ${count} values, got ${values.length}`);
  return { name, datatype, shape: [...shape], values, raw: encodeRaw(datatype, values) };
}

/** Seeded input sets that match the model's metadata. */
export function generateVariants(meta: ModelMeta, opts: GenerateOptions): WorkTensor[][] {
  if (meta.inputs.length === 0) throw new Error(`model '${meta.name}' declares no inputs`);
  const rand = seededRandom(opts.seed);
  const variants: WorkTensor[][] = [];
  for (let v = 0; v < opts.variants; v++) {
    variants.push(meta.inputs.map((input) => {
      if (!isDataType(input.datatype)) throw new Error(`input '${input.name}' of model '${meta.name}' has datatype '${input.datatype}', which this tool cannot generate`);
      const shape = resolveShape(input, opts);
      const count = shape.reduce((n, d) => n * d, 1);
      if (count > MAX_GENERATED_ELEMENTS) throw new Error(`input '${input.name}': shape [${shape.join(',')}] has ${count} elements, more than the ${MAX_GENERATED_ELEMENTS} this tool generates`);
      const datatype = input.datatype;
      const values = Array.from({ length: count }, () => randomValue(datatype, rand));
      return makeTensor(input.name, datatype, shape, values);
    }));
  }
  return variants;
}

/**
 * The input set of a JSON request body given with --input (the REST JSON form: inputs with name,
 * shape, datatype and data, nested or flat).
 */
export function variantFromBody(body: unknown, source: string): WorkTensor[] {
  if (body === null || typeof body !== 'object' || !Array.isArray((body as { inputs?: unknown }).inputs)) {
    throw new Error(`${source}: expected a JSON inference request body with an "inputs" array`);
  }
  const inputs = (body as { inputs: unknown[] }).inputs;
  if (inputs.length === 0) throw new Error(`${source}: "inputs" is empty`);
  return inputs.map((raw, i) => {
    const t = raw as { name?: unknown; shape?: unknown; datatype?: unknown; data?: unknown };
    const where = `${source}: inputs[${i}]`;
    if (typeof t.name !== 'string' || t.name === '') throw new Error(`${where}: "name" must be a non-empty string`);
    if (typeof t.datatype !== 'string') throw new Error(`${where} ('${t.name}'): "datatype" must be a string`);
    if (!Array.isArray(t.shape) || !t.shape.every((d) => typeof d === 'number')) throw new Error(`${where} ('${t.name}'): "shape" must be an array of numbers`);
    if (!Array.isArray(t.data)) throw new Error(`${where} ('${t.name}'): "data" must be an array`);
    const values: unknown[] = (t.data as unknown[]).flat(Infinity);
    for (const v of values) {
      if (typeof v !== 'number' && typeof v !== 'boolean' && typeof v !== 'string') throw new Error(`${where} ('${t.name}'): data element ${JSON.stringify(v)} is not a number, boolean or string`);
    }
    try {
      return makeTensor(t.name, t.datatype, t.shape, values as (number | boolean | string)[]);
    } catch (e) {
      throw new Error(`${source}: ${(e as Error).message}`, { cause: e });
    }
  });
}

/** Parses --shape NAME:D1xD2 (or D1,D2). */
export function parseShapeFlag(text: string): [string, number[]] {
  const m = /^([^:]+):([0-9x,]+)$/.exec(text);
  if (!m) throw new Error(`--shape '${text}': expected NAME:D1xD2 (e.g. INPUT0:1x16)`);
  const dims = m[2]!.split(/[x,]/).filter((s) => s !== '').map(Number);
  if (dims.length === 0 || !dims.every((d) => Number.isSafeInteger(d))) throw new Error(`--shape '${text}': dimensions must be integers`);
  return [m[1]!, dims];
}
