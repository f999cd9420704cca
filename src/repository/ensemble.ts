import type { DataType } from '../core/datatypes.ts';
import type { EnsembleStep, ModelConfig, TensorConfig } from '../core/model.ts';
import { configError } from './draft.ts';
import type { ConfigDraft } from './draft.ts';
import { normalizeConfig } from './normalize.ts';
import type { ModelEntry } from './repository.ts';
import { listVersionFolders, selectVersions } from './versions.ts';

/*
 * Ensembles (Triton's platform "ensemble"): a model with no file of its own whose ensemble_scheduling
 * routes tensors between other models of the repository. What one config can say about itself is
 * checked when it is read (every step input fed, every output produced, no cycle); what needs the
 * other models (they exist, their tensors' names, datatypes and shapes agree) once the repository has
 * been read, so that an ensemble that cannot work is listed with its reason and never served.
 */

export const ENSEMBLE_PLATFORM = 'ensemble';

/** Fails naming the field as the config file spells it (config.json: camelCase, plural tensor lists). */
function fail(draft: ConfigDraft, path: string, reason: string): never {
  const json = (): string => path.replace('ensemble_scheduling', 'ensembleScheduling').replace(/^(input|output)$/, '$1s');
  throw configError(draft.file, draft.source === 'pbtxt' ? path : json(), reason);
}

function declared(draft: ConfigDraft, kind: 'input' | 'output', tensors: ConfigDraft['inputs']): TensorConfig[] {
  const out = (tensors ?? []).map((t) => {
    // No file to complete them from: an ensemble says what it takes and gives.
    if (t.datatype === undefined || t.dims === undefined) fail(draft, kind, `ensemble ${kind} '${t.name}' needs a data_type and dims (an ensemble has no model file to complete them from)`);
    return { name: t.name, datatype: t.datatype, dims: t.dims, ...(t.optional !== undefined && { optional: t.optional }), ...(t.labelFilename !== undefined && { labelFilename: t.labelFilename }) };
  });
  if (out.length === 0) fail(draft, kind, `an ensemble declares its ${kind}s`);
  return out;
}

/**
 * The steps in an order where each runs after the steps that produce its inputs; throws (with the
 * steps left) when they form a cycle. `producer` maps each ensemble tensor to the step making it.
 */
function stepOrder(draft: ConfigDraft, steps: readonly EnsembleStep[], producer: ReadonlyMap<string, number>): number[] {
  const order: number[] = [];
  const placed = new Set<number>();
  while (order.length < steps.length) {
    const before = order.length;
    steps.forEach((s, i) => {
      if (placed.has(i)) return;
      if (Object.values(s.inputMap).every((t) => !producer.has(t) || placed.has(producer.get(t)!))) {
        placed.add(i);
        order.push(i);
      }
    });
    if (order.length === before) {
      const left = steps.map((s, i) => (placed.has(i) ? '' : `step[${i}] (${s.modelName})`)).filter((x) => x !== '');
      fail(draft, 'ensemble_scheduling', `the steps form a cycle: ${left.join(', ')} each wait for another's output`);
    }
  }
  return order;
}

/** Checks the dataflow of one ensemble config on its own: fed inputs, produced outputs, no cycle. */
export function checkEnsembleGraph(draft: ConfigDraft, inputs: readonly TensorConfig[], outputs: readonly TensorConfig[]): void {
  const steps = draft.ensembleScheduling?.steps ?? [];
  if (steps.length === 0) fail(draft, 'ensemble_scheduling', 'an ensemble needs at least one step');
  const inputNames = new Set(inputs.map((t) => t.name));
  const producer = new Map<string, number>();
  steps.forEach((s, i) => {
    if (s.modelName === draft.name) fail(draft, `ensemble_scheduling.step[${i}]`, 'an ensemble cannot be a step of itself');
    for (const t of Object.values(s.outputMap)) {
      if (inputNames.has(t)) fail(draft, `ensemble_scheduling.step[${i}]`, `'${t}' is an ensemble input, so a step cannot produce it`);
      const other = producer.get(t);
      if (other !== undefined) fail(draft, `ensemble_scheduling.step[${i}]`, `'${t}' is produced by step[${other}] too; each ensemble tensor has one producer`);
      producer.set(t, i);
    }
  });
  steps.forEach((s, i) => {
    for (const [k, t] of Object.entries(s.inputMap)) {
      if (!inputNames.has(t) && !producer.has(t)) fail(draft, `ensemble_scheduling.step[${i}]`, `input '${k}' of model '${s.modelName}' is fed by '${t}', which is neither an ensemble input nor any step's output`);
    }
  });
  for (const o of outputs) if (!producer.has(o.name)) fail(draft, 'output', `ensemble output '${o.name}' is not produced by any step`);
  stepOrder(draft, steps, producer);
}

/** An ensemble's entry: its declared signature, the version folders its policy serves (they hold nothing). */
export async function readEnsembleEntry(name: string, dir: string, draft: ConfigDraft, warnings: string[]): Promise<ModelEntry> {
  if (draft.backend !== undefined && draft.backend !== '') fail(draft, 'backend', 'an ensemble has no backend');
  const inputs = declared(draft, 'input', draft.inputs);
  const outputs = declared(draft, 'output', draft.outputs);
  checkEnsembleGraph(draft, inputs, outputs);
  // Triton asks for a version folder for an ensemble too; it may be empty.
  const versions = selectVersions(await listVersionFolders(dir), draft.versionPolicy ?? { latest: { numVersions: 1 } });
  const config = normalizeConfig(name, draft, { maxBatchSize: draft.maxBatchSize ?? 0, inputs, outputs });
  return { name, config, versions: versions.map((version) => ({ name, version, file: '', byteSize: 0, mtimeMs: 0 })), error: '', warnings };
}

interface Known {
  readonly datatype: DataType;
  /** With the batch dimension (-1) when the model batches. */
  readonly shape: readonly number[];
}

function known(config: ModelConfig, t: TensorConfig): Known {
  return { datatype: t.datatype, shape: config.maxBatchSize > 0 ? [-1, ...t.dims] : t.dims };
}

const fits = (a: Known, b: Known): boolean => a.datatype === b.datatype && a.shape.length === b.shape.length && a.shape.every((d, i) => d === -1 || b.shape[i] === -1 || d === b.shape[i]);
const show = (k: Known): string => `${k.datatype} [${k.shape.join(', ')}]`;

/** Why an ensemble cannot run on these models ('' when it can): models, tensor names, types, shapes. */
export function ensembleProblem(config: ModelConfig, lookup: (name: string) => ModelEntry | undefined): string {
  const steps = config.ensembleScheduling?.steps ?? [];
  const tensors = new Map<string, Known>(config.inputs.map((t) => [t.name, known(config, t)]));
  const pending = steps.map((_, i) => i);
  // Steps in dataflow order (the graph was checked acyclic when the config was read).
  while (pending.length > 0) {
    const at = pending.findIndex((i) => Object.values(steps[i]!.inputMap).every((t) => tensors.has(t)));
    if (at < 0) return 'the steps cannot be ordered';
    const i = pending.splice(at, 1)[0]!;
    const s = steps[i]!;
    const where = `step[${i}] (model '${s.modelName}')`;
    const entry = lookup(s.modelName);
    if (entry === undefined) return `${where}: no such model in the repository`;
    if (entry.error !== '' || entry.config === undefined) return `${where}: the model is unavailable: ${entry.error}`;
    const m = entry.config;
    if (s.modelVersion > 0 && !entry.versions.some((v) => v.version === String(s.modelVersion))) return `${where}: version ${s.modelVersion} is not served (serving: ${entry.versions.map((v) => v.version).join(', ')})`;
    if (config.maxBatchSize > 0 && m.maxBatchSize < config.maxBatchSize) return `${where}: its max_batch_size ${m.maxBatchSize} is below the ensemble's ${config.maxBatchSize}`;
    for (const [k, t] of Object.entries(s.inputMap)) {
      const input = m.inputs.find((x) => x.name === k);
      if (!input) return `${where}: input_map names '${k}', which is not an input of the model (inputs: ${m.inputs.map((x) => x.name).join(', ')})`;
      const have = tensors.get(t)!;
      if (!fits(have, known(m, input))) return `${where}: input '${k}' is ${show(known(m, input))} but '${t}' is ${show(have)}`;
    }
    for (const input of m.inputs) if (input.optional !== true && !Object.hasOwn(s.inputMap, input.name)) return `${where}: the model's input '${input.name}' is not in input_map`;
    for (const [k, t] of Object.entries(s.outputMap)) {
      const output = m.outputs.find((x) => x.name === k);
      if (!output) return `${where}: output_map names '${k}', which is not an output of the model (outputs: ${m.outputs.map((x) => x.name).join(', ')})`;
      tensors.set(t, known(m, output));
    }
  }
  for (const o of config.outputs) {
    const have = tensors.get(o.name)!;
    if (!fits(have, known(config, o))) return `ensemble output '${o.name}' is declared ${show(known(config, o))} but its step produces ${show(have)}`;
  }
  return '';
}

/**
 * Checks every ensemble of `entries` against the models it names (nested ensembles first), replacing
 * an ensemble that cannot run with an entry that says why.
 */
export function checkEnsembles(entries: Map<string, ModelEntry>): void {
  const done = new Set<string>();
  const visit = (name: string, path: readonly string[]): void => {
    const entry = entries.get(name);
    const config = entry?.config;
    if (done.has(name) || !entry || !config?.ensembleScheduling) return;
    const here = [...path, name];
    let reason = '';
    for (const s of config.ensembleScheduling.steps) {
      if (here.includes(s.modelName)) {
        reason = `the ensembles form a cycle: ${[...here, s.modelName].join(' -> ')}`;
        break;
      }
      visit(s.modelName, here);
    }
    done.add(name);
    reason ||= ensembleProblem(config, (n) => entries.get(n));
    const file = config.source === 'json' ? 'config.json' : 'config.pbtxt';
    if (reason !== '') entries.set(name, { ...entry, config: undefined, versions: [], error: configError(file, config.source === 'json' ? 'ensembleScheduling' : 'ensemble_scheduling', reason).message });
  };
  for (const name of [...entries.keys()]) visit(name, []);
}
