import { readFile } from 'node:fs/promises';
import { DEFAULT_TOLERANCE, expectedCheck, isSimpleModel, simpleExpected } from './check.ts';
import type { Driver } from './driver.ts';
import { grpcModelMetadata } from './grpc-transport.ts';
import type { DecodedTensor, LoadProtocol, OutputCheck, WorkTensor } from './types.ts';
import { generateVariants, variantFromBody, type GenerateOptions, type ModelMeta } from './workload.ts';

/** GET /v2/models/{m}[/versions/{v}]: the metadata input data is generated from. */
export async function httpModelMetadata(url: string, model: string, version: string, timeoutMs: number, headers: Readonly<Record<string, string>> = {}): Promise<ModelMeta> {
  const base = new URL(url);
  const prefix = base.pathname.replace(/\/+$/, '');
  const path = `${prefix}/v2/models/${encodeURIComponent(model)}${version ? `/versions/${encodeURIComponent(version)}` : ''}`;
  let res: Response;
  try {
    res = await fetch(new URL(path, base.origin), { headers, signal: AbortSignal.timeout(timeoutMs) });
  } catch (e) {
    throw new Error(`cannot reach ${base.origin} for the metadata of model '${model}': ${(e as Error).message}`, { cause: e });
  }
  const text = await res.text();
  if (!res.ok) throw new Error(`metadata of model '${model}': HTTP ${res.status} ${text.slice(0, 300)}`);
  let doc: Partial<ModelMeta>;
  try {
    doc = JSON.parse(text) as Partial<ModelMeta>;
  } catch {
    throw new Error(`metadata of model '${model}' is not JSON: ${text.slice(0, 200)}`);
  }
  if (!Array.isArray(doc.inputs) || !Array.isArray(doc.outputs)) throw new Error(`metadata of model '${model}' has no inputs/outputs arrays`);
  return { name: doc.name ?? model, versions: doc.versions ?? [], platform: doc.platform ?? '', inputs: doc.inputs, outputs: doc.outputs };
}

/** Metadata over whichever protocol the run uses. */
export function modelMetadata(o: { protocol: LoadProtocol; url: string | undefined; grpcUrl: string | undefined; model: string; version: string; timeoutMs: number; headers?: Readonly<Record<string, string>> }): Promise<ModelMeta> {
  if (o.protocol === 'grpc' && o.grpcUrl) return grpcModelMetadata(o.grpcUrl, o.model, o.version, o.timeoutMs, o.headers);
  if (!o.url) throw new Error('--url is needed to read the model metadata');
  return httpModelMetadata(o.url, o.model, o.version, o.timeoutMs, o.headers);
}

/** The input sets: from --input, or generated from metadata. */
export async function loadVariants(inputFile: string | undefined, meta: ModelMeta | undefined, gen: GenerateOptions): Promise<WorkTensor[][]> {
  if (inputFile !== undefined) {
    let body: unknown;
    try {
      body = JSON.parse(await readFile(inputFile, 'utf8'));
    } catch (e) {
      throw new Error(`--input ${inputFile}: ${(e as Error).message}`, { cause: e });
    }
    return [variantFromBody(body, `--input ${inputFile}`)];
  }
  if (!meta) throw new Error('no model metadata to generate input data from (give --input FILE)');
  return generateVariants(meta, gen);
}

/** How responses are checked, and the first reason a check failed (for the report). */
export interface CheckPlan {
  readonly kind: 'simple' | 'reference' | 'none';
  readonly check: OutputCheck | undefined;
  firstWrong(): string | undefined;
}

/**
 * Builds the check: the simple model's sums and differences computed here; for any other model, one
 * reference request per input set made before the run, its outputs then expected from every sampled
 * response (with a float tolerance, since a batch may round differently from a single request).
 */
export async function planCheck(driver: Driver, meta: ModelMeta | undefined, variants: readonly (readonly WorkTensor[])[], opts: { enabled: boolean; rtol: number }): Promise<CheckPlan> {
  let first: string | undefined;
  const remember = (inner: OutputCheck): OutputCheck => (variant, outputs) => {
    const reason = inner(variant, outputs);
    if (reason !== undefined && first === undefined) first = `input set ${variant}: ${reason}`;
    return reason;
  };
  if (!opts.enabled) return { kind: 'none', check: undefined, firstWrong: () => first };
  const tol = { atol: DEFAULT_TOLERANCE.atol, rtol: opts.rtol };
  if (meta && isSimpleModel(meta)) {
    return { kind: 'simple', check: remember(expectedCheck(variants.map(simpleExpected), tol)), firstWrong: () => first };
  }
  const references: DecodedTensor[][] = [];
  for (let v = 0; v < variants.length; v++) {
    let captured: DecodedTensor[] | undefined;
    let undecodable: string | undefined;
    const outcome = await driver.once(v, (_variant, outputs) => {
      if (typeof outputs === 'string') undecodable = outputs;
      else captured = [...outputs];
      return undecodable;
    });
    if (!outcome.ok || !captured) throw new Error(`the reference request for input set ${v} failed: ${undecodable ?? (outcome.ok ? 'no outputs' : outcome.error)}`);
    references.push(captured);
  }
  return { kind: 'reference', check: remember(expectedCheck(references, tol)), firstWrong: () => first };
}
