import { fromTritonTypeName } from '../core/datatypes.ts';
import type { DataType } from '../core/datatypes.ts';
import type { WarmupInput } from '../core/model.ts';
import { INSTANCE_KINDS, TIMEOUT_ACTIONS, checkDims, configError, intProblem, readVersionPolicy } from './draft.ts';
import type { ConfigDraft, DynamicBatchingDraft, InstanceGroupDraft, QueuePolicyDraft, TensorDraft, WarmupDraft } from './draft.ts';
import { PbtxtSyntaxError, parsePbtxt } from './pbtxt.ts';
import { readSequenceBatching } from './sequence-config.ts';
import type { PbField, PbMessage, PbValue } from './pbtxt.ts';

const FILE = 'config.pbtxt';
const INT32_MAX = 2 ** 31 - 1;

/**
 * Reads one message of the text tree against the fields sluice knows. Fields never asked for are
 * reported as unknown (with their path) when the reader finishes, so nothing is silently dropped.
 */
export class MessageReader {
  readonly #fields: readonly PbField[];
  readonly #path: string;
  readonly #unknown: string[];
  readonly #known = new Set<string>();

  constructor(message: PbMessage, path: string, unknown: string[]) {
    this.#fields = message.fields;
    this.#path = path;
    this.#unknown = unknown;
  }

  #at(name: string): string {
    return this.#path === '' ? name : `${this.#path}.${name}`;
  }

  #all(name: string): PbField[] {
    this.#known.add(name);
    return this.#fields.filter((f) => f.name === name);
  }

  #one(name: string): PbField | undefined {
    const found = this.#all(name);
    if (found.length > 1) throw configError(FILE, this.#at(name), `field given ${found.length} times (lines ${found.map((f) => f.line).join(', ')}) but it is not repeated`);
    return found[0];
  }

  #fail(name: string, field: PbField, reason: string): never {
    throw configError(FILE, this.#at(name), `${reason} (line ${field.line})`);
  }

  #describe(v: PbValue): string {
    if (v.kind === 'string') return `the string "${v.value}"`;
    if (v.kind === 'number') return `the number ${v.text}`;
    if (v.kind === 'ident') return `'${v.value}'`;
    return 'a message';
  }

  #int(name: string, field: PbField, min: number, max: number, index?: number): number {
    const v = field.value;
    const m = v.kind === 'number' ? /^([-+]?)(0[xX][0-9a-fA-F]+|0[0-7]+|[0-9]+)$/.exec(v.text) : null;
    if (m === null) return this.#fail(name, field, `expected an integer, got ${this.#describe(v)}`);
    const body = m[2] ?? '';
    // Hex and octal (leading 0) literals are legal protobuf text; Number() would misread octal.
    const magnitude = /^0[xX]/.test(body) ? parseInt(body.slice(2), 16) : /^0[0-7]+$/.test(body) ? parseInt(body, 8) : Number(body);
    const value = m[1] === '-' ? -magnitude : magnitude;
    const problem = intProblem(value, min, max);
    if (problem === undefined) return value;
    return this.#fail(index === undefined ? name : `${name}[${index}]`, field, problem);
  }

  int(name: string, min: number, max?: number): number | undefined {
    const f = this.#one(name);
    return f === undefined ? undefined : this.#int(name, f, min, max ?? Number.MAX_SAFE_INTEGER);
  }

  ints(name: string, min: number, max?: number): number[] | undefined {
    const found = this.#all(name);
    return found.length === 0 ? undefined : found.map((f, i) => this.#int(name, f, min, max ?? Number.MAX_SAFE_INTEGER, i));
  }

  /** Repeated numbers, integers or not (fp32_false_true). */
  numbers(name: string): number[] | undefined {
    const found = this.#all(name);
    if (found.length === 0) return undefined;
    return found.map((f) => {
      const n = f.value.kind === 'number' ? Number(f.value.text) : Number.NaN;
      if (!Number.isFinite(n)) this.#fail(name, f, `expected a number, got ${this.#describe(f.value)}`);
      return n;
    });
  }

  string(name: string): string | undefined {
    const f = this.#one(name);
    if (f === undefined) return undefined;
    if (f.value.kind !== 'string') this.#fail(name, f, `expected a quoted string, got ${this.#describe(f.value)}`);
    return f.value.value;
  }

  bool(name: string): boolean | undefined {
    const f = this.#one(name);
    if (f === undefined) return undefined;
    const v = f.value;
    const text = v.kind === 'ident' ? v.value : v.kind === 'number' ? v.text : '';
    if (text === 'true' || text === 'True' || text === 't' || text === '1') return true;
    if (text === 'false' || text === 'False' || text === 'f' || text === '0') return false;
    return this.#fail(name, f, `expected true or false, got ${this.#describe(v)}`);
  }

  /** An enum value, checked against the names sluice accepts. */
  ident<T extends string>(name: string, allowed: readonly T[]): T | undefined {
    const f = this.#one(name);
    if (f === undefined) return undefined;
    const v = f.value;
    if (v.kind === 'ident' && (allowed as readonly string[]).includes(v.value)) return v.value as T;
    return this.#fail(name, f, `expected one of ${allowed.join(', ')}, got ${this.#describe(v)}`);
  }

  datatype(name: string): DataType | undefined {
    const f = this.#one(name);
    if (f === undefined) return undefined;
    const v = f.value;
    const dt = v.kind === 'ident' ? fromTritonTypeName(v.value) : undefined;
    if (dt === undefined) this.#fail(name, f, `expected a TYPE_* datatype (e.g. TYPE_FP32), got ${this.#describe(v)}`);
    return dt;
  }

  /** The generic name the shared readers in draft.ts use. */
  child(key: string): MessageReader | undefined {
    return this.message(key);
  }

  message(name: string): MessageReader | undefined {
    const f = this.#one(name);
    return f === undefined ? undefined : this.#child(name, f, this.#at(name));
  }

  messages(name: string): MessageReader[] {
    return this.#all(name).map((f, i) => this.#child(name, f, `${this.#at(name)}[${i}]`));
  }

  #child(name: string, f: PbField, path: string): MessageReader {
    if (f.value.kind !== 'message') this.#fail(name, f, `expected a message { ... }, got ${this.#describe(f.value)}`);
    return new MessageReader(f.value.message, path, this.#unknown);
  }

  get path(): string {
    return this.#path;
  }

  /** Records every field of this message that was never read. Call after reading all known fields. */
  finish(): void {
    const seen = new Set<string>();
    for (const f of this.#fields) {
      if (this.#known.has(f.name) || seen.has(f.name)) continue;
      seen.add(f.name);
      this.#unknown.push(this.#at(f.name));
    }
  }
}

function readTensor(r: MessageReader): TensorDraft {
  const name = r.string('name');
  if (name === undefined || name === '') throw configError(FILE, r.path, "every input and output needs a 'name'");
  const datatype = r.datatype('data_type');
  const dims = r.ints('dims', -1);
  const optional = r.bool('optional');
  const labelFilename = r.string('label_filename');
  r.finish();
  return { name, ...(datatype && { datatype }), ...(dims && { dims: checkDims(FILE, `${r.path}.dims`, dims) }), ...(optional !== undefined && { optional }), ...(labelFilename && { labelFilename }) };
}

function readQueuePolicy(r: MessageReader): QueuePolicyDraft {
  const timeoutAction = r.ident('timeout_action', TIMEOUT_ACTIONS as readonly ('REJECT' | 'DELAY')[]);
  const defaultTimeoutUs = r.int('default_timeout_microseconds', 0);
  const allowTimeoutOverride = r.bool('allow_timeout_override');
  const maxQueueSize = r.int('max_queue_size', 0, 2 ** 32 - 1);
  const maxExpectedWaitUs = r.int('max_expected_wait_microseconds', 0);
  r.finish();
  return { timeoutAction, defaultTimeoutUs, allowTimeoutOverride, maxQueueSize, ...(maxExpectedWaitUs !== undefined && { maxExpectedWaitUs }) };
}

function readDynamicBatching(r: MessageReader): DynamicBatchingDraft {
  const preferredBatchSizes = r.ints('preferred_batch_size', 1, INT32_MAX);
  const maxQueueDelayUs = r.int('max_queue_delay_microseconds', 0);
  const preserveOrdering = r.bool('preserve_ordering');
  const priorityLevels = r.int('priority_levels', 0);
  const defaultPriorityLevel = r.int('default_priority_level', 0);
  const q = r.message('default_queue_policy');
  const defaultQueuePolicy = q && readQueuePolicy(q);
  // A proto map in text form: repeated { key: K value: { ... } } entries.
  const priorityQueuePolicy: Record<number, QueuePolicyDraft> = {};
  for (const entry of r.messages('priority_queue_policy')) {
    const key = entry.int('key', 1);
    const value = entry.message('value');
    entry.finish();
    if (key === undefined) throw configError(FILE, entry.path, "a map entry needs a 'key' (the priority level)");
    if (Object.hasOwn(priorityQueuePolicy, key)) throw configError(FILE, entry.path, `priority level ${key} is given twice`);
    priorityQueuePolicy[key] = value === undefined ? {} : readQueuePolicy(value);
  }
  r.finish();
  return { preferredBatchSizes, maxQueueDelayUs, preserveOrdering, priorityLevels, defaultPriorityLevel, defaultQueuePolicy, priorityQueuePolicy };
}

function readInstanceGroup(r: MessageReader): InstanceGroupDraft {
  const count = r.int('count', 1, INT32_MAX);
  const kind = r.ident('kind', INSTANCE_KINDS);
  const gpus = r.ints('gpus', 0, INT32_MAX);
  r.finish();
  return { count, kind, gpus };
}

function readWarmup(r: MessageReader): WarmupDraft {
  const name = r.string('name');
  if (name === undefined || name === '') throw configError(FILE, r.path, "every warmup sample needs a 'name'");
  const batchSize = r.int('batch_size', 0, INT32_MAX);
  const count = r.int('count', 0, INT32_MAX);
  const inputs: Record<string, WarmupInput> = {};
  for (const entry of r.messages('inputs')) {
    const key = entry.string('key');
    const value = entry.message('value');
    entry.finish();
    if (key === undefined || key === '') throw configError(FILE, entry.path, "a map entry needs a 'key' (the input name)");
    if (value === undefined) throw configError(FILE, entry.path, `warmup input '${key}' needs a 'value'`);
    if (Object.hasOwn(inputs, key)) throw configError(FILE, entry.path, `warmup input '${key}' is given twice`);
    const datatype = value.datatype('data_type');
    const dims = value.ints('dims', -1) ?? [];
    const zeroData = value.bool('zero_data');
    const randomData = value.bool('random_data');
    value.finish();
    if (datatype === undefined) throw configError(FILE, value.path, `warmup input '${key}' needs a 'data_type'`);
    inputs[key] = { datatype, dims: checkDims(FILE, `${value.path}.dims`, dims), ...(zeroData !== undefined && { zeroData }), ...(randomData !== undefined && { randomData }) };
  }
  r.finish();
  return { name, batchSize, inputs, count };
}

/** A proto map<string, string> in text form: repeated { key: "k" value: "v" } entries. */
function readStringMap(entries: MessageReader[], what: string): Record<string, string> {
  const map: Record<string, string> = {};
  for (const entry of entries) {
    const key = entry.string('key');
    const value = entry.string('value');
    entry.finish();
    if (key === undefined || key === '' || value === undefined || value === '') throw configError(FILE, entry.path, `every ${what} entry needs a 'key' and a 'value'`);
    if (Object.hasOwn(map, key)) throw configError(FILE, entry.path, `${what} key '${key}' is given twice`);
    map[key] = value;
  }
  return map;
}

function readEnsemble(r: MessageReader): NonNullable<ConfigDraft['ensembleScheduling']> {
  const steps = r.messages('step').map((s) => {
    const modelName = s.string('model_name');
    if (modelName === undefined || modelName === '') throw configError(FILE, s.path, "every step needs a 'model_name'");
    const modelVersion = s.int('model_version', -1, Number.MAX_SAFE_INTEGER) ?? -1;
    const inputMap = readStringMap(s.messages('input_map'), 'input_map');
    const outputMap = readStringMap(s.messages('output_map'), 'output_map');
    s.finish();
    return { modelName, modelVersion, inputMap, outputMap };
  });
  r.finish();
  return { steps };
}

/** Parses config.pbtxt text into a draft; throws InvalidModelConfig naming the line or field. */
export function readPbtxtConfig(text: string): ConfigDraft {
  let tree: PbMessage;
  try {
    tree = parsePbtxt(text);
  } catch (e) {
    if (e instanceof PbtxtSyntaxError) throw configError(FILE, '', `syntax error at ${e.message}`);
    throw e;
  }
  const unknownFields: string[] = [];
  const r = new MessageReader(tree, '', unknownFields);
  const name = r.string('name');
  const platform = r.string('platform');
  const backend = r.string('backend');
  const maxBatchSize = r.int('max_batch_size', 0, INT32_MAX);
  const inputs = r.messages('input').map(readTensor);
  const outputs = r.messages('output').map(readTensor);
  const db = r.message('dynamic_batching');
  const instanceGroups = r.messages('instance_group').map(readInstanceGroup);
  const vp = r.message('version_policy');
  const warmup = r.messages('model_warmup').map(readWarmup);
  const rc = r.message('response_cache');
  const enable = rc?.bool('enable');
  rc?.finish();
  const es = r.message('ensemble_scheduling');
  const ensembleScheduling = es && readEnsemble(es);
  const tp = r.message('model_transaction_policy');
  const decoupled = tp?.bool('decoupled');
  tp?.finish();
  const sb = r.message('sequence_batching');
  const sequenceBatching = sb && readSequenceBatching(sb);
  r.finish();
  return {
    source: 'pbtxt',
    file: FILE,
    name,
    platform,
    backend,
    maxBatchSize,
    ...(inputs.length > 0 && { inputs }),
    ...(outputs.length > 0 && { outputs }),
    ...(db && { dynamicBatching: readDynamicBatching(db) }),
    ...(instanceGroups.length > 0 && { instanceGroups }),
    ...(vp && { versionPolicy: readVersionPolicy(FILE, vp, 'num_versions') }),
    ...(warmup.length > 0 && { warmup }),
    ...(rc && { responseCache: enable === undefined ? {} : { enable } }),
    ...(ensembleScheduling && { ensembleScheduling }),
    ...(sequenceBatching && { sequenceBatching }),
    ...(decoupled !== undefined && { decoupled }),
    unknownFields,
  };
}
