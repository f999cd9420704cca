import { InvalidModelConfig } from '../core/errors.ts';
import type { SluiceError } from '../core/errors.ts';
import { DEFAULT_MAX_BATCH_SIZE } from '../core/model.ts';
import type { TensorConfig } from '../core/model.ts';
import type { ConfigDraft, TensorDraft } from './draft.ts';
import type { OnnxMetadata, OnnxTensorInfo } from './onnx-metadata.ts';
import type { Signature } from './normalize.ts';

type Role = 'input' | 'output';

function where(draft: ConfigDraft | undefined, version: string): string {
  const file = `version ${version}'s model.onnx`;
  return draft === undefined ? `auto-completed from ${file}` : `in ${draft.file} (checked against ${file})`;
}

function showShape(shape: readonly number[] | undefined): string {
  return shape === undefined ? 'unknown' : `[${shape.join(', ')}]`;
}

/**
 * A model batches when every input and output of its file has a dynamic first dimension: only then can
 * requests be stacked along it (Triton's ONNX auto-complete uses the same rule).
 */
export function fileBatches(meta: OnnxMetadata): boolean {
  const all = [...meta.inputs, ...meta.outputs];
  return meta.inputs.length > 0 && all.every((t) => t.shape !== undefined && t.shape.length > 0 && t.shape[0] === -1);
}

class Merger {
  readonly #draft: ConfigDraft | undefined;
  readonly #version: string;
  readonly #maxBatchSize: number;

  constructor(draft: ConfigDraft | undefined, version: string, maxBatchSize: number) {
    this.#draft = draft;
    this.#version = version;
    this.#maxBatchSize = maxBatchSize;
  }

  fail(role: Role, name: string, reason: string): SluiceError {
    return InvalidModelConfig(where(this.#draft, this.#version), `${role} '${name}': ${reason}`);
  }

  /** The file's dims as the config spells them: the batch dimension dropped when the model batches. */
  #fileDims(role: Role, t: OnnxTensorInfo): readonly number[] | undefined {
    if (t.shape === undefined || this.#maxBatchSize === 0) return t.shape;
    if (t.shape.length === 0 || t.shape[0] !== -1) {
      throw this.fail(role, t.name, `max_batch_size ${this.#maxBatchSize} needs a dynamic first (batch) dimension, but the model file's shape is ${showShape(t.shape)}`);
    }
    return t.shape.slice(1);
  }

  #tensor(role: Role, given: TensorDraft | undefined, t: OnnxTensorInfo): TensorConfig {
    if (t.datatype === undefined) {
      throw this.fail(role, t.name, `the model file's element type ${t.elemType} has no protocol datatype sluice can serve`);
    }
    if (given?.datatype !== undefined && given.datatype !== t.datatype) {
      throw this.fail(role, t.name, `the config says datatype ${given.datatype} but the model file has ${t.datatype}`);
    }
    const fileDims = this.#fileDims(role, t);
    const batch = this.#maxBatchSize > 0 ? ' after the batch dimension' : '';
    let dims = given?.dims;
    if (dims === undefined) {
      if (fileDims === undefined) throw this.fail(role, t.name, 'the model file gives no shape; give its dims in a config');
      dims = fileDims;
    } else if (fileDims !== undefined) {
      if (dims.length !== fileDims.length) {
        throw this.fail(role, t.name, `the config gives ${dims.length} dims [${dims.join(', ')}] but the model file has ${fileDims.length}${batch}: shape ${showShape(t.shape)}`);
      }
      const k = dims.findIndex((d, i) => d !== -1 && fileDims[i] !== -1 && d !== fileDims[i]);
      if (k >= 0) throw this.fail(role, t.name, `dim ${k}${batch} is ${dims[k]} in the config but ${fileDims[k]} in the model file (shape ${showShape(t.shape)})`);
    }
    return { name: t.name, datatype: t.datatype, dims: [...dims], ...(given?.optional === true && { optional: true }), ...(given?.labelFilename && { labelFilename: given.labelFilename }) };
  }

  /** Config tensors first, in the config's order, then those only the file lists. */
  merge(role: Role, given: readonly TensorDraft[] | undefined, file: readonly OnnxTensorInfo[]): TensorConfig[] {
    const byName = new Map(file.map((t) => [t.name, t]));
    const out: TensorConfig[] = [];
    const seen = new Set<string>();
    for (const g of given ?? []) {
      if (seen.has(g.name)) throw this.fail(role, g.name, `listed twice in the config`);
      seen.add(g.name);
      const t = byName.get(g.name);
      if (t === undefined) {
        const names = file.map((f) => f.name).join(', ') || 'none';
        throw this.fail(role, g.name, `not an ${role} of the model file (its ${role}s: ${names})`);
      }
      out.push(this.#tensor(role, g, t));
    }
    for (const t of file) if (!seen.has(t.name)) out.push(this.#tensor(role, undefined, t));
    return out;
  }
}

/**
 * Settles a model's signature from its config (if any) and one version's ONNX file: tensors the config
 * leaves out come from the file, and what the config says must agree with the file (names, datatypes,
 * rank and fixed sizes). Without max_batch_size, the model batches (up to DEFAULT_MAX_BATCH_SIZE) when
 * the file's first dimensions are all dynamic. Throws InvalidModelConfig naming the tensor.
 */
export function settleSignature(draft: ConfigDraft | undefined, meta: OnnxMetadata, version: string): Signature {
  const maxBatchSize = draft?.maxBatchSize ?? (fileBatches(meta) ? DEFAULT_MAX_BATCH_SIZE : 0);
  const merger = new Merger(draft, version, maxBatchSize);
  return { maxBatchSize, inputs: merger.merge('input', draft?.inputs, meta.inputs), outputs: merger.merge('output', draft?.outputs, meta.outputs) };
}

/**
 * Checks another served version's file against a settled signature: the config holds for every version,
 * so each file must have the same inputs and outputs (Triton serves all versions with one config).
 */
export function checkSignature(draft: ConfigDraft | undefined, sig: Signature, meta: OnnxMetadata, version: string): void {
  const merger = new Merger(draft, version, sig.maxBatchSize);
  for (const [role, tensors, file] of [['input', sig.inputs, meta.inputs], ['output', sig.outputs, meta.outputs]] as const) {
    const merged = merger.merge(role, tensors, file);
    const extra = merged.find((t) => !tensors.some((s) => s.name === t.name));
    if (extra !== undefined) throw merger.fail(role, extra.name, `only version ${version} has it; every served version must have the same ${role}s`);
  }
}
