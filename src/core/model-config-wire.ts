import { tritonTypeName } from './datatypes.ts';
import { BUILTIN_BACKENDS, type ModelConfig, type QueuePolicy, type TensorConfig, type VersionPolicy } from './model.ts';

/*
 * Triton's ModelConfig as both front doors answer it: the JSON form of its protobuf message with the
 * .proto field names (snake_case). REST sends it as JSON (what tritonclient's get_model_config()
 * returns); gRPC hands the same object to proto-loader, which drops what model_config.proto does
 * not declare. One builder, so the two answers cannot drift apart (as tritonModelStats for statistics).
 */

type Json = Record<string, unknown>;

function queuePolicyJson(p: QueuePolicy): Json {
  return {
    timeout_action: p.timeoutAction,
    default_timeout_microseconds: p.defaultTimeoutUs,
    allow_timeout_override: p.allowTimeoutOverride,
    max_queue_size: p.maxQueueSize,
  };
}

function versionPolicyJson(p: VersionPolicy): Json {
  if ('latest' in p) return { latest: { num_versions: p.latest.numVersions } };
  if ('all' in p) return { all: {} };
  return { specific: { versions: [...p.specific.versions] } };
}

function inputJson(t: TensorConfig): Json {
  return { name: t.name, data_type: tritonTypeName(t.datatype), format: 'FORMAT_NONE', dims: [...t.dims], is_shape_tensor: false, allow_ragged_batch: false, optional: t.optional ?? false };
}

function outputJson(t: TensorConfig): Json {
  return { name: t.name, data_type: tritonTypeName(t.datatype), dims: [...t.dims], label_filename: t.labelFilename ?? '', is_shape_tensor: false };
}

/** The model configuration as Triton's GET /v2/models/{m}/config and gRPC ModelConfig answer it. */
export function tritonModelConfig(c: ModelConfig): Json {
  const d = c.dynamicBatching;
  const priorityPolicies: Json = {};
  for (const [level, p] of Object.entries(d.priorityQueuePolicy)) priorityPolicies[level] = queuePolicyJson(p);
  const json: Json = {
    name: c.name,
    platform: c.platform,
    backend: c.backend,
    version_policy: versionPolicyJson(c.versionPolicy),
    max_batch_size: c.maxBatchSize,
    input: c.inputs.map(inputJson),
    output: c.outputs.map(outputJson),
    batch_input: [],
    batch_output: [],
    instance_group: c.instanceGroups.map((g, i) => ({ name: `${c.name}_${i}`, kind: g.kind, count: g.count, gpus: [...g.gpus], secondary_devices: [], profile: [], passive: false, host_policy: '' })),
    default_model_filename: 'model.onnx',
    response_cache: { enable: c.responseCache?.enable ?? false },
    model_transaction_policy: { decoupled: c.decoupled ?? false },
    model_warmup: c.warmup.map((w) => ({
      name: w.name,
      batch_size: w.batchSize,
      count: w.count,
      inputs: Object.fromEntries(Object.entries(w.inputs).map(([k, v]) => [k, {
        data_type: tritonTypeName(v.datatype),
        dims: [...v.dims],
        ...(v.randomData ? { random_data: true } : { zero_data: v.zeroData ?? true }),
      }])),
    })),
    // Triton's string-valued parameters map: where sluice says what it read the config from.
    parameters: {
      sluice_config_source: { string_value: c.source },
      sluice_pinned: { string_value: String(c.pinned) },
      ...(c.unknownFields.length > 0 ? { sluice_ignored_fields: { string_value: c.unknownFields.join(',') } } : {}),
    },
  };
  // A built-in backend (repeat) has no model file.
  if (BUILTIN_BACKENDS.includes(c.backend)) json['default_model_filename'] = '';
  if (c.ensembleScheduling) {
    // Triton's oneof scheduling_choice: an ensemble has ensemble_scheduling, no batcher, no instances, no file.
    json['ensemble_scheduling'] = {
      step: c.ensembleScheduling.steps.map((s) => ({ model_name: s.modelName, model_version: s.modelVersion, input_map: { ...s.inputMap }, output_map: { ...s.outputMap } })),
    };
    json['instance_group'] = [];
    json['default_model_filename'] = '';
  } else if (c.sequenceBatching) {
    // The other member of the oneof: a sequence model has sequence_batching instead of dynamic_batching.
    const sb = c.sequenceBatching;
    const flag = (ct: (typeof sb.controls)[number]): Json => ct.kind === 'CORRID'
      ? { kind: 'CONTROL_SEQUENCE_CORRID', data_type: tritonTypeName(ct.datatype) }
      : { kind: `CONTROL_SEQUENCE_${ct.kind}`, [ct.datatype === 'FP32' ? 'fp32_false_true' : ct.datatype === 'BOOL' ? 'bool_false_true' : 'int32_false_true']: [...ct.falseTrue] };
    json['sequence_batching'] = {
      max_sequence_idle_microseconds: sb.maxSequenceIdleUs,
      control_input: sb.controls.map((ct) => ({ name: ct.tensor, control: [flag(ct)] })),
      state: sb.states.map((st) => ({ input_name: st.inputName, output_name: st.outputName, data_type: tritonTypeName(st.datatype), dims: [...st.dims], initial_state: [{ data_type: tritonTypeName(st.datatype), dims: [...st.dims], zero_data: true, name: 'zero' }] })),
      ...(sb.strategy === 'oldest'
        ? { oldest: { max_candidate_sequences: sb.maxActiveSequences, preferred_batch_size: [...sb.preferredBatchSizes], max_queue_delay_microseconds: sb.maxQueueDelayUs } }
        : { direct: { max_queue_delay_microseconds: sb.maxQueueDelayUs } }),
    };
  } else if (c.maxBatchSize > 0) {
    json['dynamic_batching'] = {
      preferred_batch_size: [...d.preferredBatchSizes],
      max_queue_delay_microseconds: d.maxQueueDelayUs,
      preserve_ordering: d.preserveOrdering,
      priority_levels: d.priorityLevels,
      default_priority_level: d.defaultPriorityLevel,
      default_queue_policy: queuePolicyJson(d.defaultQueuePolicy),
      priority_queue_policy: priorityPolicies,
    };
  }
  return json;
}

