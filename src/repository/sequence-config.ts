/**
 * Triton's sequence_batching in config.pbtxt: control inputs (START, END, READY, CORRID), the direct
 * or oldest strategy, the idle timeout and implicit state. Reading checks single fields; checking
 * against the model's own inputs and outputs (control and state tensors exist with the right types)
 * happens in sequenceBatchingConfig, which also takes them off the inputs and outputs a client sees.
 */
import type { DataType } from '../core/datatypes.ts';
import type { SequenceBatchingConfig, SequenceControl, TensorConfig } from '../core/model.ts';
import { checkDims, configError, type SequenceBatchingDraft } from './draft.ts';
import type { MessageReader } from './pbtxt-config.ts';

const FILE = 'config.pbtxt';
const KINDS = ['CONTROL_SEQUENCE_START', 'CONTROL_SEQUENCE_END', 'CONTROL_SEQUENCE_READY', 'CONTROL_SEQUENCE_CORRID'] as const;
const CORRID_TYPES: readonly DataType[] = ['UINT64', 'INT64', 'UINT32', 'INT32', 'BYTES'];
/** Triton's default max_sequence_idle_microseconds. */
export const DEFAULT_SEQUENCE_IDLE_US = 1_000_000;
/** Triton's default max_candidate_sequences is unbounded; sluice bounds every queue. */
export const DEFAULT_MAX_CANDIDATE_SEQUENCES = 1024;

type Control = SequenceBatchingDraft['controls'][number];

function readControl(input: MessageReader): Control[] {
  const tensor = input.string('name');
  if (tensor === undefined || tensor === '') throw configError(FILE, input.path, "every control_input needs a 'name'");
  const controls = input.messages('control').map((c): Control => {
    const kind = c.ident('kind', KINDS);
    if (kind === undefined) throw configError(FILE, c.path, "every control needs a 'kind'");
    const short = kind.slice('CONTROL_SEQUENCE_'.length) as Control['kind'];
    const i32 = c.ints('int32_false_true', -(2 ** 31), 2 ** 31 - 1);
    const f32 = c.numbers('fp32_false_true');
    const b = c.numbers('bool_false_true');
    const datatype = c.datatype('data_type');
    c.finish();
    if (short === 'CORRID') {
      if (datatype === undefined || !CORRID_TYPES.includes(datatype)) throw configError(FILE, `${c.path}.data_type`, `a CONTROL_SEQUENCE_CORRID needs data_type TYPE_UINT64, TYPE_INT64, TYPE_UINT32, TYPE_INT32 or TYPE_STRING`);
      return { tensor, kind: short, datatype, falseTrue: [0, 1] };
    }
    const given = [['INT32', i32], ['FP32', f32], ['BOOL', b]].filter(([, v]) => v !== undefined) as [DataType, number[]][];
    if (given.length !== 1 || given[0]![1].length !== 2) throw configError(FILE, c.path, `a ${kind} needs exactly one of int32_false_true, fp32_false_true or bool_false_true, with two values [false, true]`);
    const [dt, values] = given[0]!;
    return { tensor, kind: short, datatype: dt, falseTrue: [values[0]!, values[1]!] };
  });
  input.finish();
  return controls;
}

type StateDraft = SequenceBatchingDraft['states'][number];

/** One state as read from either format: every field present, a zero initial state, fixed dims. */
export function checkState(file: string, path: string, s: { inputName?: string | undefined; outputName?: string | undefined; datatype?: DataType | undefined; dims?: number[] | undefined; init: boolean; zero: boolean | undefined }, names: { readonly fields: string; readonly zero: string }): StateDraft {
  const { inputName, outputName, datatype, dims } = s;
  if (!inputName || !outputName || datatype === undefined || dims === undefined) throw configError(file, path, `every state needs ${names.fields}`);
  if (s.init && s.zero !== true) throw configError(file, path, `only ${names.zero} is supported as an initial state (a sequence starts from zeros)`);
  checkDims(file, `${path}.dims`, dims);
  if (dims.some((d) => d < 1)) throw configError(file, `${path}.dims`, 'state dims must be fixed (the state of every sequence has one shape)');
  return { inputName, outputName, datatype, dims };
}

/** The draft from what either format read: the strategy, the bounds given, controls and states. */
export function sequenceDraft(parts: Omit<SequenceBatchingDraft, 'strategy'> & { readonly oldest: boolean }): SequenceBatchingDraft {
  const { oldest, controls, states, maxCandidateSequences, preferredBatchSizes, maxQueueDelayUs, maxSequenceIdleUs } = parts;
  return {
    strategy: oldest ? 'oldest' : 'direct', controls, states,
    ...(maxCandidateSequences !== undefined && { maxCandidateSequences }),
    ...(preferredBatchSizes !== undefined && { preferredBatchSizes }),
    ...(maxQueueDelayUs !== undefined && { maxQueueDelayUs }),
    ...(maxSequenceIdleUs !== undefined && { maxSequenceIdleUs }),
  };
}

export function readSequenceBatching(r: MessageReader): SequenceBatchingDraft {
  const controls = r.messages('control_input').flatMap(readControl);
  const states = r.messages('state').map((s) => {
    const inputName = s.string('input_name');
    const outputName = s.string('output_name');
    const datatype = s.datatype('data_type');
    const dims = s.ints('dims', -1);
    const init = s.message('initial_state');
    const zero = init?.bool('zero_data');
    init?.string('name');
    init?.datatype('data_type');
    init?.ints('dims', -1);
    init?.finish();
    s.finish();
    return checkState(FILE, s.path, { inputName, outputName, datatype, dims, init: init !== undefined, zero }, { fields: 'input_name, output_name, data_type and dims', zero: 'zero_data: true' });
  });
  const oldest = r.message('oldest');
  const direct = r.message('direct');
  if (oldest && direct) throw configError(FILE, r.path, 'direct and oldest are exclusive: give one strategy');
  const maxCandidateSequences = oldest?.int('max_candidate_sequences', 1, 1_000_000);
  const preferredBatchSizes = oldest?.ints('preferred_batch_size', 1);
  const maxQueueDelayUs = (oldest ?? direct)?.int('max_queue_delay_microseconds', 0, 60_000_000);
  // preserve_ordering is left unread, so it is reported as a field sluice ignores: answers of one
  // sequence are in order anyway, answers of different sequences need no order.
  oldest?.finish();
  direct?.numbers('minimum_slot_utilization');
  direct?.finish();
  const maxSequenceIdleUs = r.int('max_sequence_idle_microseconds', 0, Number.MAX_SAFE_INTEGER);
  r.finish();
  return sequenceDraft({ oldest: oldest !== undefined, controls, states, maxCandidateSequences, preferredBatchSizes, maxQueueDelayUs, maxSequenceIdleUs });
}

interface Signature {
  readonly maxBatchSize: number;
  readonly inputs: readonly TensorConfig[];
  readonly outputs: readonly TensorConfig[];
}

/**
 * The normalized sequence batching, with the inputs and outputs a client sees: control and state
 * inputs are the scheduler's to fill, state outputs the scheduler's to keep. `instances`: the model's
 * instance count (instance_group counts summed), which multiplies the direct strategy's slots.
 */
export function sequenceBatchingConfig(draft: SequenceBatchingDraft, sig: Signature, instances = 1, where: { readonly file: string; readonly path: string } = { file: FILE, path: 'sequence_batching' }): { config: SequenceBatchingConfig; inputs: TensorConfig[]; outputs: TensorConfig[] } {
  const fail = (reason: string): never => {
    throw configError(where.file, where.path, reason);
  };
  if (sig.maxBatchSize < 1) fail('sluice runs sequence models with max_batch_size >= 1 (a batch holds one request of each of several sequences)');
  const input = (name: string): TensorConfig => sig.inputs.find((t) => t.name === name) ?? fail(`the model has no input '${name}'`);
  const controls: SequenceControl[] = draft.controls.map((c) => {
    const t = input(c.tensor);
    // BYTES in the config is the model's STRING; a number-typed control is checked against the file.
    if (t.datatype !== c.datatype) fail(`control '${c.tensor}' (${c.kind}) is ${c.datatype} in the config but ${t.datatype} in the model`);
    return c;
  });
  for (const kind of ['START', 'END', 'READY', 'CORRID'] as const) {
    if (controls.filter((c) => c.kind === kind).length > 1) fail(`more than one control of kind CONTROL_SEQUENCE_${kind}`);
  }
  for (const s of draft.states) {
    const t = input(s.inputName);
    if (t.datatype !== s.datatype) fail(`state input '${s.inputName}' is ${s.datatype} in the config but ${t.datatype} in the model`);
    const o = sig.outputs.find((x) => x.name === s.outputName) ?? fail(`the model has no output '${s.outputName}'`);
    if (o.datatype !== s.datatype) fail(`state output '${s.outputName}' is ${o.datatype}, its state is ${s.datatype}`);
  }
  const hidden = new Set([...controls.map((c) => c.tensor), ...draft.states.map((s) => s.inputName)]);
  const stateOutputs = new Set(draft.states.map((s) => s.outputName));
  // Triton's direct strategy: a slot per batch row of each instance.
  const maxActiveSequences = draft.strategy === 'direct' ? sig.maxBatchSize * instances : draft.maxCandidateSequences ?? DEFAULT_MAX_CANDIDATE_SEQUENCES;
  const preferred = [...new Set(draft.preferredBatchSizes ?? [])].sort((a, b) => a - b);
  if (preferred.some((p) => p > sig.maxBatchSize)) fail(`a preferred_batch_size exceeds max_batch_size ${sig.maxBatchSize}`);
  return {
    config: {
      strategy: draft.strategy, maxActiveSequences, preferredBatchSizes: preferred, maxQueueDelayUs: draft.maxQueueDelayUs ?? 0,
      // Triton's rule: 0 (or unset) is the default of one second.
      maxSequenceIdleUs: draft.maxSequenceIdleUs || DEFAULT_SEQUENCE_IDLE_US, controls, states: draft.states,
    },
    inputs: sig.inputs.filter((t) => !hidden.has(t.name)),
    outputs: sig.outputs.filter((t) => !stateOutputs.has(t.name)),
  };
}
