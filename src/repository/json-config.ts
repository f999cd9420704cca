import { fromTritonTypeName, isDataType } from '../core/datatypes.ts';
import type { DataType } from '../core/datatypes.ts';
import type { WarmupInput } from '../core/model.ts';
import { INSTANCE_KINDS, TIMEOUT_ACTIONS, checkDims, checkInt, configError, readVersionPolicy } from './draft.ts';
import { checkState, sequenceDraft } from './sequence-config.ts';
import type { ConfigDraft, DynamicBatchingDraft, GenerationDraft, InstanceGroupDraft, QueuePolicyDraft, SequenceBatchingDraft, TensorDraft, WarmupDraft } from './draft.ts';

const FILE = 'config.json';
const INT32_MAX = 2 ** 31 - 1;

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'string') return `the string ${JSON.stringify(v)}`;
  if (typeof v === 'object') return 'an object';
  if (typeof v === 'number' || typeof v === 'boolean') return `${typeof v} ${v}`;
  return typeof v;
}

/**
 * Reads one JSON object against the keys sluice knows; keys never asked for are reported as unknown
 * (with their path) by finish(), as config.pbtxt's unknown fields are.
 */
class ObjectReader {
  readonly #obj: Readonly<Record<string, unknown>>;
  readonly #path: string;
  readonly #unknown: string[];
  readonly #known = new Set<string>();

  constructor(value: unknown, path: string, unknown: string[]) {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      throw configError(FILE, path, `expected an object, got ${describe(value)}`);
    }
    this.#obj = value as Record<string, unknown>;
    this.#path = path;
    this.#unknown = unknown;
  }

  get path(): string {
    return this.#path;
  }

  at(key: string): string {
    return this.#path === '' ? key : `${this.#path}.${key}`;
  }

  #get(key: string): unknown {
    this.#known.add(key);
    const v = Object.hasOwn(this.#obj, key) ? this.#obj[key] : undefined;
    // null reads as absent, so a generated config may write null for "use the default".
    return v === null ? undefined : v;
  }

  int(key: string, min: number, max?: number): number | undefined {
    const v = this.#get(key);
    if (v === undefined) return undefined;
    if (typeof v !== 'number') throw configError(FILE, this.at(key), `expected an integer, got ${describe(v)}`);
    return checkInt(FILE, this.at(key), v, min, max);
  }

  ints(key: string, min: number, max?: number): number[] | undefined {
    const v = this.#get(key);
    if (v === undefined) return undefined;
    if (!Array.isArray(v)) throw configError(FILE, this.at(key), `expected an array of integers, got ${describe(v)}`);
    return v.map((x: unknown, i) => {
      if (typeof x !== 'number') throw configError(FILE, `${this.at(key)}[${i}]`, `expected an integer, got ${describe(x)}`);
      return checkInt(FILE, `${this.at(key)}[${i}]`, x, min, max);
    });
  }

  /** An array of numbers, integers or not (fp32FalseTrue). */
  numbers(key: string): number[] | undefined {
    const v = this.#get(key);
    if (v === undefined) return undefined;
    if (!Array.isArray(v) || !v.every((x) => typeof x === 'number' && Number.isFinite(x))) throw configError(FILE, this.at(key), `expected an array of numbers, got ${describe(v)}`);
    return v as number[];
  }

  bool(key: string): boolean | undefined {
    const v = this.#get(key);
    if (v === undefined || typeof v === 'boolean') return v;
    throw configError(FILE, this.at(key), `expected true or false, got ${describe(v)}`);
  }

  string(key: string): string | undefined {
    const v = this.#get(key);
    if (v === undefined || typeof v === 'string') return v;
    throw configError(FILE, this.at(key), `expected a string, got ${describe(v)}`);
  }

  oneOf<T extends string>(key: string, allowed: readonly T[]): T | undefined {
    const v = this.#get(key);
    if (v === undefined) return undefined;
    if (typeof v === 'string' && (allowed as readonly string[]).includes(v)) return v as T;
    throw configError(FILE, this.at(key), `expected one of ${allowed.join(', ')}, got ${describe(v)}`);
  }

  /** Protocol names (FP32); Triton's TYPE_FP32 is accepted too, so configs can be moved across. */
  datatype(key: string): DataType | undefined {
    const v = this.#get(key);
    if (v === undefined) return undefined;
    const dt = typeof v === 'string' ? (isDataType(v) ? v : fromTritonTypeName(v)) : undefined;
    if (dt === undefined) throw configError(FILE, this.at(key), `expected a datatype such as FP32, INT64 or BYTES, got ${describe(v)}`);
    return dt;
  }

  /** The generic name the shared readers in draft.ts use. */
  child(key: string): ObjectReader | undefined {
    return this.object(key);
  }

  object(key: string): ObjectReader | undefined {
    const v = this.#get(key);
    return v === undefined ? undefined : new ObjectReader(v, this.at(key), this.#unknown);
  }

  objects(key: string): ObjectReader[] | undefined {
    const v = this.#get(key);
    if (v === undefined) return undefined;
    if (!Array.isArray(v)) throw configError(FILE, this.at(key), `expected an array of objects, got ${describe(v)}`);
    return v.map((x: unknown, i) => new ObjectReader(x, `${this.at(key)}[${i}]`, this.#unknown));
  }

  /** An object used as a map: its keys are data, not field names. */
  entries(key: string): [string, ObjectReader][] | undefined {
    const v = this.object(key);
    if (v === undefined) return undefined;
    return Object.keys(v.#obj).map((k) => [k, new ObjectReader(v.#obj[k], v.at(k), this.#unknown)]);
  }

  /** Every key of this object with its value, each of which must be a non-empty string. */
  stringEntries(): [string, string][] {
    return Object.entries(this.#obj).map(([k, v]) => {
      this.#known.add(k);
      if (typeof v !== 'string' || v === '') throw configError(FILE, this.at(k), `expected a tensor name, got ${describe(v)}`);
      return [k, v];
    });
  }

  finish(): void {
    for (const key of Object.keys(this.#obj)) if (!this.#known.has(key)) this.#unknown.push(this.at(key));
  }
}

function readTensor(r: ObjectReader): TensorDraft {
  const name = r.string('name');
  if (name === undefined || name === '') throw configError(FILE, r.path, "every input and output needs a 'name'");
  const datatype = r.datatype('datatype');
  const dims = r.ints('dims', -1);
  const optional = r.bool('optional');
  const labelFilename = r.string('labelFilename');
  r.finish();
  return { name, ...(datatype && { datatype }), ...(dims && { dims: checkDims(FILE, r.at('dims'), dims) }), ...(optional !== undefined && { optional }), ...(labelFilename && { labelFilename }) };
}

function readQueuePolicy(r: ObjectReader): QueuePolicyDraft {
  const policy = {
    timeoutAction: r.oneOf('timeoutAction', TIMEOUT_ACTIONS as readonly ('REJECT' | 'DELAY')[]),
    defaultTimeoutUs: r.int('defaultTimeoutUs', 0),
    allowTimeoutOverride: r.bool('allowTimeoutOverride'),
    maxQueueSize: r.int('maxQueueSize', 0, 2 ** 32 - 1),
  };
  const maxExpectedWaitUs = r.int('maxExpectedWaitUs', 0);
  r.finish();
  return maxExpectedWaitUs === undefined ? policy : { ...policy, maxExpectedWaitUs };
}

function readDynamicBatching(r: ObjectReader): DynamicBatchingDraft {
  const priorityQueuePolicy: Record<number, QueuePolicyDraft> = {};
  for (const [key, value] of r.entries('priorityQueuePolicy') ?? []) {
    if (!/^[1-9][0-9]{0,8}$/.test(key)) throw configError(FILE, value.path, `keys are priority levels (positive integers), got '${key}'`);
    priorityQueuePolicy[Number(key)] = readQueuePolicy(value);
  }
  const q = r.object('defaultQueuePolicy');
  const draft = {
    preferredBatchSizes: r.ints('preferredBatchSizes', 1, INT32_MAX),
    maxQueueDelayUs: r.int('maxQueueDelayUs', 0),
    preserveOrdering: r.bool('preserveOrdering'),
    priorityLevels: r.int('priorityLevels', 0),
    defaultPriorityLevel: r.int('defaultPriorityLevel', 0),
    defaultQueuePolicy: q && readQueuePolicy(q),
    priorityQueuePolicy,
    allowedBatchSizes: r.ints('allowedBatchSizes', 1, INT32_MAX),
  };
  r.finish();
  return draft;
}

function readInstanceGroup(r: ObjectReader): InstanceGroupDraft {
  const group = { count: r.int('count', 1, INT32_MAX), kind: r.oneOf('kind', INSTANCE_KINDS), gpus: r.ints('gpus', 0, INT32_MAX) };
  r.finish();
  return group;
}

function readWarmup(r: ObjectReader): WarmupDraft {
  const name = r.string('name');
  if (name === undefined || name === '') throw configError(FILE, r.path, "every warmup sample needs a 'name'");
  const inputs: Record<string, WarmupInput> = {};
  for (const [key, value] of r.entries('inputs') ?? []) {
    const datatype = value.datatype('datatype');
    if (datatype === undefined) throw configError(FILE, value.path, `warmup input '${key}' needs a 'datatype'`);
    const dims = checkDims(FILE, value.at('dims'), value.ints('dims', -1) ?? []);
    const zeroData = value.bool('zeroData');
    const randomData = value.bool('randomData');
    value.finish();
    inputs[key] = { datatype, dims, ...(zeroData !== undefined && { zeroData }), ...(randomData !== undefined && { randomData }) };
  }
  const draft = { name, batchSize: r.int('batchSize', 0, INT32_MAX), inputs, count: r.int('count', 0, INT32_MAX) };
  r.finish();
  return draft;
}

/** An object of string values (a proto map<string, string>), e.g. {"INPUT0": "raw"}. */
function readStringMap(r: ObjectReader | undefined): Record<string, string> {
  const map: Record<string, string> = {};
  for (const [key, value] of r?.stringEntries() ?? []) map[key] = value;
  r?.finish();
  return map;
}

function readEnsemble(r: ObjectReader): NonNullable<ConfigDraft['ensembleScheduling']> {
  const steps = (r.objects('step') ?? []).map((s) => {
    const modelName = s.string('modelName');
    if (modelName === undefined || modelName === '') throw configError(FILE, s.path, "every step needs a 'modelName'");
    const modelVersion = s.int('modelVersion', -1) ?? -1;
    const step = { modelName, modelVersion, inputMap: readStringMap(s.object('inputMap')), outputMap: readStringMap(s.object('outputMap')) };
    s.finish();
    return step;
  });
  r.finish();
  return { steps };
}

function readGeneration(r: ObjectReader): GenerationDraft {
  const tokenizer = r.string('tokenizer');
  const ints = ['eosToken', 'maxContext', 'maxActiveSequences', 'maxQueuedPrompts', 'kvCacheBytes', 'kvBlockTokens', 'prefillTokenBudget'] as const;
  const draft: Record<string, unknown> = tokenizer === undefined ? {} : { tokenizer };
  for (const key of ints) {
    const v = r.int(key, key === 'eosToken' ? 0 : 1);
    if (v !== undefined) draft[key] = v;
  }
  r.finish();
  return draft;
}

const CONTROL_KINDS = ['START', 'END', 'READY', 'CORRID'] as const;

/** One control input: its tensor and its controls (Triton's control_input, camelCase). */
function readControlInput(r: ObjectReader): SequenceBatchingDraft['controls'][number][] {
  const tensor = r.string('name');
  if (tensor === undefined || tensor === '') throw configError(FILE, r.path, "every control input needs a 'name'");
  const controls = (r.objects('controls') ?? []).map((c) => {
    const written = c.string('kind');
    const kind = written?.replace(/^CONTROL_SEQUENCE_/, '');
    if (kind === undefined || !(CONTROL_KINDS as readonly string[]).includes(kind)) throw configError(FILE, c.at('kind'), `expected one of ${CONTROL_KINDS.join(', ')} (or CONTROL_SEQUENCE_START and so on), got ${JSON.stringify(written)}`);
    const k = kind as (typeof CONTROL_KINDS)[number];
    const given = ([['INT32', c.ints('int32FalseTrue', -(2 ** 31), INT32_MAX)], ['FP32', c.numbers('fp32FalseTrue')], ['BOOL', c.ints('boolFalseTrue', 0, 1)]] as const).filter(([, v]) => v !== undefined);
    const datatype = c.datatype('datatype');
    c.finish();
    if (k === 'CORRID') {
      if (datatype === undefined || !['UINT64', 'INT64', 'UINT32', 'INT32', 'BYTES'].includes(datatype)) throw configError(FILE, c.path, 'a CORRID control needs datatype UINT64, INT64, UINT32, INT32 or BYTES');
      return { tensor, kind: k, datatype, falseTrue: [0, 1] as const };
    }
    if (given.length !== 1 || given[0]![1]!.length !== 2) throw configError(FILE, c.path, `a ${k} control needs exactly one of int32FalseTrue, fp32FalseTrue or boolFalseTrue, with two values [false, true]`);
    const [dt, values] = given[0]!;
    return { tensor, kind: k, datatype: dt as DataType, falseTrue: [values![0]!, values![1]!] as const };
  });
  r.finish();
  return controls;
}

/** Triton's sequence_batching in camelCase: direct or oldest, controlInputs, states, maxSequenceIdleUs. */
function readSequenceBatching(r: ObjectReader): SequenceBatchingDraft {
  const controls = (r.objects('controlInputs') ?? []).flatMap(readControlInput);
  const states = (r.objects('states') ?? []).map((st) => {
    const inputName = st.string('inputName');
    const outputName = st.string('outputName');
    const datatype = st.datatype('datatype');
    const dims = st.ints('dims', -1);
    const init = st.object('initialState');
    const zero = init?.bool('zeroData');
    init?.finish();
    st.finish();
    return checkState(FILE, st.path, { inputName, outputName, datatype, dims, init: init !== undefined, zero }, { fields: 'inputName, outputName, datatype and dims', zero: 'zeroData: true' });
  });
  const oldest = r.object('oldest');
  const direct = r.object('direct');
  if (oldest && direct) throw configError(FILE, r.path, 'direct and oldest are exclusive: give one strategy');
  const maxCandidateSequences = oldest?.int('maxCandidateSequences', 1, 1_000_000);
  const preferredBatchSizes = oldest?.ints('preferredBatchSizes', 1, INT32_MAX);
  const maxQueueDelayUs = (oldest ?? direct)?.int('maxQueueDelayUs', 0, 60_000_000);
  oldest?.finish();
  direct?.finish();
  const maxSequenceIdleUs = r.int('maxSequenceIdleUs', 0, Number.MAX_SAFE_INTEGER);
  r.finish();
  return sequenceDraft({ oldest: oldest !== undefined, controls, states, maxCandidateSequences, preferredBatchSizes, maxQueueDelayUs, maxSequenceIdleUs });
}

/** Parses config.json text into a draft; throws InvalidModelConfig naming the field. */
export function readJsonConfig(text: string): ConfigDraft {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw configError(FILE, '', `not valid JSON: ${e instanceof Error ? e.message : String(e)}`);
  }
  const unknownFields: string[] = [];
  const r = new ObjectReader(value, '', unknownFields);
  const db = r.object('dynamicBatching');
  const vp = r.object('versionPolicy');
  const rc = r.object('responseCache');
  const enable = rc?.bool('enable');
  rc?.finish();
  const es = r.object('ensembleScheduling');
  const gen = r.object('generation');
  const sb = r.object('sequenceBatching');
  const tp = r.object('modelTransactionPolicy');
  const decoupled = tp?.bool('decoupled');
  tp?.finish();
  const draft: ConfigDraft = {
    source: 'json',
    file: FILE,
    name: r.string('name'),
    platform: r.string('platform'),
    backend: r.string('backend'),
    maxBatchSize: r.int('maxBatchSize', 0, INT32_MAX),
    inputs: r.objects('inputs')?.map(readTensor),
    outputs: r.objects('outputs')?.map(readTensor),
    dynamicBatching: db && readDynamicBatching(db),
    instanceGroups: r.objects('instanceGroups')?.map(readInstanceGroup),
    versionPolicy: vp && readVersionPolicy(FILE, vp, 'numVersions'),
    warmup: r.objects('warmup')?.map(readWarmup),
    pinned: r.bool('pinned'),
    ...(rc && { responseCache: enable === undefined ? {} : { enable } }),
    ...(es && { ensembleScheduling: readEnsemble(es) }),
    ...(gen && { generation: readGeneration(gen) }),
    ...(sb && { sequenceBatching: readSequenceBatching(sb) }),
    ...(decoupled !== undefined && { decoupled }),
    unknownFields,
  };
  r.finish();
  return draft;
}
